"""run_labels: the run's created_at joins the key, before the run id, so that one label's
runs are read in created order from the key itself (the run list's default order: a
tag or metadata filter then reads its page, not every run with that label).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_KEY = ["project_id", "kind", "key", "value_digest", "created_at", "run_id"]
_OLD_KEY = ["project_id", "kind", "key", "value_digest", "run_id"]


def _copy_into_new_table(key: list[str], created_at: bool) -> None:
    """A primary key cannot change in place on SQLite: copy into a table of the new shape
    and rename it (one statement each, on both stores). No view reads run_labels."""
    columns: list[sa.Column[Any]] = [
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(4), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value_digest", sa.String(32), nullable=False),
        *([sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)]
          if created_at else []),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
    ]
    op.create_table("run_labels_next", *columns, sa.PrimaryKeyConstraint(*key))
    moved = "l.project_id, l.kind, l.key, l.value_digest, l.run_id, l.value"
    if created_at:  # a label's run is always there: both are written by one trigger
        op.execute("INSERT INTO run_labels_next (project_id, kind, key, value_digest, "
                   f"run_id, value, created_at) SELECT {moved}, r.created_at "
                   "FROM run_labels l JOIN runs r ON r.id = l.run_id")
    else:
        op.execute("INSERT INTO run_labels_next (project_id, kind, key, value_digest, "
                   f"run_id, value) SELECT {moved} FROM run_labels l")
    op.drop_table("run_labels")
    op.rename_table("run_labels_next", "run_labels")
    if op.get_bind().dialect.name == "postgresql":  # the key's name follows the table's
        op.execute("ALTER TABLE run_labels RENAME CONSTRAINT run_labels_next_pkey "
                   "TO run_labels_pkey")


def upgrade() -> None:
    _copy_into_new_table(_KEY, created_at=True)


def downgrade() -> None:
    _copy_into_new_table(_OLD_KEY, created_at=False)
