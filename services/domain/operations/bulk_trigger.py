"""TriggerRuns: a bulk trigger's items decided one after another in one decision, each on
the state the earlier ones left (so two items with one idempotency key make one run), and
each answered in its place: a rejected item does not stop the others."""

from datetime import datetime

from services.domain.commands import TriggerRuns
from services.domain.decide import decide
from services.domain.evolve import evolve
from services.domain.results import Duplicate, Rejection, RunEvent
from services.domain.state import Aggregate, ItemAnswer


def trigger_each(state: Aggregate, command: TriggerRuns,
                 now: datetime) -> tuple[Aggregate, list[RunEvent], list[ItemAnswer]]:
    """The state after the items, their events in order, and each item's answer."""
    events: list[RunEvent] = []
    answers: list[ItemAnswer] = []
    for item in command.items:
        if (item.job_id, item.project_id) != (command.job_id, command.project_id):
            answers.append(ItemAnswer(run_id=item.run_id, rejected=True, code="invalid",
                                      reason="an item names another job than its bulk"))
            continue
        outcome = decide(state, item, now)
        if isinstance(outcome, Rejection):
            answers.append(ItemAnswer(run_id=item.run_id, rejected=True, code=outcome.code,
                                      reason=outcome.reason))
        elif isinstance(outcome, Duplicate):
            answers.append(ItemAnswer(run_id=outcome.run_id, idempotency_hit=True))
        else:
            for run_id, event in outcome:
                state = evolve(state, run_id, event)
                events.append((run_id, event))
            answers.append(ItemAnswer(run_id=item.run_id))
    return state, events, answers
