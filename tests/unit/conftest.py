"""Fixtures shared by the unit tests."""

from collections.abc import AsyncIterator

import pytest

from tests.integration.endpoint import Endpoint


@pytest.fixture
async def server() -> AsyncIterator[Endpoint]:
    """A real HTTP endpoint on loopback, one per test."""
    endpoint = Endpoint()
    await endpoint.start()
    yield endpoint
    await endpoint.stop()
