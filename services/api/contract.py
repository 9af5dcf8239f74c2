"""What each route accepts and answers, completed into the OpenAPI document.

Litestar documents the success responses from the handlers' return types. Handlers read
their bodies themselves (strictly, after authentication; see ``body.py``), so the request
bodies, every error status a route gives, the 202 of the read-your-writes bound and the
bearer scheme are declared here and written into the document Litestar builds.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from schemas.api import (
    Accepted,
    BatchToggleRequest,
    BulkTriggerRequest,
    CancelRunRequest,
    CancelWaitingRequest,
    CloneJobRequest,
    CreateJobRequest,
    DependencyRequest,
    ErrorBody,
    PatchJobRequest,
    QuotasRequest,
    RetentionRequest,
    TriggerRunRequest,
)
from schemas.callbacks import (
    ChildRequest,
    CompleteRequest,
    FailRequest,
    HeartbeatRequest,
    MessageRequest,
    ProgressRequest,
)
from schemas.limits import MAX_JSON_DEPTH, MAX_JSON_INT, MIN_JSON_INT
from schemas.streams import StreamEvent
from schemas.text import published
from services.api.job_batch import MAX_BATCH


@dataclass(frozen=True)
class Route:
    errors: tuple[int, ...]
    body: type[msgspec.Struct] | None = None
    body_required: bool = False
    # The body is an array of ``body`` of at most this many items (a batch), not one.
    body_items: int | None = None
    # Patterns of the items of list query parameters (Litestar does not publish them).
    item_patterns: dict[str, str] = field(default_factory=dict)
    # Commands answer 202 when their effect is not visible within the wait bound.
    accepted: bool = False
    public: bool = False
    # A request body that the route accepts as it stands, shown in the docs (and sent by
    # schemathesis's examples phase).
    example: dict[str, Any] | None = None
    # What a success answer leads to: link name -> (method, path, parameter, where the
    # response holds its value), written as OpenAPI links on the 2xx answer.
    links: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)
    # Answers 200 with the 201 body when an idempotency key names an earlier run.
    replays: bool = False
    # Called with a run token (the endpoint's callbacks), not an API key.
    run_token: bool = False
    # What a status means on this route, where it differs from DESCRIPTIONS.
    descriptions: dict[int, str] = field(default_factory=dict)
    # Answers 200 with a stream of server-sent events, each one's data a StreamEvent.
    event_stream: bool = False


# Reads answer 503 too when the read models' database is locked or away.
_READ = (401, 404, 503)
_COMMAND = (400, 401, 403, 404, 409, 413, 422, 503)

_JOB = "/v1/jobs/{job_id}"
_TRIGGER = "/v1/jobs/{id_or_slug}/trigger"
_RUN = "/v1/runs/{run_id}"
_CANCEL = "/v1/runs/{run_id}/cancel"
_EVENTS = "/v1/runs/{run_id}/events"

# From a job (a Job) and from a run (a Run) to what can be done with it.
_JOB_LINKS = {
    "ReadJob": ("get", _JOB, "job_id", "$response.body#/id"),
    "TriggerJob": ("post", _TRIGGER, "id_or_slug", "$response.body#/id"),
    "TriggerJobBySlug": ("post", _TRIGGER, "id_or_slug", "$response.body#/slug"),
}
_RUN_LINKS = {
    "ReadRun": ("get", _RUN, "run_id", "$response.body#/id"),
    "CancelRun": ("post", _CANCEL, "run_id", "$response.body#/id"),
    "RunEvents": ("get", _EVENTS, "run_id", "$response.body#/id"),
    "ReadRunJob": ("get", _JOB, "job_id", "$response.body#/job_id"),
}

_STREAM = {422: "The Last-Event-ID (or after) is not an id the stream sent, or a filter "
                "is invalid; details name it",
           429: "The server has its most live streams open (Retry-After says when to try "
                "again)"}

ROUTES: dict[tuple[str, str], Route] = {
    ("post", "/v1/jobs"): Route(
        (400, 401, 403, 409, 413, 422, 503), CreateJobRequest, body_required=True,
        accepted=True, links=_JOB_LINKS,
        example={"name": "Nightly report", "slug": "nightly-report",
                 "endpoint_url": "https://example.com/hooks/report",
                 "max_attempts": 5, "timeout_secs": 60, "retry_strategy": "exponential",
                 "retry_delays_secs": [10], "tags": {"team": "data"}}),
    ("get", _JOB): Route(_READ, links=_JOB_LINKS),
    ("get", "/v1/jobs"): Route((400, 401, 422, 503), item_patterns={"tag": "^[^:]+:"}),
    ("post", "/v1/jobs/batch"): Route((400, 401, 403, 413, 422, 503), CreateJobRequest,
                                      body_required=True, body_items=MAX_BATCH),
    ("post", "/v1/jobs/{id_or_slug}/clone"): Route(
        (400, 401, 403, 404, 409, 413, 422, 503), CloneJobRequest, body_required=True,
        accepted=True, links=_JOB_LINKS, example={"slug": "nightly-report-copy"}),
    ("delete", _JOB): Route((401, 403, 404, 503), accepted=True),
    ("patch", _JOB): Route(
        _COMMAND, PatchJobRequest, body_required=True, accepted=True, links=_JOB_LINKS,
        example={"timeout_secs": 90, "fallback_endpoint_url": None}),
    ("get", "/v1/jobs/{id_or_slug}/versions"): Route((400, 401, 404, 422, 503)),
    ("get", "/v1/jobs/{id_or_slug}/versions/{version_id}"): Route(_READ),
    ("post", _TRIGGER): Route((*_COMMAND, 429), TriggerRunRequest, accepted=True, links=_RUN_LINKS,
                              replays=True, example={"payload": {"date": "2024-05-01"},
                                       "metadata": {"requested_by": "docs"},
                                       "idempotency_key": "report-2024-05-01"}),
    ("get", _RUN): Route(_READ, links=_RUN_LINKS),
    ("post", _CANCEL): Route(_COMMAND, CancelRunRequest, accepted=True, links=_RUN_LINKS,
                             example={"reason": "not needed any more"}),
    ("get", _EVENTS): Route(_READ),
    ("post", _TRIGGER + "/bulk"): Route(
        _COMMAND, BulkTriggerRequest, body_required=True,
        example={"items": [{"payload": {"n": 1}}, {"payload": {"n": 2}, "priority": 5}]}),
    ("post", "/v1/jobs/batch-enable"): Route(
        (400, 401, 403, 413, 422, 503), BatchToggleRequest, body_required=True,
        example={"ids": ["nightly-report"]}),
    ("post", "/v1/jobs/batch-disable"): Route(
        (400, 401, 403, 413, 422, 503), BatchToggleRequest, body_required=True,
        example={"ids": ["nightly-report"]}),
    ("get", "/v1/quotas"): Route((401, 503)),
    ("put", "/v1/quotas"): Route((400, 401, 403, 413, 422, 503), QuotasRequest,
                                 body_required=True, accepted=True,
                                 example={"max_queued_runs": 10000, "max_runs_per_day": None}),
    ("get", "/v1/retention"): Route((401, 503)),
    ("put", "/v1/retention"): Route((400, 401, 403, 413, 422, 503), RetentionRequest,
                                    body_required=True, accepted=True,
                                    example={"run_retention_days": 30}),
    **{("post", f"{_RUN}/{name}"): Route((400, 401, 403, 404, 409, 413, 422, 503), body,
                                          body_required=required, run_token=True,
                                          accepted=True)
       for name, body, required in (("heartbeat", HeartbeatRequest, False),
                                    ("progress", ProgressRequest, True),
                                    ("messages", MessageRequest, True),
                                    ("complete", CompleteRequest, False),
                                    ("fail", FailRequest, True),
                                    ("children", ChildRequest, True))},
    ("get", f"{_RUN}/messages"): Route(_READ),
    ("get", "/v1/runs/dlq"): Route((400, 401, 422, 503)),
    ("get", "/v1/runs"): Route((400, 401, 422, 503),
                               item_patterns={"tag": "^[^:]+:", "metadata": "^[^:]+:"}),
    ("get", f"{_RUN}/children"): Route((400, 401, 404, 422, 503)),
    ("get", f"{_RUN}/lineage"): Route(_READ),
    ("get", "/v1/jobs/{id_or_slug}/health"): Route((400, 401, 404, 422, 503)),
    ("get", "/v1/metrics"): Route((400, 401, 404, 422, 503)),
    ("post", "/v1/runs/cancel-waiting"): Route((400, 401, 403, 404, 413, 422, 503),
                                               CancelWaitingRequest, accepted=True,
                                               example={"job_id": "nightly-report"}),
    ("get", "/v1/operations/{operation_id}"): Route(_READ),
    ("post", f"{_JOB}/dependencies"): Route(_COMMAND, DependencyRequest, body_required=True,
                                            accepted=True,
                                            example={"depends_on": "nightly-extract",
                                                     "condition": "on_success"}),
    ("get", f"{_JOB}/dependencies"): Route(_READ),
    ("delete", f"{_JOB}/dependencies"): Route((400, 401, 403, 404, 422, 503), accepted=True),
    ("delete", f"{_JOB}/dependencies/{{depends_on}}"): Route((401, 403, 404, 503),
                                                             accepted=True),
    ("post", f"{_RUN}/replay"): Route((401, 403, 404, 409, 429, 503), accepted=True,
                                      replays=True, links=_RUN_LINKS),
    # Live streams (server-sent events): 422 for a malformed Last-Event-ID or filter, 429
    # when the server has its most streams open.
    ("get", f"{_RUN}/stream"): Route((401, 404, 422, 429, 503), descriptions=_STREAM,
                                      event_stream=True),
    ("get", "/v1/events/stream"): Route((401, 422, 429, 503), descriptions=_STREAM,
                                           event_stream=True),
    ("get", "/healthz"): Route((), public=True),
    ("get", "/readyz"): Route((503,), public=True),
}

DESCRIPTIONS = {
    202: "Accepted: the command is durable but its effect was not visible within the wait "
         "bound; poll the Location",
    400: "The body is not JSON",
    401: "No API key (or run token), or an unknown one",
    403: "The API key's role may not do this (or the key or token is not for this route)",
    404: "No such resource in the key's project",
    409: "The resource's state does not allow this (for a callback: its attempt ended)",
    413: "The body is over the size limit",
    422: "The body is JSON but breaks the contract; details name the fields",
    429: "A project quota is reached (code JOB_QUOTA_EXCEEDED; Retry-After says when to "
         "try again)",
    503: "A part the API depends on is not reachable; try again",
}

# What the request schemas cannot say themselves (a JSON Schema "integer" is a value, so
# 30.0 is one; a range or depth for "any JSON value" cannot be stated).
STRICTNESS = (
    " Request bodies are decoded strictly: unknown fields are refused, an integer field "
    "takes an integer written as one (30, not 30.0 or 3e1), a boolean takes true or false. "
    f"Any JSON value (a payload, a payload_schema) nests at most {MAX_JSON_DEPTH} levels "
    f"deep, with integers within [{MIN_JSON_INT}, {MAX_JSON_INT}].")

SECURITY_SCHEME = "bearerAuth"
RUN_TOKEN_SCHEME = "runToken"
_REF = "#/components/schemas/{name}"


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


# The response objects under the names of the resources they are, not of their classes
# (Litestar's default): clients, and tools such as schemathesis's stateful phase, match a
# route's resource (/v1/jobs: Job) with its schema by this name.
RESOURCE_NAMES = {"JobResponse": "Job", "RunResponse": "Run", "RunEventResponse": "RunEvent",
                  "JobVersionResponse": "JobVersion"}


def _walk(node: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    """Call ``visit`` on every object (dict) in ``node``, depth first."""
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for item in node:
            _walk(item, visit)


def _publish_pattern(schema: dict[str, Any]) -> None:
    """Write a ``pattern`` in the JSON Schema's dialect (see ``schemas.text``)."""
    if isinstance(schema.get("pattern"), str):
        schema["pattern"] = published(schema["pattern"])


def _rename_ref(node: dict[str, Any]) -> None:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF.format(name="")):
        name = ref.rsplit("/", 1)[-1]
        node["$ref"] = _REF.format(name=RESOURCE_NAMES.get(name, name))


def complete_openapi(doc: dict[str, Any]) -> dict[str, Any]:
    """Write the routes' declarations into ``doc`` (Litestar's document) in place."""
    bodies = sorted({r.body for r in ROUTES.values() if r.body is not None},
                    key=lambda t: t.__name__)
    structs: list[type[msgspec.Struct]] = [*bodies, ErrorBody, Accepted, StreamEvent]
    _, components = msgspec.json.schema_components(structs, ref_template=_REF)
    _walk(components, _publish_pattern)
    info = doc.setdefault("info", {})
    info["description"] = info.get("description", "") + STRICTNESS
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(components)
    for old, new in RESOURCE_NAMES.items():
        if old in schemas:
            schemas[new] = schemas.pop(old)
            if schemas[new].get("title") == old:
                schemas[new]["title"] = new
    _walk(doc, _rename_ref)
    doc["components"]["securitySchemes"] = {SECURITY_SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`. The key's project "
                       "scopes everything the request sees."}, RUN_TOKEN_SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "A run token (`rt_...`): what the executor sent the endpoint in "
                       "X-Run-Token with the attempt; valid for that run and attempt only."}}
    error = {"$ref": _REF.format(name="ErrorBody")}
    for (method, path), route in ROUTES.items():
        operation = doc["paths"][path][method]
        responses: dict[str, Any] = {
            status: answer for status, answer in operation.get("responses", {}).items()
            if status.startswith("2")}
        if route.replays:
            responses["200"] = {
                "description": "An idempotency hit: the run this idempotency_key made "
                               "within the job's dedup_window_secs; nothing new was made",
                "content": responses["201"]["content"]}
        if route.event_stream:
            responses["200"] = {
                "description": "Server-sent events: a `retry` hint, then per event `id`, "
                               "`event` (its type) and one `data` line holding a "
                               "StreamEvent as JSON; `: keep-alive` comments while idle",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}}
        if route.accepted:
            responses["202"] = {
                "description": DESCRIPTIONS[202],
                "headers": {"Location": {"schema": {"type": "string"},
                                         "description": "where the resource will be"}},
                "content": _json({"$ref": _REF.format(name="Accepted")})}
        for status in route.errors:
            described = route.descriptions.get(status) or DESCRIPTIONS.get(status, "Error")
            answer: dict[str, Any] = {"description": described,
                                      "content": _json(error)}
            if status == 401:
                answer["headers"] = {"WWW-Authenticate": {
                    "schema": {"type": "string"}, "required": True,
                    "description": 'Bearer realm="jobledger"'}}
            responses[str(status)] = answer
        if path == "/readyz":
            responses["503"] = {"description": "Not ready: see checks",
                                "content": responses["200"]["content"]}
        if route.links:
            links = {name: {"operationId": doc["paths"][target][verb]["operationId"],
                            "parameters": {parameter: value}}
                     for name, (verb, target, parameter, value) in route.links.items()}
            for code, success in responses.items():
                if code in ("200", "201"):
                    success["links"] = links
        operation["responses"] = responses
        for parameter in operation.get("parameters", []):
            if (pattern := route.item_patterns.get(parameter["name"])) is not None:
                for option in parameter["schema"].get("oneOf", [parameter["schema"]]):
                    if option.get("type") == "array":
                        option["items"] = {**option.get("items", {}), "pattern": pattern}
        scheme = RUN_TOKEN_SCHEME if route.run_token else SECURITY_SCHEME
        operation["security"] = [] if route.public else [{scheme: []}]
        if route.body is not None:
            schema: dict[str, Any] = {"$ref": _REF.format(name=route.body.__name__)}
            if route.body_items is not None:
                # Any item is taken and answered in its place (a bad one is refused alone),
                # so the items are described, not constrained: only the array is.
                item = {"description": f"as the body of one {route.body.__name__}; each is "
                                       "checked on its own and answered in its place"}
                schema = {"type": "array", "items": item, "minItems": 1,
                          "maxItems": route.body_items}
            media = _json(schema)
            if route.example is not None:
                msgspec.convert(route.example, route.body, strict=True)  # it must be valid
                media["application/json"]["example"] = route.example
            operation["requestBody"] = {"required": route.body_required, "content": media}
    return doc
