"""What request handlers share: settings, the command bus, the read-model engine."""

import time
from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.views import JobView
from services.api.auth import KeyRing
from services.api.bus import CommandBus
from services.api.cache import TtlCache
from services.api.errors import ApiError
from services.api.quota_guard import QuotaGuard
from services.api.visibility import ProjectionWatcher
from services.config import Settings
from services.domain import Command
from services.outcomes import CommandOutcome

# The processor's rejection codes as HTTP statuses; "unprocessable" is a command the
# processor could not handle at all (it was recorded on the dead-letter topic).
REJECTION_STATUS = {"not_found": 404, "conflict": 409, "invalid": 422, "unprocessable": 422}


class StillPending(Exception):
    """Accepted, but not (or not yet) visible: the handler answers 202.

    ``asked`` is True when the client asked for it (``Prefer: respond-async``): the
    command was accepted by the processor and the answer did not wait for the projection.
    """

    def __init__(self, command_id: str, location: str | None, resource_id: str | None = None,
                 asked: bool = False, visible_at: tuple[str, int] | None = None) -> None:
        super().__init__(command_id)
        self.command_id, self.location = command_id, location
        self.resource_id, self.asked = resource_id, asked
        # The (job id, seq) the read model shows the effect at, once the processor
        # accepted the command (None: not known, it did not answer in time).
        self.visible_at = visible_at


def prefers_async(request: Request[Any, Any, Any]) -> bool:
    """Whether the client sent ``Prefer: respond-async`` (RFC 7240)."""
    for header in request.headers.getall("prefer", []):
        for preference in header.split(","):
            if preference.split(";")[0].strip().lower() == "respond-async":
                return True
    return False


@dataclass
class ApiContext:
    settings: Settings
    bus: CommandBus
    engine: AsyncEngine
    keyring: KeyRing
    watcher: ProjectionWatcher
    jobs: TtlCache[JobView] = field(default_factory=TtlCache)
    # What run tokens are signed with (services.runtoken).
    token_secret: bytes = b""
    quota_guard: QuotaGuard = field(default_factory=QuotaGuard)

    async def execute(self, command: Command, location: str | None = None,
                      resource_id: str | None = None,
                      respond_async: bool = False) -> CommandOutcome:
        """Send ``command``; return once its effect is in the read model (read-your-writes).

        Raises ApiError with the processor's reason, or StillPending past the bound, or
        at once once the processor accepted the command when ``respond_async``.
        """
        deadline = time.monotonic() + self.settings.command_wait_secs
        outcome = await self.accepted(command, location, resource_id)
        if outcome.idempotency_hit and outcome.run_id is not None:
            # The answer is the run the key made before, not the one this command named.
            location, resource_id = f"/v1/runs/{outcome.run_id}", outcome.run_id
        if respond_async:
            raise StillPending(command.command_id, location, resource_id, asked=True,
                               visible_at=(command.job_id, outcome.seq))
        left = max(0.0, deadline - time.monotonic())
        if not await self.watcher.wait_for(command.job_id, outcome.seq, left):
            raise StillPending(command.command_id, location, resource_id,
                               visible_at=(command.job_id, outcome.seq))
        return outcome

    async def accepted(self, command: Command, location: str | None = None,
                       resource_id: str | None = None) -> CommandOutcome:
        """Send ``command`` and return the processor's acceptance, or raise as above."""
        outcome = await self.bus.send(command)
        if outcome is None:
            raise StillPending(command.command_id, location, resource_id)
        if outcome.rejected:
            code = outcome.code or "conflict"
            raise ApiError(REJECTION_STATUS.get(code, 409), outcome.reason or "rejected",
                           code=code)
        return outcome
