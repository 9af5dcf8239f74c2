"""Settings: one object, built once at process start and passed to each app factory.

Nothing reads the environment at import time; ``Settings.from_env`` is called by the entry
points only, so tests build Settings directly.
"""

import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from events.topics import Topics

DEV_BOOTSTRAP_KEY = "jl_dev_admin_key_change_me"


def hash_key(key: str) -> str:
    """Keys are kept only as their SHA-256; they are random tokens, so no salt is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    project_id: str
    role: str  # admin | operator | viewer
    key_hash: str


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "jobledger"
    partitions: int = 8
    database_url: str = "sqlite+aiosqlite:///.jobledger/jobledger.db"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    api_keys: tuple[ApiKey, ...] = ()
    # Networks the executor may call besides public addresses (loopback in tests and dev).
    allowed_networks: tuple[str, ...] = ()
    # How long a command's response waits for its outcome to be visible before a 202.
    command_wait_secs: float = 10.0
    max_payload_bytes: int = 256 * 1024
    # Live streams (server-sent events) one API process keeps open at most (429 beyond),
    # and how often an idle one sends a keep-alive comment.
    max_streams: int = 100
    stream_heartbeat_secs: float = 15.0
    processor_data_dir: Path = Path(".jobledger/processor")
    # A development run (``jobledger run`` without a configured key): the well-known
    # development key is active. Never set in production.
    development: bool = False
    # Orders the executor carries out at once (each its own task; fetching waits while all
    # are busy), and how long a stopping executor lets them finish before cutting them short.
    executor_max_in_flight: int = 200
    executor_stop_grace_secs: float = 10.0
    # The processor: the most commands decided as one batch (one broker acknowledgement);
    # faust's records per fetch and agent buffer (None: faust's defaults; the hand-over test
    # makes them small); and the fix of faust's restart hand-over (off only to show, in
    # that test, what it prevents).
    processor_batch_max: int = 500
    # The key run tokens are signed with (HMAC-SHA256): JOBLEDGER_RUN_TOKEN_SECRET, or
    # else a random key kept in this file (made on first use, readable by its owner only),
    # so tokens stay valid across restarts.
    run_token_secret: str | None = None
    run_token_secret_file: Path = Path(".jobledger/run_token.key")
    processor_max_poll_records: int | None = None
    processor_stream_buffer: int | None = None
    processor_handover_patch: bool = True
    # The projector's retention sweep: how often it looks for runs past their purge_at,
    # and the most it purges per transaction (a backlog is taken a transaction per loop
    # turn, between event batches). purge_clock_skew_secs moves the sweep's clock ahead:
    # a test seam (JOBLEDGER_PURGE_CLOCK_SKEW_SECS) to purge without waiting for days;
    # leave it 0 in production.
    purge_every_secs: float = 60.0
    purge_batch: int = 500
    purge_clock_skew_secs: float = 0.0

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def allowed_ip_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n) for n in self.allowed_networks]

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        development = env.get("JOBLEDGER_DEV", "") == "1"
        bootstrap = env.get("JOBLEDGER_BOOTSTRAP_KEY") or (
            DEV_BOOTSTRAP_KEY if development else None)
        keys = [] if bootstrap is None else [ApiKey("default", "admin", hash_key(bootstrap))]
        # Further keys as "project:role:sha256hex", comma separated.
        for item in filter(None, env.get("JOBLEDGER_API_KEYS", "").split(",")):
            project, role, digest = item.strip().split(":")
            keys.append(ApiKey(project, role, digest))
        allowed = tuple(filter(None, env.get("JOBLEDGER_ALLOWED_NETWORKS", "").split(",")))
        return cls(
            kafka_bootstrap=env.get("KAFKA_BOOTSTRAP_SERVERS", cls.kafka_bootstrap),
            topic_prefix=env.get("JOBLEDGER_TOPIC_PREFIX", cls.topic_prefix),
            partitions=int(env.get("JOBLEDGER_PARTITIONS", cls.partitions)),
            database_url=env.get("JOBLEDGER_DATABASE_URL", cls.database_url),
            http_host=env.get("JOBLEDGER_HTTP_HOST", cls.http_host),
            http_port=int(env.get("JOBLEDGER_HTTP_PORT", cls.http_port)),
            api_keys=tuple(keys),
            development=development,
            allowed_networks=allowed,
            command_wait_secs=float(env.get("JOBLEDGER_COMMAND_WAIT_SECS",
                                            cls.command_wait_secs)),
            max_streams=int(env.get("JOBLEDGER_MAX_STREAMS", cls.max_streams)),
            stream_heartbeat_secs=float(env.get("JOBLEDGER_STREAM_HEARTBEAT_SECS",
                                                cls.stream_heartbeat_secs)),
            processor_data_dir=Path(env.get("JOBLEDGER_PROCESSOR_DIR",
                                            str(cls.processor_data_dir))),
            executor_max_in_flight=int(env.get("JOBLEDGER_EXECUTOR_MAX_IN_FLIGHT",
                                               cls.executor_max_in_flight)),
            executor_stop_grace_secs=float(env.get("JOBLEDGER_EXECUTOR_STOP_GRACE_SECS",
                                                   cls.executor_stop_grace_secs)),
            processor_batch_max=int(env.get("JOBLEDGER_PROCESSOR_BATCH_MAX",
                                            cls.processor_batch_max)),
            processor_max_poll_records=_optional_int(
                env.get("JOBLEDGER_PROCESSOR_MAX_POLL_RECORDS")),
            processor_stream_buffer=_optional_int(env.get("JOBLEDGER_PROCESSOR_STREAM_BUFFER")),
            processor_handover_patch=env.get("JOBLEDGER_FAUST_HANDOVER_PATCH", "1") != "0",
            purge_every_secs=float(env.get("JOBLEDGER_PURGE_EVERY_SECS", cls.purge_every_secs)),
            purge_batch=int(env.get("JOBLEDGER_PURGE_BATCH", cls.purge_batch)),
            purge_clock_skew_secs=float(env.get("JOBLEDGER_PURGE_CLOCK_SKEW_SECS",
                                                cls.purge_clock_skew_secs)),
            run_token_secret=env.get("JOBLEDGER_RUN_TOKEN_SECRET") or None,
            run_token_secret_file=Path(env.get("JOBLEDGER_RUN_TOKEN_SECRET_FILE",
                                               str(cls.run_token_secret_file))),
        )


def _optional_int(value: str | None) -> int | None:
    return int(value) if value else None
