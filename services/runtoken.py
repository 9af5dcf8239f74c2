"""Run tokens: what a run's endpoint presents to call back about that run.

A token names one attempt of one run (with its project and job) and carries an HMAC of
that under the service's secret, so it is checked without a lookup and cannot be made
for another run or attempt without the secret. Nothing stores it: the trigger answer
shows attempt 1's, and the executor hands each attempt's to the endpoint in the
``X-Run-Token`` header. The processor decides whether the attempt is still in progress.
"""

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

import msgspec

from services.config import Settings

PREFIX = "rt_"
# Far above any token made here (ids are at most 64 characters each).
MAX_TOKEN_CHARS = 1024


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


class RunClaims(msgspec.Struct, frozen=True):
    """What a valid run token vouches for: one attempt of one run (and where it lives)."""

    project_id: str
    job_id: str
    run_id: str
    attempt: int


_SEP = "\x1f"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _mac(secret: bytes, claims: str) -> bytes:
    return hmac.new(secret, b"run:" + claims.encode(), hashlib.sha256).digest()


def run_token(secret: bytes, project_id: str, job_id: str, run_id: str, attempt: int) -> str:
    """The token of one attempt: its claims in the clear (ids, not secrets), then their
    HMAC. The trigger's answer shows attempt 1's; each attempt's goes to the endpoint."""
    claims = _SEP.join((str(attempt), project_id, job_id, run_id))
    return f"{PREFIX}{_b64(claims.encode())}.{_b64(_mac(secret, claims))}"


def verify_token(secret: bytes, token: str) -> RunClaims | None:
    """The claims of a token this service made, or None for anything else."""
    if not token.startswith(PREFIX) or len(token) > MAX_TOKEN_CHARS:
        return None
    encoded, _, mac = token[len(PREFIX):].partition(".")
    try:
        claims = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(_b64(_mac(secret, claims)), mac):
        return None
    attempt, project_id, job_id, run_id = claims.split(_SEP)
    return RunClaims(project_id, job_id, run_id, int(attempt))
