"""Job definitions in the core: create records a version id and how the job starts;
enable and disable toggle whether it takes triggers, a repeat records nothing."""

from events.types import (
    JobCreated,
    JobDeleted,
    JobDisabled,
    JobEnabled,
    JobUpdated,
    RateLimitKey,
)
from services.domain import (
    DeleteJob,
    DisableJob,
    EnableJob,
    Rejection,
    UpdateJob,
    accepts_triggers,
    decide,
    handle,
)
from services.domain.versions import version_id_for
from tests.unit.domain_support import T0, cid, create, empty, given, spec, trigger


def enable(on: bool = True) -> EnableJob | DisableJob:
    kind = EnableJob if on else DisableJob
    return kind(command_id=cid(), project_id="p", job_id="j", issued_at=T0, actor="p:admin")


def test_version_ids_are_deterministic_and_distinct() -> None:
    assert version_id_for("j", 1) == version_id_for("j", 1)
    assert version_id_for("j", 1) != version_id_for("j", 2)
    assert version_id_for("j", 1) != version_id_for("k", 1)
    assert version_id_for("j", 1).startswith("jv_")


def test_create_records_version_1_its_id_and_how_the_job_starts() -> None:
    command = create(enabled=False, rate_limit_keys=[RateLimitKey(name="a", max=1,
                                                                 window_secs=5)])
    events = decide(empty(), command, T0)
    assert not isinstance(events, Rejection)
    [(_, event)] = events
    assert event == JobCreated(spec=command.spec, version=1,
                               version_id=version_id_for("j", 1), enabled=False)


def test_an_old_job_created_without_enabled_reads_the_spec() -> None:
    state = given([(None, JobCreated(spec=spec(enabled=False)))])
    assert not accepts_triggers(state.job)
    state = given([(None, JobCreated(spec=spec(enabled=True)))])
    assert accepts_triggers(state.job)


def test_disable_then_trigger_is_refused_with_a_clear_reason() -> None:
    state = handle(empty(), create()).state
    decision = handle(state, enable(False))
    assert [e for _, e in decision.events] == [JobDisabled(by="p:admin")]
    assert decision.state.job.updated_by == "p:admin"
    refused = decide(decision.state, trigger(), T0)
    assert isinstance(refused, Rejection) and refused.code == "conflict"
    assert "disabled" in refused.reason


def test_a_repeat_toggle_records_nothing_and_is_not_refused() -> None:
    state = handle(empty(), create()).state
    again = handle(state, enable(True))
    assert again.events == [] and not again.answer.rejected
    assert again.answer.seq == state.job.seq
    off = handle(state, enable(False)).state
    assert handle(off, enable(False)).events == []


def test_enable_again_takes_triggers() -> None:
    state = handle(empty(), create(enabled=False)).state
    decision = handle(state, enable(True))
    assert [e for _, e in decision.events] == [JobEnabled(by="p:admin")]
    assert not handle(decision.state, trigger()).answer.rejected


def test_toggling_a_missing_job_is_not_found() -> None:
    refused = decide(empty(), enable(False), T0)
    assert isinstance(refused, Rejection) and refused.code == "not_found"


def test_api_rules_for_the_new_fields() -> None:
    import hashlib

    import msgspec
    import pytest

    from schemas.api import CreateJobRequest
    from services.api.errors import ApiError
    from services.api.job_rules import check_limits
    from services.api.jobs import spec_of
    from services.api.webhook_fields import secret_fields

    def body(**fields: object) -> CreateJobRequest:
        return msgspec.convert({"name": "n", "slug": "s", "endpoint_url": "http://e.example/x",
                                **fields}, CreateJobRequest, strict=True)

    with pytest.raises(ApiError) as half:
        check_limits(body(rate_limit_max=5))
    assert half.value.details[0].field == "rate_limit_window_secs"
    twice = [{"name": "a", "max": 1, "window_secs": 1}] * 2
    with pytest.raises(ApiError) as dup:
        check_limits(body(rate_limit_keys=twice))
    assert dup.value.details[0].field == "rate_limit_keys/1/name"
    check_limits(body(rate_limit_max=5, rate_limit_window_secs=60))
    given = body(webhook_secret="s3cret-value", webhook_url="http://e.example/hook")
    fields = secret_fields(b"service", "job_s", given=given.webhook_secret,
                           webhook_url=given.webhook_url)
    made = spec_of(given, "p:admin", fields)
    assert made.webhook_secret_sha256 == hashlib.sha256(b"s3cret-value").hexdigest()
    assert "s3cret-value" not in msgspec.json.encode(made).decode()
    assert made.webhook_secret_sealed is not None and fields.shown is None
    # None given with a webhook_url: one is made, and shown (this once).
    fields = secret_fields(b"service", "job_s", given=None, webhook_url="http://e.example/h")
    assert fields.shown is not None and fields.shown.startswith("whsec_")
    assert secret_fields(b"service", "job_s", given=None, webhook_url=None).sealed is None
    with pytest.raises(ApiError) as empty_key:
        secret_fields(b"service", "job_s", given="-----", webhook_url=None)
    assert empty_key.value.details[0].field == "webhook_secret"


def delete() -> DeleteJob:
    return DeleteJob(command_id=cid(), project_id="p", job_id="j", issued_at=T0,
                     actor="p:admin")


def test_after_delete_commands_are_not_found_but_a_run_can_be_canceled() -> None:
    from tests.unit.domain_support import cancel

    state = handle(empty(), create()).state
    state = handle(state, trigger("r1")).state
    deleted = handle(state, delete())
    assert [e for _, e in deleted.events] == [JobDeleted(by="p:admin")]
    state = deleted.state
    for command in (trigger("r2"), enable(False), delete()):
        refused = decide(state, command, T0)
        assert isinstance(refused, Rejection) and refused.code == "not_found", command
    # Its runs stay readable, and a running one may still be stopped.
    stopped = decide(state, cancel("r1"), T0)
    assert not isinstance(stopped, Rejection)
    assert [type(e).__name__ for _, e in stopped] == ["RunCancelRequested"]
    again = decide(state, create(), T0)
    assert isinstance(again, Rejection) and again.code == "conflict"
    assert "deleted" in again.reason


def test_a_delayed_run_of_a_deleted_job_is_canceled_when_its_retry_is_due() -> None:
    from tests.unit.domain_support import at, fail, fire

    state = handle(empty(), create()).state
    state = handle(state, trigger("r1")).state
    state = handle(state, fail("r1")).state
    state = handle(state, delete()).state
    decision = handle(state, fire(at(3600)))
    assert [type(e).__name__ for _, e in decision.events] == ["RunCanceled"]
    assert decision.state.runs["r1"].status.value == "canceled"


def update(**changes: object) -> UpdateJob:
    return UpdateJob(command_id=cid(), project_id="p", job_id="j", issued_at=T0,
                     actor="p:operator", changes=changes)


def test_every_update_makes_a_new_version_of_the_whole_spec() -> None:
    state = handle(empty(), create(timeout_secs=30, tags={"a": "1"})).state
    first = handle(state, update(timeout_secs=90, fallback_endpoint_url=None))
    [(_, event)] = first.events
    assert isinstance(event, JobUpdated)
    assert (event.version, event.version_id) == (2, version_id_for("j", 2))
    assert event.changed_fields == ["timeout_secs"]  # the fallback was null already
    assert event.spec.timeout_secs == 90 and event.spec.tags == {"a": "1"}
    assert first.state.job.version == 2 and first.state.job.updated_by == "p:operator"
    same = handle(first.state, update())
    [(_, empty_change)] = same.events
    assert isinstance(empty_change, JobUpdated) and empty_change.version == 3
    assert empty_change.changed_fields == []


def test_an_update_may_not_change_the_slug_or_make_an_invalid_spec() -> None:
    state = handle(empty(), create()).state
    for changes in ({"slug": "other"}, {"enabled": False}, {"max_attempts": "three"}):
        refused = decide(state, update(**changes), T0)
        assert isinstance(refused, Rejection) and refused.code == "invalid", changes


def test_an_update_keeps_the_jobs_enabled_state() -> None:
    state = handle(empty(), create()).state
    state = handle(state, enable(False)).state
    [(_, event)] = handle(state, update(name="x")).events
    assert isinstance(event, JobUpdated) and event.spec.enabled is False


def dispatched(decision_events: list) -> list:
    from events.types import RunDispatched

    return [e for _, e in decision_events if isinstance(e, RunDispatched)]


def test_pin_runs_with_the_version_it_was_triggered_with_latest_with_the_newest() -> None:
    from tests.unit.domain_support import succeed

    for policy, expected in (("pin", "http://e.example/x"), ("latest", "http://new.example/y")):
        state = handle(empty(), create(max_concurrency=1, version_policy=policy,
                                       fallback_endpoint_url="http://fb.example/z")).state
        state = handle(state, trigger("r1")).state  # starts at once
        state = handle(state, trigger("r2")).state  # waits, triggered with version 1
        state = handle(state, update(endpoint_url="http://new.example/y",
                                     fallback_endpoint_url=None, timeout_secs=99)).state
        [started] = dispatched(handle(state, succeed("r1")).events)
        assert started.endpoint_url == expected, policy
        assert started.job_version == 1
        if policy == "pin":
            assert (started.fallback_endpoint_url, started.timeout_secs) == (
                "http://fb.example/z", 30)
        else:
            assert (started.fallback_endpoint_url, started.timeout_secs) == (None, 99)


def test_an_incompatible_schema_change_fails_older_queued_runs_under_latest() -> None:
    from events.types import RunFailed
    from tests.unit.domain_support import succeed

    state = handle(empty(), create(max_concurrency=1, version_policy="latest")).state
    state = handle(state, trigger("r1")).state
    state = handle(state, trigger("r2")).state
    state = handle(state, trigger("r3")).state
    state = handle(state, update(payload_schema={"type": "object"},
                                 backwards_compatible=False)).state
    assert state.job.compat_floor == 2
    state = handle(state, trigger("r4")).state  # version 2: may run
    decision = handle(state, succeed("r1"))
    failed = [(rid, e) for rid, e in decision.events if isinstance(e, RunFailed)]
    assert [rid for rid, _ in failed] == ["r2", "r3"]
    failure = failed[0][1].failure
    assert failure.kind == "incompatible_version" and not failure.retryable
    assert "version 1" in failure.message and "version 2" in failure.message
    # Their room went to the next compatible run, in the same command.
    [started] = dispatched(decision.events)
    assert started.job_version == 2 and decision.state.runs["r4"].status.value == "running"


def test_compatible_or_schema_free_updates_and_pin_keep_old_runs_runnable() -> None:
    for policy, changes in (("latest", {"payload_schema": {"type": "object"}}),
                            ("latest", {"timeout_secs": 5, "backwards_compatible": False}),
                            ("pin", {"payload_schema": {"type": "object"},
                                     "backwards_compatible": False})):
        state = handle(empty(), create(max_concurrency=1, version_policy=policy)).state
        state = handle(state, trigger("r1")).state
        state = handle(state, trigger("r2")).state
        state = handle(state, update(**changes)).state
        from tests.unit.domain_support import succeed

        assert len(dispatched(handle(state, succeed("r1")).events)) == 1, (policy, changes)
