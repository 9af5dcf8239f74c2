"""Topic names, in one place.

Every deployment (and every test) may use its own prefix, so two stacks can share one
broker without seeing each other's records.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = "jobledger"

    @property
    def commands(self) -> str:
        """Commands for the processor, keyed by job id."""
        return f"{self.prefix}.commands"

    @property
    def events(self) -> str:
        """The source of truth, keyed by job id, kept forever."""
        return f"{self.prefix}.events"

    @property
    def dispatch(self) -> str:
        """Work for executors, keyed by run id."""
        return f"{self.prefix}.dispatch"

    @property
    def outcomes(self) -> str:
        """The processor's answer to each command, read by the API to answer its caller."""
        return f"{self.prefix}.outcomes"

    @property
    def deadletter(self) -> str:
        """Records a loop could not handle, with the error (see services.deadletter)."""
        return f"{self.prefix}.deadletter"

    @property
    def projected(self) -> str:
        """The projector's notices: the positions each committed batch made visible
        (projections.notices), so readers need not poll the read models."""
        return f"{self.prefix}.projected"
