"""What each route accepts and answers, completed into the OpenAPI document.

Litestar documents the success responses from the handlers' return types. Handlers read
their bodies themselves (strictly, after authentication; see ``body.py``), so the request
bodies, every error status a route gives, the 202 of the read-your-writes bound and the
bearer scheme are declared here and written into the document Litestar builds.
"""

from dataclasses import dataclass, field
from typing import Any

import msgspec

from schemas.api import Accepted, CancelRunRequest, CreateJobRequest, ErrorBody, TriggerRunRequest


@dataclass(frozen=True)
class Route:
    errors: tuple[int, ...]
    body: type[msgspec.Struct] | None = None
    body_required: bool = False
    # Commands answer 202 when their effect is not visible within the wait bound.
    accepted: bool = False
    public: bool = False
    extra: dict[int, str] = field(default_factory=dict)


_READ = (401, 404)
_COMMAND = (400, 401, 403, 404, 409, 413, 422, 503)

ROUTES: dict[tuple[str, str], Route] = {
    ("post", "/v1/jobs"): Route((400, 401, 403, 409, 413, 422, 503), CreateJobRequest,
                                body_required=True, accepted=True),
    ("get", "/v1/jobs/{job_id}"): Route(_READ),
    ("post", "/v1/jobs/{id_or_slug}/trigger"): Route(_COMMAND, TriggerRunRequest,
                                                     accepted=True),
    ("get", "/v1/runs/{run_id}"): Route(_READ),
    ("post", "/v1/runs/{run_id}/cancel"): Route(_COMMAND, CancelRunRequest, accepted=True),
    ("get", "/v1/runs/{run_id}/events"): Route(_READ),
    ("get", "/healthz"): Route((), public=True),
    ("get", "/readyz"): Route((503,), public=True),
}

DESCRIPTIONS = {
    202: "Accepted: the command is durable but its effect was not visible within the wait "
         "bound; poll the Location",
    400: "The body is not JSON",
    401: "No API key, or an unknown one",
    403: "The API key's role may not do this",
    404: "No such resource in the key's project",
    409: "The resource's state does not allow this",
    413: "The body is over the size limit",
    422: "The body is JSON but breaks the contract; details name the fields",
    503: "A part the API depends on is not reachable; try again",
}

SECURITY_SCHEME = "bearerAuth"
_REF = "#/components/schemas/{name}"


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def complete_openapi(doc: dict[str, Any]) -> dict[str, Any]:
    """Write the routes' declarations into ``doc`` (Litestar's document) in place."""
    bodies = sorted({r.body for r in ROUTES.values() if r.body is not None},
                    key=lambda t: t.__name__)
    structs: list[type[msgspec.Struct]] = [*bodies, ErrorBody, Accepted]
    _, components = msgspec.json.schema_components(structs, ref_template=_REF)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(components)
    doc["components"]["securitySchemes"] = {SECURITY_SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`. The key's project "
                       "scopes everything the request sees."}}
    error = {"$ref": _REF.format(name="ErrorBody")}
    for (method, path), route in ROUTES.items():
        operation = doc["paths"][path][method]
        responses: dict[str, Any] = {
            status: answer for status, answer in operation.get("responses", {}).items()
            if status.startswith("2")}
        if route.accepted:
            responses["202"] = {
                "description": DESCRIPTIONS[202],
                "headers": {"Location": {"schema": {"type": "string"},
                                         "description": "where the resource will be"}},
                "content": _json({"$ref": _REF.format(name="Accepted")})}
        for status in route.errors:
            answer: dict[str, Any] = {"description": DESCRIPTIONS.get(status, "Error"),
                                      "content": _json(error)}
            if status == 401:
                answer["headers"] = {"WWW-Authenticate": {
                    "schema": {"type": "string"}, "required": True,
                    "description": 'Bearer realm="jobledger"'}}
            responses[str(status)] = answer
        if path == "/readyz":
            responses["503"] = {"description": "Not ready: see checks",
                                "content": responses["200"]["content"]}
        operation["responses"] = responses
        operation["security"] = [] if route.public else [{SECURITY_SCHEME: []}]
        if route.body is not None:
            operation["requestBody"] = {
                "required": route.body_required,
                "content": _json({"$ref": _REF.format(name=route.body.__name__)})}
    return doc
