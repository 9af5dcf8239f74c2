"""From SQL rows to the views' values: what every query module needs."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row


def aware(value: Any) -> Any:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def fields_of(row: Row[Any]) -> dict[str, Any]:
    # str(): column names are quoted_name, a str subclass msgspec does not take as a key
    return {str(k): aware(v) for k, v in row._asdict().items()}
