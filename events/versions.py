"""Job versions: every version of a job has a deterministic id.

``uuid5`` is a pure function of its inputs (no clock, no randomness), so the core may
derive ids with it: deciding a command again yields the same version id.
"""

import uuid

_VERSION_NAMESPACE = uuid.UUID("3c1b6a0e-2f4d-4e8b-9a57-6d1f0c2b7e93")


def version_id_for(job_id: str, version: int) -> str:
    """``jv_`` + uuid5 of the job id and the version number."""
    return "jv_" + uuid.uuid5(_VERSION_NAMESPACE, f"{job_id}/{version}").hex
