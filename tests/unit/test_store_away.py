"""A read-model store that is away is a 503 to retry, on either store: SQLite says so with
an OperationalError, asyncpg with the socket's own error (a refused connection)."""

from litestar import Litestar, get
from litestar.testing import TestClient

from deploy.kafka.node import free_port
from projections.db import make_engine
from projections.queries import get_run
from services.api.errors import EXCEPTION_HANDLERS


def test_a_postgresql_server_that_is_away_is_a_503() -> None:
    # Nothing listens on the port: what a stopped or restarting server looks like.
    engine = make_engine(f"postgresql+asyncpg://jobledger@127.0.0.1:{free_port()}/none")

    @get("/probe")
    async def probe() -> None:
        await get_run(engine, "p", "r1")

    with TestClient(Litestar([probe], exception_handlers=EXCEPTION_HANDLERS)) as client:
        answer = client.get("/probe")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "unavailable"
    assert answer.headers["retry-after"] == "1"
