"""``python -m services.api``: serve the API with uvicorn."""

import logging
from types import FrameType

import uvicorn

from services.api.app import create_app
from services.api.stream_hub import StreamHub
from services.config import Settings
from services.logs import configure_logging

log = logging.getLogger("services.api")


class _Server(uvicorn.Server):
    """uvicorn waits for open responses to finish before the app's shutdown runs, and a
    live stream never finishes on its own: on SIGINT/SIGTERM, end the streams first."""

    def __init__(self, config: uvicorn.Config, streams: StreamHub) -> None:
        super().__init__(config)
        self.streams = streams

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.streams.stop_all_soon()
        super().handle_exit(sig, frame)


def main() -> None:
    configure_logging("api")
    settings = Settings.from_env()
    if not settings.api_keys:
        log.error("no API key is configured: set JOBLEDGER_BOOTSTRAP_KEY (or "
                  "JOBLEDGER_API_KEYS), or JOBLEDGER_DEV=1 for a development run")
        raise SystemExit(2)
    if settings.development:
        log.warning("development run: the well-known development key is active")
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port,
                            log_level="warning", lifespan="on", loop="uvloop",
                            http="httptools")
    _Server(config, app.state.streams).run()


if __name__ == "__main__":
    main()
