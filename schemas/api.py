"""Request and response bodies of the native ``/v1`` API (seed 002's job and run objects).

Request Structs forbid unknown fields so that a misspelt option is an error, not a silent
default; constraints live in the types so the OpenAPI document shows them.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Slug = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
                           description="lowercase letters, digits, - and _; unique per project")]
Url = Annotated[str, Meta(pattern=r"^https?://", max_length=2048)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]


class CreateJobRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    slug: Slug
    endpoint_url: Url
    description: Annotated[str, Meta(max_length=2000)] = ""
    group_id: str | None = None
    fallback_endpoint_url: Url | None = None
    max_attempts: Annotated[int, Meta(ge=1, le=100)] = 3
    timeout_secs: Annotated[int, Meta(ge=1, le=3600)] = 30
    retry_strategy: Literal["fixed", "exponential", "custom"] = "fixed"
    retry_delays_secs: Annotated[list[Annotated[int, Meta(ge=0, le=86400)]],
                                 Meta(min_length=1, max_length=50)] = msgspec.field(
        default_factory=lambda: [5])
    payload_schema: dict[str, Any] | None = None
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    default_run_metadata: dict[str, str] = msgspec.field(default_factory=dict)
    cron: str | None = None
    timezone: str = "UTC"
    max_concurrency: Annotated[int, Meta(ge=1)] | None = None
    run_ttl_secs: Annotated[int, Meta(ge=1)] | None = None
    environment_id: str | None = None
    enabled: bool = True
    # Accepted for seed 002 compatibility; the project always comes from the API key.
    project_id: str | None = None


class JobResponse(msgspec.Struct, kw_only=True):
    id: str
    project_id: str
    name: str
    slug: str
    description: str
    group_id: str | None
    endpoint_url: str
    fallback_endpoint_url: str | None
    max_attempts: int
    timeout_secs: int
    retry_strategy: str
    retry_delays_secs: list[int]
    payload_schema: dict[str, Any] | None
    tags: dict[str, str]
    default_run_metadata: dict[str, str]
    cron: str | None
    timezone: str
    max_concurrency: int | None
    run_ttl_secs: int | None
    environment_id: str | None
    enabled: bool
    version: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class TriggerRunRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    payload: Any = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    priority: Annotated[int, Meta(ge=-100, le=100)] = 0
    idempotency_key: Annotated[str, Meta(max_length=200)] | None = None
    correlation_id: Annotated[str, Meta(max_length=200)] | None = None


class RunError(msgspec.Struct, kw_only=True):
    kind: str
    message: str
    status_code: int | None = None
    retryable: bool = True


class RunResponse(msgspec.Struct, kw_only=True):
    id: str
    job_id: str
    project_id: str
    status: str
    attempt: int
    max_attempts: int
    payload: Any
    result: Any
    metadata: dict[str, str]
    error: RunError | None
    triggered_by: str
    priority: int
    idempotency_key: str | None
    correlation_id: str | None
    job_version: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    next_retry_at: datetime | None
    updated_at: datetime


class CancelRunRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, Meta(max_length=500)] = "canceled by user"


class RunEventResponse(msgspec.Struct, kw_only=True):
    seq: int
    type: str
    version: int
    event_id: str
    command_id: str
    run_id: str | None
    occurred_at: datetime
    data: dict[str, Any]


class Accepted(msgspec.Struct, kw_only=True):
    """202: the command was taken but its effect was not visible within the wait bound."""

    command_id: str
    status: Literal["accepted"] = "accepted"
    location: str | None = None
    detail: str = "accepted; not yet visible in the read model, poll location"


class ErrorBody(msgspec.Struct, kw_only=True):
    status_code: int
    detail: str
    code: str | None = None
