"""The committed contracts in schemas/ are what the code generates now."""

import pytest

from schemas.export import HERE, documents


@pytest.mark.parametrize(("name", "text"), sorted(documents().items()))
def test_committed_contract_is_current(name: str, text: str) -> None:
    committed = (HERE / name).read_text()
    assert committed == text, f"schemas/{name} is stale: run `python -m schemas.export`"


def test_openapi_documents_the_native_routes() -> None:
    import json

    paths = json.loads(documents()["openapi.json"])["paths"]
    for path in ("/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{id_or_slug}/trigger",
                 "/v1/runs/{run_id}", "/v1/runs/{run_id}/cancel", "/v1/runs/{run_id}/events",
                 "/healthz", "/readyz"):
        assert path in paths, path
