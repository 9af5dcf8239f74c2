"""Identifiers the API hands out."""

import uuid

_JOB_NAMESPACE = uuid.UUID("8f1d7c52-4c56-4a53-9d0c-6f0c3b1de7a1")


def job_id_for(project_id: str, slug: str) -> str:
    """A job's id follows from its project and slug.

    Commands are partitioned by job id, so two concurrent creates of the same slug meet on
    one processor, which accepts the first and rejects the second: slug uniqueness per
    project holds without a lock or a read-before-write.
    """
    return "job_" + uuid.uuid5(_JOB_NAMESPACE, f"{project_id}/{slug}").hex


def new_run_id() -> str:
    return "run_" + uuid.uuid4().hex


def new_command_id() -> str:
    return "cmd_" + uuid.uuid4().hex
