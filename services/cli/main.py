"""``jobledger run`` starts a local Kafka node (unless KAFKA_BOOTSTRAP_SERVERS names one)
and the four services; Ctrl-C stops them all, Kafka last."""

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from services import eventloop
from services.cli.migrate import add_parser as add_migrate_parser
from services.cli.migrate import apply as apply_migrations
from services.cli.migrate import database_url
from services.cli.stack import Stack
from services.config import DEV_BOOTSTRAP_KEY, hash_key

LOOPBACK = "127.0.0.0/8,::1/128"


def run(args: argparse.Namespace) -> int:
    home = Path(args.home).resolve()
    env = dict(os.environ)
    env["JOBLEDGER_DATABASE_URL"] = database_url(home, env)
    env.setdefault("JOBLEDGER_PROCESSOR_DIR", str(home / "processor"))
    # Local development calls endpoints on this machine; production allows none by default.
    env.setdefault("JOBLEDGER_ALLOWED_NETWORKS", LOOPBACK)
    if not env.get("JOBLEDGER_BOOTSTRAP_KEY"):
        # Only this command turns the well-known key on, and says so loudly.
        env["JOBLEDGER_DEV"] = "1"
        print(f"jobledger: WARNING: development run; the admin key of project 'default' is "
              f"the well-known {DEV_BOOTSTRAP_KEY}\n"
              "           anyone who can reach the API can use it: set "
              "JOBLEDGER_BOOTSTRAP_KEY for anything but local development", flush=True)

    # Migrated here, once, before the services start: a database they cannot use (made by
    # a build before migrations) stops this command with the reason, not a restart loop.
    # (Of the live generation: after a rebuild the configured place may hold nothing.)
    if eventloop.run(apply_migrations(env["JOBLEDGER_DATABASE_URL"])) != 0:
        return 2

    node = None
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        from deploy.kafka.node import KafkaNode

        print("jobledger: starting a local Kafka node ...", flush=True)
        node = KafkaNode(home / "kafka", port=args.kafka_port)
        node.start()
        env["KAFKA_BOOTSTRAP_SERVERS"] = node.bootstrap
    print(f"jobledger: Kafka at {env['KAFKA_BOOTSTRAP_SERVERS']}", flush=True)

    stack = Stack(env, home / "logs")
    stop_requested: list[bool] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.append(True)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start()
        port = env.get("JOBLEDGER_HTTP_PORT", "8080")
        print(f"jobledger: API on http://127.0.0.1:{port} (docs at /docs); "
              f"logs in {home / 'logs'}; Ctrl-C stops", flush=True)
        stack.watch(stop_requested)
    finally:
        print("jobledger: stopping ...", flush=True)
        stack.stop()
        if node is not None:
            node.stop()
        print("jobledger: stopped", flush=True)
    return 0


def rebuild_projections(args: argparse.Namespace) -> int:
    """Replay the log into a new generation of the read models and switch to it (see
    services.projector.rebuild). Exit 0 once switched; 1, the old generation still
    serving, on failure."""
    from services.config import Settings
    from services.logs import configure_logging
    from services.projector.rebuild import rebuild

    home = Path(args.home).resolve()
    env = dict(os.environ)
    # The same defaults as ``jobledger run``, so the command finds what that one started.
    env.setdefault("JOBLEDGER_DATABASE_URL", f"sqlite+aiosqlite:///{home}/jobledger.db")
    ports = home / "kafka" / "ports"
    if not env.get("KAFKA_BOOTSTRAP_SERVERS") and ports.exists():
        env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{ports.read_text().split()[0]}"
    configure_logging("rebuild")
    settings = Settings.from_env(env)
    try:
        eventloop.run(rebuild(settings, out=lambda line: print(line, flush=True),
                              grace_secs=args.grace))
    except KeyboardInterrupt:
        print("jobledger: rebuild interrupted; the old generation still serves",
              file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"jobledger: rebuild failed: {type(exc).__name__}: {exc}; the old "
              "generation still serves", file=sys.stderr)
        return 1
    return 0


def print_key_hash(args: argparse.Namespace) -> int:
    print(hash_key(args.key))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobledger", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run Kafka (local) and all four services")
    run_parser.add_argument("--home", default=".jobledger", help="state directory")
    run_parser.add_argument("--kafka-port", type=int, default=None)
    run_parser.set_defaults(func=run)
    add_migrate_parser(sub)
    hash_parser = sub.add_parser("hash-key", help="print the SHA-256 to put in "
                                 "JOBLEDGER_API_KEYS for a new key")
    hash_parser.add_argument("key")
    hash_parser.set_defaults(func=print_key_hash)
    projections = sub.add_parser("projections", help="manage the read models")
    actions = projections.add_subparsers(dest="action", required=True)
    rebuild_parser = actions.add_parser(
        "rebuild", help="replay the events topic into a new generation of the read "
        "models while the current one serves, then switch to it")
    rebuild_parser.add_argument("--home", default=".jobledger",
                                help="state directory (as for run)")
    rebuild_parser.add_argument("--grace", type=float, default=5.0,
                                help="seconds to keep the old generation after the switch")
    rebuild_parser.set_defaults(func=rebuild_projections)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
