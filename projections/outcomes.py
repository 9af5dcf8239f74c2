"""Which end states judge a job, and its success rate: one definition for a job's health
(projections.health) and GET /v1/metrics (projections.metrics).

Canceled and expired runs were stopped, not judged: they count in neither side."""

from collections.abc import Mapping

JUDGED = ("completed", "failed", "timed_out", "crashed")


def success_rate(ended: Mapping[str, int]) -> float | None:
    """completed / (completed + failed + timed_out + crashed) of runs ended by state;
    None when none ended so."""
    judged = sum(ended.get(status, 0) for status in JUDGED)
    return ended.get("completed", 0) / judged if judged else None
