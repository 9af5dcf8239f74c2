"""Session-wide fixtures: the real Kafka broker every integration test uses.

KAFKA_BOOTSTRAP_SERVERS names a running cluster; otherwise the suite starts the pinned
KRaft node from deploy/kafka (jars from Maven Central); otherwise, where a Docker engine
runs, testcontainers. A broker that cannot be had is an error, never a skip: a green run
must mean the Kafka tests ran.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _docker_available() -> bool:
    return shutil.which("docker") is not None and os.path.exists("/var/run/docker.sock")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    from deploy.kafka.node import KafkaNode

    data_dir = Path(tempfile.mkdtemp(prefix="jobledger-kafka-"))
    node = KafkaNode(data_dir)
    try:
        node.start()
    except Exception as exc:
        if not _docker_available():
            pytest.fail(f"could not start the Kafka broker: {exc}", pytrace=False)
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-untyped]

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    try:
        yield node.bootstrap
    finally:
        node.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
