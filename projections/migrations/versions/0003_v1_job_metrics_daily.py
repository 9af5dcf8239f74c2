"""The analytics view v1_job_metrics_daily: per job and UTC day, runs started and ended
by state, from the metric rollups the retention sweep never purges (v1_job_stats_daily
reads the runs, so purged runs drop out of it).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from alembic import op

from projections.analytics import view_bodies

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VIEW = "v1_job_metrics_daily"


def upgrade() -> None:
    op.execute(f"CREATE VIEW {VIEW} AS {view_bodies(op.get_bind().dialect.name)[VIEW]}")


def downgrade() -> None:
    op.execute(f"DROP VIEW {VIEW}")
