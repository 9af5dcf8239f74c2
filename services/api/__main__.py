"""``python -m services.api``: serve the API with uvicorn."""

import logging

import uvicorn

from services.api.app import create_app
from services.config import Settings
from services.logs import configure_logging

log = logging.getLogger("services.api")


def main() -> None:
    configure_logging("api")
    settings = Settings.from_env()
    if not settings.api_keys:
        log.error("no API key is configured: set JOBLEDGER_BOOTSTRAP_KEY (or "
                  "JOBLEDGER_API_KEYS), or JOBLEDGER_DEV=1 for a development run")
        raise SystemExit(2)
    if settings.development:
        log.warning("development run: the well-known development key is active")
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port,
                log_level="warning", lifespan="on", loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
