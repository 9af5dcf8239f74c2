"""``python -m services.projector [--rebuild]``: run the projector."""

import argparse

from services import eventloop
from services.config import Settings
from services.logs import configure_logging
from services.projector.app import run_projector
from services.signals import stop_on_signals


async def _main(rebuild: bool) -> None:
    await run_projector(Settings.from_env(), stop_on_signals(), rebuild=rebuild)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.projector")
    parser.add_argument("--rebuild", action="store_true",
                        help="drop the read models and replay the events topic from offset 0")
    args = parser.parse_args()
    configure_logging("projector")
    eventloop.run(_main(args.rebuild))


if __name__ == "__main__":
    main()
