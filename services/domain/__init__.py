"""The pure domain core: commands, decide, evolve, the run state machine.

No I/O, no clock, no id generation: time and ids arrive inside the commands, so the same
command against the same state always decides the same events. The processor relies on
that to repeat a command safely after a crash.
"""

from services.domain.commands import (
    CancelRun,
    CancelWaitingRuns,
    Command,
    CreateJob,
    DeleteJob,
    DisableJob,
    DispatchRun,
    EnableJob,
    FireCronTick,
    FireDueTimers,
    ReportAttemptFailed,
    ReportAttemptSucceeded,
    SetProjectQuotas,
    SetProjectRetention,
    TriggerRun,
    TriggerRuns,
    UpdateJob,
    WakeJob,
    decode_command,
    encode_command,
    project_stream,
)
from services.domain.decide import decide
from services.domain.evolve import evolve
from services.domain.handle import Decision, handle
from services.domain.results import Rejection
from services.domain.state import (
    TERMINAL,
    Aggregate,
    JobState,
    KeyState,
    RunState,
    RunStatus,
    accepts_triggers,
    dispatch_order,
    is_enabled,
    job_due_at,
    lane_of,
    timer_due_at,
)

__all__ = [
    "TERMINAL",
    "Aggregate",
    "CancelRun",
    "CancelWaitingRuns",
    "Command",
    "CreateJob",
    "Decision",
    "DeleteJob",
    "DisableJob",
    "DispatchRun",
    "EnableJob",
    "FireCronTick",
    "FireDueTimers",
    "JobState",
    "KeyState",
    "Rejection",
    "ReportAttemptFailed",
    "ReportAttemptSucceeded",
    "RunState",
    "RunStatus",
    "SetProjectQuotas",
    "SetProjectRetention",
    "TriggerRun",
    "TriggerRuns",
    "UpdateJob",
    "WakeJob",
    "accepts_triggers",
    "decide",
    "decode_command",
    "dispatch_order",
    "encode_command",
    "evolve",
    "handle",
    "is_enabled",
    "job_due_at",
    "lane_of",
    "project_stream",
    "timer_due_at",
]
