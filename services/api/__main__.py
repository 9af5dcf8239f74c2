"""``python -m services.api``: serve the API with uvicorn."""

import uvicorn

from services.api.app import create_app
from services.config import Settings
from services.logs import configure_logging


def main() -> None:
    configure_logging("api")
    settings = Settings.from_env()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port,
                log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
