"""Bearer API keys: each key belongs to one project and carries a role."""

from litestar import Request
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from services.config import ApiKey, Settings, hash_key

ROLE_RANK = {"viewer": 0, "operator": 1, "admin": 2}


class KeyRing:
    def __init__(self, settings: Settings) -> None:
        self._by_hash = {key.key_hash: key for key in settings.api_keys}

    def identify(self, token: str) -> ApiKey | None:
        # Looking up the SHA-256 of the token leaks nothing useful through timing: an
        # attacker cannot steer the digest towards a stored one.
        return self._by_hash.get(hash_key(token))


def caller_of(request: Request) -> ApiKey:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("missing bearer API key (Authorization: Bearer <key>)")
    key: ApiKey | None = request.app.state.ctx.keyring.identify(token.strip())
    if key is None:
        raise NotAuthorizedException("unknown API key")
    return key


def require(key: ApiKey, role: str) -> None:
    if ROLE_RANK.get(key.role, -1) < ROLE_RANK[role]:
        raise PermissionDeniedException(f"this API key's role {key.role!r} cannot do this; "
                                        f"it needs {role!r}")
