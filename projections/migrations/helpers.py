"""What revisions share beyond Alembic's ``op``."""

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import op
from sqlalchemy import Connection, text


def _views(conn: Connection) -> list[str]:
    """The statements that make the database's views again, as they are now."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'view'"))
        return [sql for (sql,) in rows]
    rows = conn.execute(text("SELECT viewname, definition FROM pg_views "
                             "WHERE schemaname = current_schema()"))
    return [f'CREATE VIEW "{name}" AS {definition}' for name, definition in rows]


def _view_names(conn: Connection) -> list[str]:
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'view'"))
    else:
        rows = conn.execute(text("SELECT viewname FROM pg_views "
                                 "WHERE schemaname = current_schema()"))
    return [name for (name,) in rows]


@contextmanager
def views_set_aside() -> Iterator[None]:
    """Drop the views for the block and make them again after it, exactly as they were.

    Needed around a batch operation that copies a table the views read (on SQLite every
    change but adding a column or an index copies the table: drop, alter or retype a
    column). SQLite refuses to rename the copy into place while a view names the table
    ("error in view v1_runs: no such table"). Taken from the database, not from
    projections.analytics, so an old revision makes the views of its own time."""
    conn = op.get_bind()
    statements, names = _views(conn), _view_names(conn)
    for name in names:
        op.execute(f'DROP VIEW "{name}"')
    yield
    for statement in statements:
        op.execute(statement)
