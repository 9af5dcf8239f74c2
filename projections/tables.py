"""The read-model tables. They hold nothing the log does not: drop them and replay."""

import hashlib

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()


def _where_set(name: str, column: str, *columns: str) -> Index:
    """An index on ``columns`` of the rows whose ``column`` is set."""
    where = text(f"{column} IS NOT NULL")
    return Index(name, *columns, sqlite_where=where, postgresql_where=where)

jobs = Table(
    "jobs", metadata,
    Column("id", String(64), primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("slug", String(64), nullable=False),
    Column("name", Text, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("group_id", String(64)),
    Column("environment_id", String(64)),
    Column("version_id", String(64)),
    Column("updated_by", String(200)),
    # Set by job.deleted: reads and lists leave the job out; its runs stay readable.
    Column("deleted_at", DateTime(timezone=True)),
    # The next cron tick (null: no schedule fires), from job.schedule_set / cron_ticked.
    Column("next_tick_at", DateTime(timezone=True)),
    # From job.dispatch_held: the job's queued runs wait for a start gate until then.
    Column("held_until", DateTime(timezone=True)),
    Column("held_reason", String(32)),
    # From job.webhook_disabled (a 410 Gone); cleared by a new webhook_url or secret.
    Column("webhook_disabled_at", DateTime(timezone=True)),
    Index("ix_jobs_project_slug", "project_id", "slug", unique=True),
    Index("ix_jobs_project_created", "project_id", "created_at", "id"),
)

# Every version of every job, as it was made (job.created is version 1).
job_versions = Table(
    "job_versions", metadata,
    Column("version_id", String(64), primary_key=True),
    Column("job_id", String(64), nullable=False),
    Column("project_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("changed_fields", JSON, nullable=False),
    Column("backwards_compatible", Boolean, nullable=False),
    Column("created_by", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_job_versions_job_version", "job_id", "version", unique=True),
)

# A job's current tags, one row each: what the list's tag filter joins on.
job_tags = Table(
    "job_tags", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
    Index("ix_job_tags_key_value", "key", "value"),
)

runs = Table(
    "runs", metadata,
    Column("id", String(64), primary_key=True),
    Column("job_id", String(64), nullable=False),
    Column("project_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("payload", JSON),
    Column("result", JSON),
    Column("metadata", JSON, nullable=False),
    Column("error", JSON),
    Column("triggered_by", String(64), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("idempotency_key", String(200)),
    Column("correlation_id", String(200)),
    Column("job_version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("next_retry_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("concurrency_key", String(200)),
    Column("scheduled_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("tags", JSON),
    Column("debug_mode", Boolean),
    Column("created_by", String(200)),
    Column("batch_id", String(64)),
    # What the trigger overrode of the job's settings (RunOverrides), or null.
    Column("overrides", JSON),
    # The latest attempt's execution_trace (ExecutionTrace), its last heartbeat, the
    # record counters the endpoint reported (seed 004), and the status code of how the
    # run ended where the state alone does not say it (JOB_USER_CANCELED, ZOMBIE_PROCESS).
    Column("execution_trace", JSON),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("counters", JSON),
    Column("outcome_code", String(32)),
    Column("continuation_of", String(64)),
    Column("parent_run_id", String(64)),
    Column("lineage_depth", Integer),
    Column("run_type", String(16)),
    # The sum of the counters of the run's children (each its own plus its children's):
    # a parent shows counters + child_counters.
    Column("child_counters", JSON),
    # The run list's filters and sorts (projections.run_list), each served by an index
    # that ends in the keyset's columns. Columns most runs leave empty are indexed only
    # where set: an entry per run would be a B-tree write on every trigger for nothing.
    Index("ix_runs_project_created", "project_id", "created_at", "id"),
    Index("ix_runs_project_job_created", "project_id", "job_id", "created_at", "id"),
    Index("ix_runs_project_status", "project_id", "status", "created_at", "id"),
    Index("ix_runs_project_priority", "project_id", "priority", "id"),
    Index("ix_runs_project_triggered_by", "project_id", "triggered_by", "created_at", "id"),
    *(_where_set(f"ix_runs_project_{column}", column, "project_id", column, "id")
      for column in ("started_at", "finished_at")),
    *(_where_set(f"ix_runs_project_{column}", column, "project_id", column, "created_at", "id")
      for column in ("batch_id", "concurrency_key", "correlation_id", "idempotency_key")),
    _where_set("ix_runs_parent", "parent_run_id", "parent_run_id", "created_at", "id"),
)

# A run's tags and metadata entries, one row each (kind "tag" or "meta"), so that a
# key=value filter is an index lookup. Written once, when the run is triggered.
#
# The key holds the value's digest, not the value: a value may be 1,024 characters (up to
# 4 kB of UTF-8), more than a PostgreSQL B-tree entry holds (about 2.7 kB). A lookup
# compares the digest (the index) and then the value itself (so a collision of digests
# could cost a row read, never a wrong answer).
run_labels = Table(
    "run_labels", metadata,
    Column("project_id", String(64), primary_key=True),
    Column("kind", String(4), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value_digest", String(32), primary_key=True),
    Column("run_id", String(64), primary_key=True),
    Column("value", String(1024), nullable=False),
)


def label_digest(value: str) -> str:
    """``run_labels.value_digest``: 128 bits of the value's SHA-256, in hex."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


run_events = Table(
    "run_events", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("run_id", String(64), index=True),
    Column("project_id", String(64), nullable=False),
    Column("type", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("command_id", String(128), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("data", JSON, nullable=False),
)

# The highest seq applied per job: the projector's at-most-once guard.
job_positions = Table(
    "job_positions", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

# Where the projector resumes, written in the same transaction as the rows above.
projector_offsets = Table(
    "projector_offsets", metadata,
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    # When the last event applied from the partition happened: how far behind the read
    # models are in time while events wait (/readyz, the projector's log).
    Column("event_at", DateTime(timezone=True)),
)

# How many runs of each job, and of each of its concurrency keys, run now (running or
# canceling), kept per event: what waiting_reason reads, in O(1), so that a run being
# held or let go needs no event of its own. A row whose count falls to zero is deleted.
job_gates = Table(
    "job_gates", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("running", Integer, nullable=False),
)

key_gates = Table(
    "key_gates", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("concurrency_key", String(200), primary_key=True),
    Column("running", Integer, nullable=False),
)

# A project's quotas, from project.quotas_set (no row: no quotas).
project_quotas = Table(
    "project_quotas", metadata,
    Column("project_id", String(64), primary_key=True),
    Column("max_queued_runs", Integer),
    Column("max_runs_per_day", Integer),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# What counts against the quotas, kept per event like the gates above: a project's runs
# waiting to start (queued or delayed), and its runs made per UTC day.
project_waiting = Table(
    "project_waiting", metadata,
    Column("project_id", String(64), primary_key=True),
    Column("running", Integer, nullable=False),  # the count (named as the gates' is)
)

# A job's runs waiting to start (queued or delayed): its queue depth on /health.
job_waiting = Table(
    "job_waiting", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("running", Integer, nullable=False),  # the count (named as the gates' is)
)

project_days = Table(
    "project_days", metadata,
    Column("project_id", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("running", Integer, nullable=False),  # runs made that day
)

# The dead-letter list: every run that ended failed, timed_out or crashed (no attempt is
# left that could still succeed), until a replay takes it (replayed_by: the new run).
dead_letters = Table(
    "dead_letters", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("job_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("replayed_by", String(64)),
    Index("ix_dead_letters_project_finished", "project_id", "finished_at", "run_id"),
)

# Which jobs run after which: the downstream job runs after each run of the upstream one
# that ends as the condition says (job.dependent_added / removed, on the upstream job).
job_dependencies = Table(
    "job_dependencies", metadata,
    Column("upstream_job_id", String(64), primary_key=True),
    Column("downstream_job_id", String(64), primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("condition", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_job_dependencies_downstream", "downstream_job_id"),
)

# Tracked bulk operations (project.operation_started), and each job's part of one
# (job.sweep_finished): the operation is done when every job it named has a part.
operations = Table(
    "operations", metadata,
    Column("id", String(64), primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("job_ids", JSON, nullable=False),
    Column("jobs_total", Integer, nullable=False),
    # Big: the API takes a version up to 2**31, past PostgreSQL's 32-bit integer.
    Column("job_version", BigInteger),
    Column("created_by", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

operation_parts = Table(
    "operation_parts", metadata,
    Column("operation_id", String(64), primary_key=True),
    Column("job_id", String(64), primary_key=True),
    Column("canceled", Integer, nullable=False),
    Column("superseded", Boolean, nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
)
