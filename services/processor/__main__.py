"""``python -m services.processor``: run the processor worker."""

import logging

import faust

from services import eventloop
from services.config import Settings
from services.kafka import create_missing, ensure_topics, wait_for_broker
from services.logs import configure_logging
from services.processor.app import create_app, table_topics


def main() -> None:
    settings = Settings.from_env()
    level = configure_logging("processor")

    async def prepare() -> None:
        await wait_for_broker(settings.kafka_bootstrap)
        await ensure_topics(settings.kafka_bootstrap, settings.topics, settings.partitions)
        await create_missing(settings.kafka_bootstrap, table_topics(settings))

    eventloop.run(prepare())
    settings.processor_data_dir.mkdir(parents=True, exist_ok=True)
    eventloop.install()  # before the worker creates its loop
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=logging.getLevelName(level), quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
