"""The whole schema as it was when migrations began (the read side of issue 9 included:
no database was made at an earlier form of it): every read-model table and index
(partial ones included) and the v1 analytics views.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

# The views' SQL is imported, not copied: a view's columns never change without a new
# version (v2_runs beside v1_runs, made by a later revision), so this text stays v1's.
from projections.analytics import view_bodies

# The views this revision made (later ones make theirs).
VIEWS = ("v1_job_stats_daily", "v1_run_events", "v1_runs")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _index_where_set(name: str, table: str, column: str, columns: list[str]) -> None:
    """An index on ``columns`` of the rows whose ``column`` is set (a partial index)."""
    where = sa.text(f"{column} IS NOT NULL")
    op.create_index(name, table, columns, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("group_id", sa.String(64)),
        sa.Column("environment_id", sa.String(64)),
        sa.Column("version_id", sa.String(64)),
        sa.Column("updated_by", sa.String(200)),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.Column("next_tick_at", sa.DateTime(timezone=True)),
        sa.Column("held_until", sa.DateTime(timezone=True)),
        sa.Column("held_reason", sa.String(32)),
        sa.Column("webhook_disabled_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_jobs_project_created", "jobs", ["project_id", "created_at", "id"])
    op.create_index("ix_jobs_project_slug", "jobs", ["project_id", "slug"], unique=True)
    op.create_table(
        "job_versions",
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("changed_fields", sa.JSON(), nullable=False),
        sa.Column("backwards_compatible", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version_id"),
    )
    op.create_index("ix_job_versions_job_version", "job_versions",
                    ["job_id", "version"], unique=True)
    op.create_table(
        "job_tags",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "key"),
    )
    op.create_index("ix_job_tags_key_value", "job_tags", ["key", "value"])
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON()),
        sa.Column("result", sa.JSON()),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("error", sa.JSON()),
        sa.Column("triggered_by", sa.String(64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("correlation_id", sa.String(200)),
        sa.Column("job_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("next_retry_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("concurrency_key", sa.String(200)),
        sa.Column("scheduled_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("tags", sa.JSON()),
        sa.Column("debug_mode", sa.Boolean()),
        sa.Column("created_by", sa.String(200)),
        sa.Column("batch_id", sa.String(64)),
        sa.Column("overrides", sa.JSON()),
        sa.Column("execution_trace", sa.JSON()),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("counters", sa.JSON()),
        sa.Column("outcome_code", sa.String(32)),
        sa.Column("continuation_of", sa.String(64)),
        sa.Column("parent_run_id", sa.String(64)),
        sa.Column("lineage_depth", sa.Integer()),
        sa.Column("run_type", sa.String(16)),
        sa.Column("child_counters", sa.JSON()),
        sa.Column("purge_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id"),
    )
    _index_where_set("ix_runs_purge_at", "runs", "purge_at", ["purge_at"])
    _index_where_set("ix_runs_parent", "runs", "parent_run_id",
                     ["parent_run_id", "created_at", "id"])
    _index_where_set("ix_runs_project_batch_id", "runs", "batch_id",
                     ["project_id", "batch_id", "created_at", "id"])
    _index_where_set("ix_runs_project_concurrency_key", "runs", "concurrency_key",
                     ["project_id", "concurrency_key", "created_at", "id"])
    _index_where_set("ix_runs_project_correlation_id", "runs", "correlation_id",
                     ["project_id", "correlation_id", "created_at", "id"])
    op.create_index("ix_runs_project_created", "runs", ["project_id", "created_at", "id"])
    _index_where_set("ix_runs_project_finished_at", "runs", "finished_at",
                     ["project_id", "finished_at", "id"])
    _index_where_set("ix_runs_project_idempotency_key", "runs", "idempotency_key",
                     ["project_id", "idempotency_key", "created_at", "id"])
    op.create_index("ix_runs_project_job_created", "runs",
                    ["project_id", "job_id", "created_at", "id"])
    op.create_index("ix_runs_project_priority", "runs", ["project_id", "priority", "id"])
    _index_where_set("ix_runs_project_started_at", "runs", "started_at",
                     ["project_id", "started_at", "id"])
    op.create_index("ix_runs_project_status", "runs", ["project_id", "status", "created_at", "id"])
    op.create_index("ix_runs_project_triggered_by", "runs",
                    ["project_id", "triggered_by", "created_at", "id"])
    op.create_table(
        "run_labels",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(4), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value_digest", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "kind", "key", "value_digest", "run_id"),
    )
    op.create_table(
        "run_events",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("command_id", sa.String(128), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "seq"),
    )
    op.create_index("ix_run_events_run_id", "run_events", ["run_id"])
    for name, columns in (("ix_run_events_project_position", ["project_id", "position"]),
                          ("ix_run_events_project_job_position",
                           ["project_id", "job_id", "position"]),
                          ("ix_run_events_project_type_position",
                           ["project_id", "type", "position"]),
                          ("ix_run_events_project_run_position",
                           ["project_id", "run_id", "position"])):
        op.create_index(name, "run_events", columns)
    op.create_table(
        "job_positions",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_table(
        "projector_offsets",
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("event_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("topic", "partition"),
    )
    op.create_table(
        "job_gates",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_table(
        "key_gates",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("concurrency_key", sa.String(200), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "concurrency_key"),
    )
    op.create_table(
        "project_quotas",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("max_queued_runs", sa.Integer()),
        sa.Column("max_runs_per_day", sa.Integer()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project_id"),
    )
    op.create_table(
        "project_waiting",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id"),
    )
    op.create_table(
        "job_waiting",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_table(
        "project_days",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "day"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replayed_by", sa.String(64)),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index("ix_dead_letters_project_finished", "dead_letters",
                    ["project_id", "finished_at", "run_id"])
    op.create_table(
        "job_dependencies",
        sa.Column("upstream_job_id", sa.String(64), nullable=False),
        sa.Column("downstream_job_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("condition", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("upstream_job_id", "downstream_job_id"),
    )
    op.create_index("ix_job_dependencies_downstream", "job_dependencies", ["downstream_job_id"])
    op.create_table(
        "operations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("job_ids", sa.JSON(), nullable=False),
        sa.Column("jobs_total", sa.Integer(), nullable=False),
        sa.Column("job_version", sa.BigInteger()),
        sa.Column("created_by", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "operation_parts",
        sa.Column("operation_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("canceled", sa.Integer(), nullable=False),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("operation_id", "job_id"),
    )
    op.create_table(
        "event_positions",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "job_terms",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("term", sa.String(64).with_variant(sa.String(64, collation="C"),
                                                     "postgresql"), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "term"),
    )
    op.create_index("ix_job_terms_project_term", "job_terms", ["project_id", "term", "job_id"])
    op.create_table(
        "metric_rollups",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("span", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in (
            "started", "completed", "failed", "timed_out", "crashed", "canceled", "expired")),
        sa.Column("durations", sa.JSON(), nullable=False),
        sa.Column("waits", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "job_id", "span", "bucket_start"),
    )
    op.create_table(
        "project_retention",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_retention_days", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "seq"),
    )
    op.create_table(
        "purged_runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    for name, body in view_bodies(op.get_bind().dialect.name).items():
        if name in VIEWS:
            op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
    # Dropping a table drops its indexes.
    for table in (
        "operation_parts", "operations", "job_dependencies", "dead_letters", "project_days",
        "job_waiting", "project_waiting", "project_quotas", "key_gates", "job_gates",
        "projector_offsets", "job_positions", "run_events", "run_labels", "runs", "job_tags",
        "job_versions", "jobs", "event_positions", "job_terms", "metric_rollups",
        "project_retention", "purged_runs",
    ):
        op.drop_table(table)
