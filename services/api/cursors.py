"""Opaque keyset cursors: the (time, id) of a page's last item, encoded."""

import base64
import binascii
from datetime import datetime

from services.api.errors import invalid


def cursor_of(at: datetime, item_id: str) -> str:
    raw = f"{at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def position_of(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, item_id = text.partition("|")
        if item_id:
            return datetime.fromisoformat(at), item_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise invalid("cursor", "not a cursor this list handed out")
