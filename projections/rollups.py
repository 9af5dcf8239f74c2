"""The rollups behind GET /v1/metrics (table ``metric_rollups``), kept per batch by the
projector, in the batch's transaction: the at-most-once guard that keeps the runs table
from counting an event twice keeps these counts too, and a batch that fails leaves none
of them (poison isolation then applies it record by record, each with its own counts).

What is counted, per run (the same instants as the runs table's columns):

- started: the run's first dispatch (``started_at`` set while it was null), in the bucket
  of that instant, with its queue wait: first dispatch minus the time it became eligible
  to run, its ``created_at`` or its ``scheduled_at`` when later (a delayed trigger). The
  waits of retries are the job's retry delays, not the queue's, and are not counted.
- ended: the run's change into an end state (completed, failed, timed_out, crashed,
  canceled, expired), in the bucket of its ``finished_at``, by that state; a completed
  run's duration is its ``finished_at`` minus its ``started_at`` (the last attempt's
  start), as the job health's durations.

The batch's run changes (the projector's folded column changes, in event order) are
observed as they are folded; ``write`` reads the stored rows of the runs it needs (one
read by primary key per 500 runs), turns each run into its contributions (``contributions``,
pure) and adds them to the minute, hour and day rows of the run's job and of its project
(job_id ""), one read and one write per kind of statement; never a count over runs.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select, update

from projections import histogram
from projections.rows import aware
from projections.tables import metric_rollups, runs

ENDED = ("completed", "failed", "timed_out", "crashed", "canceled", "expired")
_ENDED = frozenset(ENDED)
SPANS = (60, 3600, 86400)
WHOLE_PROJECT = ""  # the job_id of a project's own rows
IN_CHUNK = 500
# How many more primary-key probes than rows one read of the rollups may make.
CROSS_FACTOR = 8
_KEY = ("project_id", "job_id", "span", "bucket_start")

Key = tuple[str, str, int, int]


@dataclass(slots=True)
class Seen:
    """What a batch did to one run, in order: its trigger's row when it was made in the
    batch, the start of each dispatch, and its first change into an end state."""

    project_id: str
    job_id: str
    made: dict[str, Any] | None = None
    starts: list[datetime] = field(default_factory=list)
    end: tuple[str, datetime] | None = None  # nothing is observed after it


@dataclass(frozen=True, slots=True)
class Stored:
    status: str
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None


@dataclass(frozen=True, slots=True)
class Contribution:
    at: datetime
    started: bool = False
    wait_secs: float | None = None
    ended: str | None = None
    duration_secs: float | None = None


def contributions(seen: Seen, stored: Stored | None) -> list[Contribution]:
    """A run's contributions to the rollups from one batch (pure): ``stored`` is its row
    before the batch (None when the batch made it)."""
    if seen.made is not None:
        row = seen.made
        before = Stored(str(row["status"]), row["created_at"], row.get("scheduled_at"), None)
    elif stored is not None:
        before = stored
    else:
        return []  # an event of a run the table does not have changes no row either
    found: list[Contribution] = []
    if seen.starts and before.started_at is None:
        eligible = max(before.created_at, before.scheduled_at or before.created_at)
        first = seen.starts[0]
        found.append(Contribution(first, started=True,
                                  wait_secs=max(0.0, (first - eligible).total_seconds())))
    if seen.end is not None and before.status not in _ENDED:
        status, finished = seen.end
        started = seen.starts[-1] if seen.starts else before.started_at
        duration = None
        if status == "completed" and started is not None:
            duration = max(0.0, (finished - started).total_seconds())
        found.append(Contribution(finished, ended=status, duration_secs=duration))
    return found


@dataclass(slots=True)
class Delta:
    counts: dict[str, int] = field(default_factory=dict)
    durations: histogram.Histogram = field(default_factory=dict)
    waits: histogram.Histogram = field(default_factory=dict)

    def add(self, c: Contribution) -> None:
        if c.started:
            self.counts["started"] = self.counts.get("started", 0) + 1
        if c.ended is not None:
            self.counts[c.ended] = self.counts.get(c.ended, 0) + 1
        if c.wait_secs is not None:
            histogram.add(self.waits, c.wait_secs)
        if c.duration_secs is not None:
            histogram.add(self.durations, c.duration_secs)


def bucket_start(at: datetime, span: int) -> int:
    seconds = math.floor(aware(at).astimezone(UTC).timestamp())
    return seconds - seconds % span


def deltas(runs_seen: Iterable[tuple[Seen, list[Contribution]]]) -> dict[Key, Delta]:
    """The contributions added up per rollup row: each goes to its job's and its
    project's row at every span (pure)."""
    found: dict[Key, Delta] = {}
    for seen, items in runs_seen:
        for item in items:
            for job in (seen.job_id, WHOLE_PROJECT):
                for span in SPANS:
                    key = (seen.project_id, job, span, bucket_start(item.at, span))
                    found.setdefault(key, Delta()).add(item)
    return found


class Rollups:
    """The batch's observations; ``observe`` is called as the projector folds each event
    of a run, ``write`` once before the runs table changes."""

    def __init__(self) -> None:
        self.seen: dict[str, Seen] = {}

    def observe(self, project_id: str, job_id: str, run_id: str | None,
                changes: Mapping[str, Any], made: bool = False) -> None:
        if run_id is None:
            return
        if made:  # a trigger: what was seen before it changed no row (see the projector)
            self.seen[run_id] = Seen(project_id, job_id, made=dict(changes))
            return
        status, started = changes.get("status"), changes.get("started_at")
        if started is None and status not in _ENDED:
            return  # heartbeats, progress, messages: nothing counted
        seen = self.seen.setdefault(run_id, Seen(project_id, job_id))
        if seen.end is not None:
            return  # an end state is the last (terminal states never change)
        if started is not None:
            seen.starts.append(started)
        if status in _ENDED:
            seen.end = (str(status), changes["finished_at"])

    def write(self, conn: Connection) -> None:
        if not self.seen:
            return
        stored = _stored(conn, sorted(r for r, s in self.seen.items() if s.made is None))
        found = deltas((seen, contributions(seen, stored.get(run_id)))
                       for run_id, seen in self.seen.items())
        _add(conn, found)


# Built once (building a statement per batch costs more than running it).
_STORED = (select(runs.c.id, runs.c.status, runs.c.created_at, runs.c.scheduled_at,
                  runs.c.started_at)
           .where(runs.c.id.in_(bindparam("ids", expanding=True))))


def _stored(conn: Connection, run_ids: list[str]) -> dict[str, Stored]:
    found: dict[str, Stored] = {}
    for i in range(0, len(run_ids), IN_CHUNK):
        rows = conn.execute(_STORED, {"ids": run_ids[i:i + IN_CHUNK]})
        found.update((str(r.id), Stored(str(r.status), aware(r.created_at),
                                        aware(r.scheduled_at), aware(r.started_at)))
                     for r in rows)
    return found


_COUNTS = ("started", *ENDED)
_CURRENT = select(metric_rollups).where(and_(*(
    metric_rollups.c[name].in_(bindparam(name, expanding=True)) for name in _KEY)))
_UPDATE = (update(metric_rollups)
           .where(and_(*(metric_rollups.c[name] == bindparam(f"b_{name}") for name in _KEY)))
           .values({name: bindparam(name) for name in (*_COUNTS, "durations", "waits")}))


def _current(conn: Connection, keys: list[Key]) -> dict[Key, dict[str, Any]]:
    """The stored rows of ``keys``. Each column's values are asked for at once, so the
    query is built once and only its lists change: SQLite and PostgreSQL probe the primary
    key for each combination, a superset of the keys (picked out here). When that cross
    product is much larger than the keys (a batch over many jobs and many minutes, as in a
    rebuild), each job's keys are asked for apart: at most 3 probes per key (the spans)."""
    params = {name: sorted({key[i] for key in keys}) for i, name in enumerate(_KEY)}
    if math.prod(len(values) for values in params.values()) > CROSS_FACTOR * len(keys):
        jobs: dict[tuple[str, str], list[Key]] = {}
        for key in keys:
            jobs.setdefault(key[:2], []).append(key)
        if len(jobs) > 1:
            found: dict[Key, dict[str, Any]] = {}
            for part in jobs.values():
                found.update(_current(conn, part))
            return found
    wanted = set(keys)
    current: dict[Key, dict[str, Any]] = {}
    for start in range(0, len(params["bucket_start"]), IN_CHUNK):
        chunk = {**params, "bucket_start": params["bucket_start"][start:start + IN_CHUNK]}
        for row in conn.execute(_CURRENT, chunk):
            fields = row._asdict()
            key = (str(fields["project_id"]), str(fields["job_id"]), int(fields["span"]),
                   int(fields["bucket_start"]))
            if key in wanted:
                current[key] = fields
    return current


def _add(conn: Connection, found: dict[Key, Delta]) -> None:
    """Add the deltas to their rows: read the rows that exist, then one executemany of
    updates and one of inserts."""
    current = _current(conn, list(found))
    wanted = sorted(found)
    updates, inserts = [], []
    for key in wanted:
        delta, old = found[key], current.get(key)
        row: dict[str, Any] = {name: (0 if old is None else int(old[name]))
                               + delta.counts.get(name, 0) for name in _COUNTS}
        row["durations"] = histogram.stored(histogram.merge(
            delta.durations, None if old is None else old["durations"]))
        row["waits"] = histogram.stored(histogram.merge(
            delta.waits, None if old is None else old["waits"]))
        if old is None:
            inserts.append({**dict(zip(_KEY, key, strict=True)), **row})
        else:
            updates.append({**{f"b_{n}": v for n, v in zip(_KEY, key, strict=True)}, **row})
    if updates:
        conn.execute(_UPDATE, updates)
    if inserts:
        conn.execute(insert(metric_rollups), inserts)
