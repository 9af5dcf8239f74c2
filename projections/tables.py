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

# The words of each job's name and slug (projections.job_search): a text search reads
# them by prefix. Compared byte-wise on PostgreSQL too ("C"), so a prefix is a range of
# the index whatever the server's collation.
job_terms = Table(
    "job_terms", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("term", String(64).with_variant(String(64, collation="C"), "postgresql"),
           primary_key=True),
    Column("project_id", String(64), nullable=False),
    Index("ix_job_terms_project_term", "project_id", "term", "job_id"),
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
    # When the run leaves the read models (seed 004's purgeAt): set as it ends, to its
    # end plus the project's retention then (projections.retention). Null while it runs.
    Column("purge_at", DateTime(timezone=True)),
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
    # The retention sweep's due runs, oldest first; only ended runs have an entry.
    _where_set("ix_runs_purge_at", "purge_at", "purge_at"),
)

# A run's tags and metadata entries, one row each (kind "tag" or "meta"), so that a
# key=value filter is an index lookup. Written once, when the run is triggered.
#
# The key holds the value's digest, not the value: a value may be 1,024 characters (up to
# 4 kB of UTF-8), more than a PostgreSQL B-tree entry holds (about 2.7 kB). A lookup
# compares the digest (the index) and then the value itself (so a collision of digests
# could cost a row read, never a wrong answer).
#
# The run's created_at comes before its id in the key, so one label's runs are read in
# created order straight from the key (the run list's default order) and a run's own
# label is still found by the whole key (its created_at and id are on its runs row).
run_labels = Table(
    "run_labels", metadata,
    Column("project_id", String(64), primary_key=True),
    Column("kind", String(4), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value_digest", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), primary_key=True),
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
    # The order the projection applied the events in, across all jobs: 1, 2, 3... given by
    # the projector in its transaction (projections.event_order). The id of the project-wide
    # live stream (GET /v1/events/stream); it and the run stream read from the indexes
    # below, each ending in it. Unlike seq it is not a fact of the log: a rebuild that meets the
    # partitions in another interleaving numbers the events differently.
    Column("position", BigInteger, nullable=False),
    Index("ix_run_events_project_position", "project_id", "position"),
    Index("ix_run_events_project_job_position", "project_id", "job_id", "position"),
    Index("ix_run_events_project_type_position", "project_id", "type", "position"),
    Index("ix_run_events_project_run_position", "project_id", "run_id", "position"),
)

# The last position given to a run_events row: one row (id 1), moved by each batch.
event_positions = Table(
    "event_positions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_position", BigInteger, nullable=False),
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

# A project's retention settings, every one as set (project.retention_set): a run's
# purge_at follows the one in force when it ended (services.domain.retention). No row: the
# default, 30 days.
project_retention = Table(
    "project_retention", metadata,
    Column("project_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),  # its place on the project's stream
    Column("since", DateTime(timezone=True), nullable=False),
    Column("run_retention_days", Integer, nullable=False),
)

# The runs the retention sweep took out of the read models (the log keeps their events),
# so that a read can tell "purged" from "never existed", and a late event of one is
# dropped instead of leaving part of a row.
purged_runs = Table(
    "purged_runs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("purged_at", DateTime(timezone=True), nullable=False),
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

# The runs' counts and time histograms for GET /v1/metrics (projections.rollups), kept by
# the projector per batch so that a request reads O(buckets) rows, never the runs. One row
# per (project, job, span, bucket_start): span is the bucket's length in seconds (60, 3600
# or 86400: minute, hour and UTC day rows, each counted on its own), bucket_start its first
# second (Unix time, a multiple of span); job_id "" is the whole project. started: runs
# first dispatched in the bucket; the status columns: runs that ended so in it. durations
# (completed runs, start to end) and waits (eligible to first dispatch): sparse histograms
# {bin: count} of projections.histogram.
metric_rollups = Table(
    "metric_rollups", metadata,
    Column("project_id", String(64), primary_key=True),
    Column("job_id", String(64), primary_key=True),
    Column("span", Integer, primary_key=True),
    Column("bucket_start", BigInteger, primary_key=True),
    Column("started", Integer, nullable=False),
    Column("completed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("timed_out", Integer, nullable=False),
    Column("crashed", Integer, nullable=False),
    Column("canceled", Integer, nullable=False),
    Column("expired", Integer, nullable=False),
    Column("durations", JSON, nullable=False),
    Column("waits", JSON, nullable=False),
)
