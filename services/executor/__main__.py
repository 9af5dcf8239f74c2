"""``python -m services.executor``: run the executor."""

from services import eventloop
from services.config import Settings
from services.executor.app import run_executor
from services.logs import configure_logging
from services.signals import stop_on_signals


async def _main() -> None:
    settings = Settings.from_env()
    await run_executor(settings, stop_on_signals())


def main() -> None:
    configure_logging("executor")
    eventloop.run(_main())


if __name__ == "__main__":
    main()
