"""Number the applied events in the order the projection applies them (``position``).

A job's seq orders its own events only; a stream of a whole project needs one order over
all jobs, in which nothing committed later can appear before something a reader has
already seen. The projector keeps a counter row (``event_positions``) and moves it in the
same transaction as the events it numbers. On PostgreSQL the UPDATE locks the row until
commit, so even two writers would commit their numbers in increasing order; on SQLite
writers are serialized anyway. A reader that has seen position P therefore never later
finds a new event below P.
"""

from typing import Any

from sqlalchemy import Connection, insert, select, update

from projections.tables import event_positions

_ROW = event_positions.c.id == 1


def assign_positions(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Give ``rows`` (run_events rows, in apply order) the next positions, in place."""
    if not rows:
        return
    moved = conn.execute(update(event_positions).where(_ROW).values(
        last_position=event_positions.c.last_position + len(rows)))
    if moved.rowcount == 0:
        conn.execute(insert(event_positions).values(id=1, last_position=len(rows)))
    last = int(conn.execute(select(event_positions.c.last_position).where(_ROW)).scalar_one())
    for number, row in enumerate(rows, start=last - len(rows) + 1):
        row["position"] = number
