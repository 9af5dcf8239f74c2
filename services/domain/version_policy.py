"""Which settings a run runs with: the version it was triggered with (``pin``) or the
job's newest (``latest``). Decided per run at dispatch and on each failure, in O(1)."""

import msgspec
from msgspec.structs import replace

from events.types import JobSpec
from services.domain.state import JobState, PinnedSettings, RunState


class RunSettings(msgspec.Struct, frozen=True, kw_only=True):
    endpoint_url: str
    fallback_endpoint_url: str | None
    timeout_secs: int
    max_attempts: int
    # The retry policy's fields, on a spec (what retry_decision reads), and the longest
    # delay between attempts (None: no cap).
    retry_spec: JobSpec
    retry_max_delay_secs: int | None = None


def pin_of(spec: JobSpec) -> PinnedSettings | None:
    """What a new run keeps of the version it is triggered with (nothing under latest)."""
    if spec.version_policy != "pin":
        return None
    return PinnedSettings(endpoint_url=spec.endpoint_url,
                          fallback_endpoint_url=spec.fallback_endpoint_url,
                          retry_strategy=spec.retry_strategy,
                          retry_delays_secs=spec.retry_delays_secs)


def settings_for(job: JobState, run: RunState) -> RunSettings:
    """The version's settings, with what the run's trigger overrode on top."""
    settings = _version_settings(job, run)
    o = run.overrides
    if o is None:
        return settings
    retry = settings.retry_spec
    if o.retry_backoff is not None or o.retry_initial_delay_secs is not None:
        delays = (retry.retry_delays_secs if o.retry_initial_delay_secs is None
                  else [o.retry_initial_delay_secs])
        retry = replace(retry, retry_strategy=o.retry_backoff or retry.retry_strategy,
                        retry_delays_secs=delays)
    return replace(settings, max_attempts=o.max_attempts or settings.max_attempts,
                   timeout_secs=o.timeout_secs or settings.timeout_secs, retry_spec=retry,
                   retry_max_delay_secs=o.retry_max_delay_secs)


def _version_settings(job: JobState, run: RunState) -> RunSettings:
    spec = job.spec
    assert spec is not None
    pinned = run.pinned
    if spec.version_policy == "latest" or pinned is None:
        # latest, or a run triggered while the job ran latest: the newest settings.
        attempts = run.max_attempts if spec.version_policy == "pin" else spec.max_attempts
        timeout = run.timeout_secs if spec.version_policy == "pin" else spec.timeout_secs
        return RunSettings(endpoint_url=spec.endpoint_url,
                           fallback_endpoint_url=spec.fallback_endpoint_url,
                           timeout_secs=timeout, max_attempts=attempts, retry_spec=spec)
    strategy = pinned.retry_strategy
    assert strategy in ("fixed", "exponential", "custom")
    retry = replace(spec, retry_strategy=strategy, retry_delays_secs=pinned.retry_delays_secs)
    return RunSettings(endpoint_url=pinned.endpoint_url,
                       fallback_endpoint_url=pinned.fallback_endpoint_url,
                       timeout_secs=run.timeout_secs, max_attempts=run.max_attempts,
                       retry_spec=retry)


def incompatible(job: JobState, run: RunState) -> str | None:
    """Why the run may not start under the job's latest version, or None."""
    spec = job.spec
    if spec is None or spec.version_policy != "latest" or run.job_version >= job.compat_floor:
        return None
    return (f"the run was triggered with version {run.job_version}, and version "
            f"{job.compat_floor} changed payload_schema without backwards compatibility "
            f"(the job runs its latest version, {job.version})")
