"""What request handlers share: settings, the command bus, the read-model engine."""

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.auth import KeyRing
from services.api.bus import CommandBus
from services.api.visibility import ProjectionWatcher
from services.config import Settings
from services.domain import Command
from services.outcomes import CommandOutcome

REJECTION_STATUS = {"not_found": 404, "conflict": 409, "invalid": 422}


class CommandRejected(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason

    @property
    def status_code(self) -> int:
        return REJECTION_STATUS.get(self.code, 409)


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

        Raises CommandRejected with the processor's reason, or StillPending past the bound.
        """
        deadline = time.monotonic() + self.settings.command_wait_secs
        outcome = await self.bus.send(command)
        if outcome is None:
            raise StillPending(command.command_id, location)
        if outcome.rejected:
            raise CommandRejected(outcome.code or "conflict", outcome.reason or "rejected")
        left = max(0.0, deadline - time.monotonic())
        if not await self.watcher.wait_for(command.job_id, outcome.seq, left):
            raise StillPending(command.command_id, location)
        return outcome
