"""Webhook secrets: made in the Standard Webhooks form (``whsec_<base64 key>``), shown to
the caller once, and kept on the log only sealed (AES-GCM under a key derived from the
service secret, see services.runtoken) and as a SHA-256 fingerprint. The executor, which
signs deliveries, unseals them; nothing else needs to.
"""

import base64
import binascii
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "whsec_"
SEALED_PREFIX = "v1:"
_NONCE_BYTES = 12


class SecretUnreadable(ValueError):
    """A sealed secret that this service's key does not open (or that is damaged)."""


def generate() -> str:
    """A new secret: 32 random bytes, in the form the Standard Webhooks libraries take."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret, read as the Standard Webhooks libraries read it: the part
    after ``whsec_`` as base64 (characters outside the alphabet are skipped); empty if
    nothing is left."""
    text = secret[len(PREFIX):] if secret.startswith(PREFIX) else secret
    try:
        return base64.b64decode(text + "==")
    except (binascii.Error, ValueError):
        return b""


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _aead(service_secret: bytes) -> AESGCM:
    # Its own key for this purpose, so the run tokens' key is never used to encrypt.
    return AESGCM(hmac.new(service_secret, b"jobledger webhook secrets",
                           hashlib.sha256).digest())


def seal(service_secret: bytes, secret: str, job_id: str) -> str:
    """The secret encrypted for the log, bound to its job (it opens for no other)."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _aead(service_secret).encrypt(nonce, secret.encode(), job_id.encode())
    return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()


def unseal(service_secret: bytes, sealed: str, job_id: str) -> str:
    if not sealed.startswith(SEALED_PREFIX):
        raise SecretUnreadable("not a sealed secret of this version")
    try:
        raw = base64.b64decode(sealed[len(SEALED_PREFIX):], validate=True)
        return _aead(service_secret).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                             job_id.encode()).decode()
    except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError) as exc:
        raise SecretUnreadable(f"the webhook secret cannot be opened: {type(exc).__name__}"
                               ) from None


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: v1 and the base64 HMAC-SHA256 of
    ``id.timestamp.body``."""
    signed = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
