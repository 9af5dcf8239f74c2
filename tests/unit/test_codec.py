"""Events, commands and dispatch orders survive the wire; unknown types are skipped."""

import logging
from datetime import UTC, datetime

import msgspec
import pytest

from events import (
    EVENT_TYPES,
    AttemptFailure,
    DispatchOrder,
    Envelope,
    JobSpec,
    decode_dispatch,
    decode_event,
    encode_dispatch,
    encode_event,
)
from events.types import Event, ExecutionTrace
from services.domain import decode_command, encode_command
from services.domain.commands import Command
from tests.unit.domain_support import cancel, create, fail, fire, succeed, tick, trigger

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FAILURE = AttemptFailure(kind="http_status", message="503", status_code=503)
SAMPLES: dict[str, dict[str, object]] = {
    "job.created": {"spec": JobSpec(name="n", slug="s", endpoint_url="http://x")},
    "run.triggered": {"payload": {"a": [1, 2]}, "metadata": {"k": "v"}},
    "run.dispatched": {"attempt": 1, "endpoint_url": "http://x"},
    "run.completed": {"attempt": 1, "result": {"ok": True}, "status_code": 200},
    "run.retry_scheduled": {"attempt": 1, "failure": FAILURE, "next_retry_at": NOW},
    "run.requeued": {"next_attempt": 2},
    "run.failed": {"attempt": 3, "failure": FAILURE, "status": "timed_out"},
    "run.cancel_requested": {"reason": "stop"},
    "run.canceled": {"reason": "stop", "by_system": True},
    "job.enabled": {"by": "p:admin"},
    "job.disabled": {"by": "p:admin"},
    "job.deleted": {"by": "p:admin"},
    "job.updated": {"spec": JobSpec(name="n", slug="s", endpoint_url="http://x"), "version": 2,
                    "version_id": "jv_2", "changed_fields": ["name"]},
    "job.schedule_set": {"next_tick_at": NOW, "cron": "* * * * *", "timezone": "UTC"},
    "job.cron_ticked": {"tick_at": NOW, "run_id": "run_1", "next_tick_at": NOW, "missed": 2},
    "run.expired": {"expires_at": NOW},
    "job.dispatch_held": {"until": NOW, "reason": "rate_limit"},
    "project.quotas_set": {"max_queued_runs": 5, "max_runs_per_day": None, "by": "p:admin"},
    "project.retention_set": {"run_retention_days": 7, "by": "p:admin"},
    "run.accepted": {"attempt": 1, "deadline_at": NOW, "heartbeat_due_at": NOW,
                     "trace": ExecutionTrace(queue_wait_ms=1.5, ttfb_ms=2.0)},
    "run.heartbeat_recorded": {"attempt": 1, "heartbeat_due_at": NOW},
    "run.crashed": {"attempt": 2, "heartbeat_due_at": NOW},
    "run.progress_reported": {"attempt": 1, "counters": {"numSuccess": 3}},
    "run.message_logged": {"attempt": 1, "status": 1, "text": "hi", "tool_id": 7},
    "run.child_spawned": {"attempt": 1, "child_job_id": "job_c", "child_run_id": "run_c",
                          "run_type": "export", "payload": {"page": 1}},
    "job.dependent_added": {"downstream_job_id": "job_b", "condition": "on_failure"},
    "job.dependent_removed": {"downstream_job_id": "job_b", "by": "p:admin"},
    "run.webhook_attempted": {"message_id": "msg_1", "event_type": "run.completed",
                              "delivery_attempt": 2, "delivered": False, "final": False,
                              "status_code": 500, "error": "the webhook answered 500"},
    "job.webhook_disabled": {"url": "https://e.example/h", "reason": "410 Gone"},
    "project.operation_started": {"operation_id": "op_1", "job_ids": ["job_a", "job_b"],
                                  "job_version": 2, "by": "p:admin"},
    "job.sweep_started": {"operation_id": "op_1", "up_to": 40, "job_version": 2},
    "job.sweep_progressed": {"operation_id": "op_1", "cursor": 12, "canceled": 7},
    "job.sweep_finished": {"operation_id": "op_1", "canceled": 9, "superseded": True},
}


def envelope(type_: str, version: int = 1) -> Envelope:
    return Envelope(event_id="e1", type=type_, version=version, project_id="p", job_id="j",
                    seq=7, occurred_at=NOW, command_id="c1", run_id="r1")


def test_samples_cover_every_event_type() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_every_event_round_trips(type_: str) -> None:
    event: Event = EVENT_TYPES[type_](**SAMPLES[type_])  # type: ignore[assignment]
    decoded = decode_event(encode_event(envelope(type_), event))
    assert decoded is not None
    assert decoded.envelope == envelope(type_) and decoded.event == event


def test_unknown_type_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    raw = encode_event(envelope("run.completed"), EVENT_TYPES["run.completed"](attempt=1))
    with caplog.at_level(logging.WARNING):
        assert decode_event(raw.replace(b"run.completed", b"run.teleported")) is None
    assert "run.teleported" in caplog.text


def test_newer_version_is_skipped_and_unknown_fields_are_ignored() -> None:
    event = EVENT_TYPES["run.requeued"](next_attempt=2)
    raw = encode_event(envelope("run.requeued", version=2), event)
    assert decode_event(raw) is None
    wire = msgspec.json.decode(encode_event(envelope("run.requeued"), event))
    wire["data"]["added_by_a_newer_producer"] = 1
    decoded = decode_event(msgspec.json.encode(wire))
    assert decoded is not None and decoded.event == event


@pytest.mark.parametrize("command", [create(), trigger(), succeed(result=[1]), fail(),
                                     cancel(), fire(NOW), tick(NOW)],
                         ids=lambda c: type(c).__name__)
def test_commands_round_trip(command: Command) -> None:
    assert decode_command(encode_command(command)) == command


def test_dispatch_order_round_trip_and_idempotency_key() -> None:
    order = DispatchOrder(run_id="r1", job_id="j", project_id="p", attempt=2,
                          endpoint_url="http://x", timeout_secs=5, payload={"a": 1})
    assert decode_dispatch(encode_dispatch(order)) == order
    assert order.idempotency_key == "r1:2"
