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


def test_defaults_have_no_key_and_allow_no_private_network() -> None:
    settings = Settings.from_env({})
    assert settings.api_keys == () and not settings.development
    assert settings.allowed_networks == ()


def test_only_a_development_run_uses_the_well_known_key() -> None:
    settings = Settings.from_env({"JOBLEDGER_DEV": "1"})
    assert settings.development
    assert [k.key_hash for k in settings.api_keys] == [hash_key(DEV_BOOTSTRAP_KEY)]
    configured = Settings.from_env({"JOBLEDGER_DEV": "1", "JOBLEDGER_BOOTSTRAP_KEY": "s"})
    assert [k.key_hash for k in configured.api_keys] == [hash_key("s")]


def test_the_api_refuses_to_start_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.api.__main__ import main as api_main

    for name in ("JOBLEDGER_BOOTSTRAP_KEY", "JOBLEDGER_API_KEYS", "JOBLEDGER_DEV"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as stopped:
        api_main()
    assert stopped.value.code == 2


def test_keyring_identifies_by_hash_only() -> None:
    ring = KeyRing(Settings.from_env({"JOBLEDGER_BOOTSTRAP_KEY": "secret"}))
    key = ring.identify("secret")
    assert key is not None and key.project_id == "default"
    assert ring.identify("Secret") is None and ring.identify(hash_key("secret")) is None


def test_hash_key_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash-key", "abc"]) == 0
    assert capsys.readouterr().out.strip() == hash_key("abc")
