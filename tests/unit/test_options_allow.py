"""OPTIONS names every method of a path, also when its handlers were registered apart."""

import pytest
from litestar.testing import TestClient

from services.api.app import create_app
from services.config import Settings

KEY = "test-admin-key"


@pytest.mark.parametrize(("path", "methods"), [
    ("/v1/jobs/job_abc", "DELETE, GET, OPTIONS, PATCH"),
    ("/v1/jobs", "GET, OPTIONS, POST"),
    ("/v1/jobs/some-slug/trigger", "OPTIONS, POST"),
])
def test_allow_lists_every_method(path: str, methods: str) -> None:
    # No lifespan: OPTIONS is answered by the router alone, without Kafka or a database.
    app = create_app(Settings.from_env({"JOBLEDGER_BOOTSTRAP_KEY": KEY}))
    client = TestClient(app)
    answer = client.options(path, headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 204
    assert answer.headers["allow"] == methods
