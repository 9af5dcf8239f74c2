"""``python -m services.projector``: run the projector. (To rebuild the read models from
the log, see ``jobledger projections rebuild``.)"""

from services import eventloop
from services.config import Settings
from services.logs import configure_logging
from services.projector.app import run_projector
from services.signals import stop_on_signals


async def _main() -> None:
    await run_projector(Settings.from_env(), stop_on_signals())


def main() -> None:
    configure_logging("projector")
    eventloop.run(_main())


if __name__ == "__main__":
    main()
