"""What request handlers share: settings, the command bus, the read-model engine."""

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.auth import KeyRing
from services.api.bus import CommandBus
from services.api.errors import ApiError
from services.api.visibility import ProjectionWatcher
from services.config import Settings
from services.domain import Command
from services.outcomes import CommandOutcome

# The processor's rejection codes as HTTP statuses; "unprocessable" is a command the
# processor could not handle at all (it was recorded on the dead-letter topic).
REJECTION_STATUS = {"not_found": 404, "conflict": 409, "invalid": 422, "unprocessable": 422}


class StillPending(Exception):
    """Accepted, but not visible within the bound: the handler answers 202."""

    def __init__(self, command_id: str, location: str | None) -> None:
        super().__init__(command_id)
        self.command_id, self.location = command_id, location


@dataclass
class ApiContext:
    settings: Settings
    bus: CommandBus
    engine: AsyncEngine
    keyring: KeyRing
    watcher: ProjectionWatcher

    async def execute(self, command: Command, location: str | None = None) -> CommandOutcome:
        """Send ``command``; return once its effect is in the read model (read-your-writes).

        Raises ApiError with the processor's reason, or StillPending past the bound.
        """
        deadline = time.monotonic() + self.settings.command_wait_secs
        outcome = await self.bus.send(command)
        if outcome is None:
            raise StillPending(command.command_id, location)
        if outcome.rejected:
            code = outcome.code or "conflict"
            raise ApiError(REJECTION_STATUS.get(code, 409), outcome.reason or "rejected",
                           code=code)
        left = max(0.0, deadline - time.monotonic())
        if not await self.watcher.wait_for(command.job_id, outcome.seq, left):
            raise StillPending(command.command_id, location)
        return outcome
