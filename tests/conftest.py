"""Session-wide fixtures: the real Kafka broker every integration test uses, and the
PostgreSQL server the projection tests run on besides SQLite.

KAFKA_BOOTSTRAP_SERVERS names a running cluster; otherwise the suite starts the pinned
KRaft node from deploy/kafka (jars from Maven Central); otherwise, where a Docker engine
runs, testcontainers. A broker that cannot be had is an error, never a skip: a green run
must mean the Kafka tests ran.
"""

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import stores


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


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A PostgreSQL server the tests may create databases on (a URL for SQLAlchemy):
    JOBLEDGER_TEST_PG_URL, or a cluster started from Debian's binaries for the session. A
    server that cannot be had is an error, never a skip (as Kafka's)."""
    from tests.pgserver import ENV_URL, PgServer

    if os.environ.get(ENV_URL):
        yield stores.asyncpg_url(os.environ[ENV_URL]).render_as_string(hide_password=False)
        # Not ours to remove: drop what the session made there (in a thread of its own,
        # as no event loop runs here; the databases of each test are dropped already).
        dropper = threading.Thread(target=asyncio.run, args=(stores.drop_templates(),))
        dropper.start()
        dropper.join()
        return
    try:
        server = PgServer()
    except Exception as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        url = server.start()
    except Exception as exc:
        server.remove()
        pytest.fail(f"could not start PostgreSQL: {exc}", pytrace=False)
    try:
        yield url
    finally:
        server.remove()  # the template and databases go with the cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def store_server(request: pytest.FixtureRequest) -> str | None:
    """The backend of ``store``: None for SQLite, else the PostgreSQL server's URL (only
    then is the server started)."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgresql_url"))


@pytest.fixture
async def store(store_server: str | None) -> AsyncIterator[stores.Store]:
    """The store ``tests.stores.engine_at`` makes databases on, once per backend."""
    store: stores.Store = (stores.SqliteStore() if store_server is None
                           else stores.PostgresStore(store_server))
    stores.activate(store)
    try:
        yield store
    finally:
        stores.activate(None)
        await store.close()
