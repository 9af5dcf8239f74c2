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
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
