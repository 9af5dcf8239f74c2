"""Alembic's environment for the read models.

Run only through ``projections.migrate``, which hands it an open connection
(``config.attributes["connection"]``) inside the transaction that holds the migration lock.
There is no alembic.ini: ``projections.migrate.alembic_config`` builds the configuration in
code, so migrations work from an installed package and from any directory.
"""

from typing import Any

from alembic import context
from sqlalchemy import Connection

from projections.pg_generations import POINTER
from projections.tables import metadata


def _read_model(item: Any, name: str | None, kind: str, reflected: bool,
                compare_to: Any) -> bool:
    """Whether autogenerate compares ``item``: not the rebuild's pointer table, which
    sits beside generation 1's tables on PostgreSQL but belongs to no generation."""
    return not (kind == "table" and name == POINTER)


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # Autogenerate renders table changes as batch operations: SQLite can alter or
        # drop a column only by copying the table, which batch mode does; on PostgreSQL
        # the same operations are plain ALTERs. So one revision serves both.
        render_as_batch=True,
        include_object=_read_model,
    )
    # The caller's transaction is already open: this adds none and commits nothing.
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError("the read models' migrations run through projections.migrate "
                       "(jobledger migrate), which passes them a connection")
run(_connection)
