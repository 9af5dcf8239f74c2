"""A job definition's webhook secret as the API records it: sealed and fingerprinted,
never in clear; generated when a webhook_url has none, and then shown once."""

import msgspec

from events.types import JobSpec
from services import webhook_secrets
from services.api.errors import invalid


class SecretFields(msgspec.Struct, frozen=True):
    sealed: str | None = None
    sha256: str | None = None
    # The secret to show in this answer only (it was generated here), or None.
    shown: str | None = None


def secret_fields(service_secret: bytes, job_id: str, *, given: str | None,
                  webhook_url: str | None, kept: SecretFields | None = None) -> SecretFields:
    """The secret a job version records: the one given, else the one it had, else a new
    one when it has a webhook_url."""
    if given is not None:
        if not webhook_secrets.signing_key(given):
            raise invalid("webhook_secret", "no key in it: use the whsec_<base64 key> form "
                                            "(or leave it out to have one generated)")
        return SecretFields(webhook_secrets.seal(service_secret, given, job_id),
                            webhook_secrets.fingerprint(given))
    if kept is not None and kept.sealed is not None:
        return kept
    if webhook_url is None:
        return SecretFields()
    made = webhook_secrets.generate()
    return SecretFields(webhook_secrets.seal(service_secret, made, job_id),
                        webhook_secrets.fingerprint(made), shown=made)


def kept_secret(service_secret: bytes, spec: dict[str, object], from_job: str,
                to_job: str) -> SecretFields | None:
    """A stored version's secret, for the same job or sealed anew for another (a clone):
    the seal is bound to its job."""
    sealed = spec.get("webhook_secret_sealed")
    if not isinstance(sealed, str):
        return None
    if from_job != to_job:
        try:
            sealed = webhook_secrets.seal(
                service_secret, webhook_secrets.unseal(service_secret, sealed, from_job), to_job)
        except webhook_secrets.SecretUnreadable:
            return None
    sha = spec.get("webhook_secret_sha256")
    return SecretFields(sealed, sha if isinstance(sha, str) else None)


def with_secret(spec: JobSpec, fields: SecretFields) -> JobSpec:
    return msgspec.structs.replace(spec, webhook_secret_sealed=fields.sealed,
                                   webhook_secret_sha256=fields.sha256)
