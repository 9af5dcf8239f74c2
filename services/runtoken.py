"""Run tokens: what a run's endpoint presents to call back about that run.

A token is an HMAC of the run id under the service's secret, so it is checked without a
lookup and cannot be made for another run without the secret. Nothing stores it: the
trigger answer shows it, and the executor hands it to the endpoint with each attempt.
"""

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from services.config import Settings

PREFIX = "rt_"


def load_secret(settings: Settings) -> bytes:
    """The configured secret, or the one kept in the secret file (made if missing)."""
    if settings.run_token_secret:
        return settings.run_token_secret.encode()
    path: Path = settings.run_token_secret_file
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32).encode()
    try:
        # O_EXCL: when two services start at once, one writes and the other reads it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _written(path)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


def _written(path: Path) -> bytes:
    """The key another process is writing to ``path`` (it appears within moments)."""
    for _ in range(100):
        if key := path.read_bytes().strip():
            return key
        time.sleep(0.01)
    raise RuntimeError(f"the run token secret file {path} stays empty")


def run_token(secret: bytes, run_id: str) -> str:
    mac = hmac.new(secret, b"run:" + run_id.encode(), hashlib.sha256).digest()
    return PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def token_matches(secret: bytes, run_id: str, token: str) -> bool:
    return hmac.compare_digest(run_token(secret, run_id), token)
