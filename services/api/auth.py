"""Bearer API keys: each key belongs to one project and carries a role.

Authentication is a middleware, so it runs before anything reads the request body: an
unauthenticated request learns nothing about what a valid body looks like.
"""

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware

from services.api.errors import ApiError
from services.config import ApiKey, Settings, hash_key
from services.runtoken import PREFIX as RUN_TOKEN_PREFIX
from services.runtoken import RunClaims, verify_token

ROLE_RANK = {"viewer": 0, "operator": 1, "admin": 2}
# Routes anyone may call: liveness, readiness and the API's documentation.
PUBLIC_PATHS = ["^/healthz$", "^/readyz$", "^/docs"]


class KeyRing:
    def __init__(self, settings: Settings) -> None:
        self._by_hash = {key.key_hash: key for key in settings.api_keys}

    def identify(self, token: str) -> ApiKey | None:
        # Looking up the SHA-256 of the token leaks nothing useful through timing: an
        # attacker cannot steer the digest towards a stored one.
        return self._by_hash.get(hash_key(token))


class BearerKeyAuth(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any],
                                   ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing bearer API key (Authorization: Bearer <key>)")
        token = token.strip()
        if token.startswith(RUN_TOKEN_PREFIX):
            # A run token (the callbacks): checked by its HMAC, no lookup.
            ctx = getattr(connection.app.state, "ctx", None)
            claims = None if ctx is None else verify_token(ctx.token_secret, token)
            if claims is None:
                raise ApiError(401, "invalid run token", headers=_INVALID)
            return AuthenticationResult(user=claims, auth=None)
        keyring: KeyRing = connection.app.state.keyring
        key = keyring.identify(token)
        if key is None:
            raise ApiError(401, "unknown API key", headers=_INVALID)
        return AuthenticationResult(user=key, auth=None)


_INVALID = {"WWW-Authenticate": 'Bearer realm="jobledger", error="invalid_token"'}


def auth_middleware() -> DefineMiddleware:
    return DefineMiddleware(BearerKeyAuth, exclude=PUBLIC_PATHS, exclude_http_methods=())


def caller_of(request: Request[Any, Any, Any], role: str = "viewer") -> ApiKey:
    """The authenticated key, checked to hold at least ``role``."""
    key = request.user
    if not isinstance(key, ApiKey):
        raise ApiError(403, "a run token may only call back about its own run "
                            "(/v1/runs/{id}/heartbeat, progress, messages, complete, fail)")
    if ROLE_RANK.get(key.role, -1) < ROLE_RANK[role]:
        raise ApiError(403, f"this API key's role {key.role!r} cannot do this; "
                            f"it needs {role!r}")
    return key


def run_caller(request: Request[Any, Any, Any], run_id: str) -> RunClaims:
    """The run token's claims, checked to be about ``run_id``; an API key cannot call
    back (the callbacks speak for the attempt, which only its endpoint knows)."""
    claims = request.user
    if not isinstance(claims, RunClaims):
        raise ApiError(403, "callbacks take the run token the endpoint received in "
                            "X-Run-Token (Authorization: Bearer rt_...), not an API key")
    if claims.run_id != run_id:
        raise ApiError(403, "this run token is for another run")
    return claims
