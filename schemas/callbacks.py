"""Bodies of the callbacks an endpoint makes about the attempt it works on, with the run
token it received (``Authorization: Bearer rt_...``)."""

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from schemas.text import line

Count = Annotated[int, Meta(ge=0, le=2**53)]
MessageText = Annotated[str, Meta(max_length=4000)]
FailureText = Annotated[str, line(2000, min_length=1)]


class HeartbeatRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Nothing but the call itself: the endpoint is alive."""


class ProgressRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True,
                      rename="camel"):
    """The attempt's record counters so far (totals, seed 004's names); each replaces the
    last one reported, and a parent run shows its own plus its children's."""

    num_success: Count | None = None
    num_error: Count | None = None
    num_ignore: Count | None = None
    num_export: Count | None = None
    num_pages_generated: Count | None = None
    num_pages_processed: Count | None = None


class MessageRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Seed 003's job message: ``{"status", "text", "toolId"}``."""

    status: Annotated[int, Meta(ge=-(2**31), le=2**31)]
    text: MessageText
    toolId: Annotated[int, Meta(ge=0, le=2**53)] | None = None


class CompleteRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    result: Annotated[Any, Meta(description="the run's result: any JSON within the limits")] = None


class FailRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    error: FailureText
    retryable: Annotated[bool, Meta(description="false: no further attempt, whatever "
                                                "attempts are left")] = True


class ChildRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A child run of another job of the project (seed 004's job tree)."""

    job_id: Annotated[str, Meta(min_length=1, max_length=64,
                                description="the child's job, by id or slug")]
    payload: Annotated[Any, Meta(description="checked against the job's payload_schema")] = None
    type: Literal["flow", "export", "import", "task"] = "task"


class ChildAnswer(msgspec.Struct, kw_only=True):
    id: str
    job_id: str
    parent_run_id: str
    lineage_depth: int
    type: str
    status: Annotated[str, Meta(description="accepted: the parent recorded it; the run "
                                            "appears at location once its job took it")]
    location: str


class CallbackAnswer(msgspec.Struct, kw_only=True):
    run_id: str
    attempt: int
    cancel_requested: Annotated[bool, Meta(
        description="the run was asked to stop: stop working and report (fail or "
                    "complete); it ends canceled either way")] = False
