"""Job version ids for the core (defined beside the events: subscribers and the read
model derive the same ids, e.g. for job.created events written before they were recorded)."""

from events.versions import version_id_for

__all__ = ["version_id_for"]
