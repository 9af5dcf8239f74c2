"""The analytics views: a stable, versioned face of the read models for analysts to query
directly (sqlite3, psql). The tables behind them may change; a view's columns do not,
without a new version (``v2_runs`` beside ``v1_runs``).

- ``v1_runs``: one row per run, with ``duration_secs`` (started to finished).
- ``v1_run_events``: every event the read models applied, with its data as JSON text.
- ``v1_job_stats_daily``: per project, job and UTC day the runs were made: how many, how
  many ended in each state, and the mean duration of the completed ones. It reads the
  runs, so runs the retention sweep purged drop out of it.
- ``v1_job_metrics_daily``: per project, job and UTC day: how many runs started (first
  dispatch) and how many ended in each state that day. It reads the day rows GET
  /v1/metrics reads (``metric_rollups``), which the sweep never purges: the history that
  outlives the runs. (Revision 0003.)
"""

from sqlalchemy import Connection, text

VIEWS = ("v1_job_stats_daily", "v1_run_events", "v1_runs", "v1_job_metrics_daily")

# The two expressions that differ between SQLite and PostgreSQL. On PostgreSQL: seconds as
# double precision (EXTRACT gives numeric, which drivers hand out as Decimal), and the day
# in UTC whatever the session's time zone (a timestamptz cast to date takes the session's).
# SQLite's day is text, 'YYYY-MM-DD'; PostgreSQL's is a date.
_SECONDS = {
    "sqlite": "(julianday({end}) - julianday({start})) * 86400.0",
    "postgresql": "CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS double precision)",
}
_DAY = {"sqlite": "date({at})", "postgresql": "CAST(({at} AT TIME ZONE 'UTC') AS date)"}
_UNIX_DAY = {"sqlite": "date({at}, 'unixepoch')",
             "postgresql": "CAST((to_timestamp({at}) AT TIME ZONE 'UTC') AS date)"}

_RUNS = """
SELECT id AS run_id, project_id, job_id, job_version, status, attempt, max_attempts,
       priority, triggered_by, created_by, batch_id, concurrency_key, correlation_id,
       idempotency_key, parent_run_id, continuation_of, lineage_depth, run_type,
       created_at, scheduled_at, started_at, finished_at, next_retry_at, expires_at,
       {duration} AS duration_secs, outcome_code, payload, result, error, metadata, tags,
       counters, execution_trace
FROM runs
"""

_RUN_EVENTS = """
SELECT project_id, job_id, seq, run_id, type, version, event_id, command_id, occurred_at,
       data
FROM run_events
"""

_STATS = """
SELECT project_id, job_id, {day} AS day, COUNT(*) AS runs,
       SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed,
       SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
       SUM(CASE WHEN status = 'timed_out' THEN 1 ELSE 0 END) AS timed_out,
       SUM(CASE WHEN status = 'crashed' THEN 1 ELSE 0 END) AS crashed,
       SUM(CASE WHEN status = 'canceled' THEN 1 ELSE 0 END) AS canceled,
       SUM(CASE WHEN status = 'expired' THEN 1 ELSE 0 END) AS expired,
       AVG(CASE WHEN status = 'completed' THEN {duration} END) AS avg_duration_secs
FROM runs
GROUP BY project_id, job_id, {day}
"""

# Only the job's own day rows: job_id "" holds the whole project's (their sum).
_METRICS = """
SELECT project_id, job_id, {day} AS day, started, completed, failed, timed_out, crashed,
       canceled, expired
FROM metric_rollups
WHERE span = 86400 AND job_id <> ''
"""


def view_bodies(dialect: str) -> dict[str, str]:
    """Each view's SELECT in ``dialect``'s form ("sqlite" or "postgresql"): what both
    ``create_views`` and the migration revisions that make the views run."""
    duration = _SECONDS[dialect].format(end="finished_at", start="started_at")
    return {"v1_runs": _RUNS.format(duration=duration),
            "v1_run_events": _RUN_EVENTS,
            "v1_job_stats_daily": _STATS.format(day=_DAY[dialect].format(at="created_at"),
                                                duration=duration),
            "v1_job_metrics_daily": _METRICS.format(
                day=_UNIX_DAY[dialect].format(at="bucket_start"))}


def create_views(conn: Connection) -> None:
    for name, body in view_bodies(conn.dialect.name).items():
        # Replaced on every start: a view holds no data, and this keeps it as written here.
        conn.execute(text(f"DROP VIEW IF EXISTS {name}"))
        conn.execute(text(f"CREATE VIEW {name} AS {body}"))


def drop_views(conn: Connection) -> None:
    for name in VIEWS:
        conn.execute(text(f"DROP VIEW IF EXISTS {name}"))
