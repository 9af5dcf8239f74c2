"""What the query functions return: plain Structs, never ORM rows."""

from datetime import datetime
from typing import Any

import msgspec


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    slug: str
    name: str
    spec: dict[str, Any]
    version: int
    enabled: bool
    created_at: datetime
    updated_at: datetime
    last_seq: int
    group_id: str | None = None
    environment_id: str | None = None
    version_id: str | None = None
    updated_by: str | None = None
    deleted_at: datetime | None = None
    next_tick_at: datetime | None = None
    webhook_disabled_at: datetime | None = None


class RunView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    job_id: str
    project_id: str
    status: str
    attempt: int
    max_attempts: int
    payload: Any
    result: Any
    metadata: dict[str, str]
    error: dict[str, Any] | None
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
    last_seq: int
    concurrency_key: str | None = None
    scheduled_at: datetime | None = None
    expires_at: datetime | None = None
    tags: dict[str, str] | None = None
    debug_mode: bool | None = None
    created_by: str | None = None
    batch_id: str | None = None
    overrides: dict[str, Any] | None = None
    execution_trace: dict[str, Any] | None = None
    heartbeat_at: datetime | None = None
    counters: dict[str, int] | None = None
    outcome_code: str | None = None
    continuation_of: str | None = None
    parent_run_id: str | None = None
    lineage_depth: int | None = None
    run_type: str | None = None
    child_counters: dict[str, int] | None = None
    purge_at: datetime | None = None
    # Computed at read time for a queued run (services/domain/holds.py), not stored.
    waiting_reason: str | None = None


class RunEventView(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    seq: int
    run_id: str | None
    project_id: str
    type: str
    version: int
    event_id: str
    command_id: str
    occurred_at: datetime
    data: dict[str, Any]


class JobVersionView(msgspec.Struct, frozen=True, kw_only=True):
    version_id: str
    job_id: str
    project_id: str
    version: int
    spec: dict[str, Any]
    changed_fields: list[str]
    backwards_compatible: bool
    created_by: str | None
    created_at: datetime
