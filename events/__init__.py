"""What happened in jobledger: event bodies, their envelope, the codec and topic names.

Subscribers of the job topics depend on this package and nothing else.
"""

from events.codec import DecodedEvent, decode_event, encode_event
from events.dispatch import DispatchOrder, decode_dispatch, encode_dispatch
from events.envelope import Envelope
from events.topics import Topics
from events.types import (
    EVENT_TYPES,
    AttemptFailure,
    Event,
    JobCreated,
    JobSpec,
    RunCanceled,
    RunCancelRequested,
    RunCompleted,
    RunDispatched,
    RunFailed,
    RunRequeued,
    RunRetryScheduled,
    RunTriggered,
)

__all__ = [
    "EVENT_TYPES",
    "AttemptFailure",
    "DecodedEvent",
    "DispatchOrder",
    "Envelope",
    "Event",
    "JobCreated",
    "JobSpec",
    "RunCancelRequested",
    "RunCanceled",
    "RunCompleted",
    "RunDispatched",
    "RunFailed",
    "RunRequeued",
    "RunRetryScheduled",
    "RunTriggered",
    "Topics",
    "decode_dispatch",
    "decode_event",
    "encode_dispatch",
    "encode_event",
]
