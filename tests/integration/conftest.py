from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, start_stack, stopped_after, wait_ready

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
          request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    home: Path = tmp_path_factory.mktemp("stack")
    with stopped_after(start_stack(kafka_bootstrap, home), request) as running:
        yield running


@pytest.fixture(scope="module")
async def ready_stack(stack: RunningStack) -> RunningStack:
    await wait_ready(stack)
    return stack


@pytest.fixture(scope="session")
async def endpoint() -> AsyncIterator[Endpoint]:
    server = Endpoint()
    await server.start()
    yield server
    await server.stop()
