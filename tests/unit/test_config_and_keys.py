"""Settings from the environment, and API keys kept only as hashes."""

import pytest

from services.api.auth import KeyRing
from services.cli.main import main
from services.config import DEV_BOOTSTRAP_KEY, Settings, hash_key


def test_settings_from_env() -> None:
    other = hash_key("k2")
    settings = Settings.from_env({
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1234", "JOBLEDGER_TOPIC_PREFIX": "p1",
        "JOBLEDGER_HTTP_PORT": "9999", "JOBLEDGER_BOOTSTRAP_KEY": "k1",
        "JOBLEDGER_API_KEYS": f"other:viewer:{other}",
        "JOBLEDGER_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128"})
    assert settings.kafka_bootstrap == "127.0.0.1:1234" and settings.http_port == 9999
    assert settings.topics.commands == "p1.commands"
    assert [(k.project_id, k.role) for k in settings.api_keys] == [("default", "admin"),
                                                                  ("other", "viewer")]
    assert all(k.key_hash != "k1" for k in settings.api_keys)  # never the key itself
    assert len(settings.allowed_ip_networks()) == 2


def test_defaults_use_the_development_key_and_allow_no_private_network() -> None:
    settings = Settings.from_env({})
    assert settings.api_keys[0].key_hash == hash_key(DEV_BOOTSTRAP_KEY)
    assert settings.allowed_networks == ()


def test_keyring_identifies_by_hash_only() -> None:
    ring = KeyRing(Settings.from_env({"JOBLEDGER_BOOTSTRAP_KEY": "secret"}))
    key = ring.identify("secret")
    assert key is not None and key.project_id == "default"
    assert ring.identify("Secret") is None and ring.identify(hash_key("secret")) is None


def test_hash_key_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash-key", "abc"]) == 0
    assert capsys.readouterr().out.strip() == hash_key("abc")
