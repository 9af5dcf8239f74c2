"""faust's restart hand-over (services/processor/handover.py), under the crash test.

The crash test again, with the processor fetching a few records at a time into a small
agent buffer: the conditions in which faust-streaming 0.15.3's own hand-over (partitions
resumed before the seek to the committed offsets) lets the stream skip commands and
freezes a partition's commit. Passes with the fix; run with
``JOBLEDGER_FAUST_HANDOVER_PATCH=0`` to see it fail without it.

faust's fetcher polls about once a second, and the race needs it to deliver while the
seek is pending (a few OffsetFetch round trips): here about one restart in twenty. The
seek is therefore slowed down (``slowseek/sitecustomize.py``, a slow coordinator), which
makes the race happen on every hand-over without the fix. And besides the restart after
the crash, a second processor joins and leaves while commands flow: hand-overs in a
living process, where the client's fetch position is ahead of the committed offset.
"""

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.cli.stack import ServiceProcess
from services.kafka import group_members
from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, start_stack, stopped_after, wait_ready
from tests.integration.test_crash_recovery import crash_mid_flight

pytestmark = pytest.mark.kafka

SMALL = {
    "JOBLEDGER_PROCESSOR_MAX_POLL_RECORDS": "5",  # faust's broker_max_poll_records
    "JOBLEDGER_PROCESSOR_STREAM_BUFFER": "4",  # faust's stream_buffer_maxsize
    # and small batches, so that the agent leaves records waiting in faust's buffer
    "JOBLEDGER_PROCESSOR_BATCH_MAX": "4",
    "JOBLEDGER_TEST_SEEK_DELAY": "1.5",
}
SLOW_SEEK = Path(__file__).parent / "slowseek"


@pytest.fixture(scope="module")
def small_fetch_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
                      request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    # The services take their settings from the environment they are started with (and
    # restarted with), so setting it around the start is enough.
    with pytest.MonkeyPatch.context() as env:
        for name, value in SMALL.items():
            env.setenv(name, value)
        env.setenv("PYTHONPATH", os.pathsep.join(filter(None, (
            str(SLOW_SEEK), os.environ.get("PYTHONPATH")))))
        running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("handover"))
    with stopped_after(running, request):
        yield running


async def test_restart_hands_commands_over_in_order(small_fetch_stack: RunningStack,
                                                    endpoint: Endpoint) -> None:
    stack = small_fetch_stack
    await wait_ready(stack)
    main = stack.stack["processor"]
    # Logs into the same file, so that its tripwire firings count too.
    second = ServiceProcess("processor", main.env, main.log_path.parent)

    group = f"{stack.prefix}-processor"

    async def members(count: int) -> None:
        for _ in range(60):
            if (await group_members(stack.bootstrap, group))[group] == count:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"the processor group never had {count} members")

    async def join_and_leave() -> None:
        second.start()
        await members(2)  # joined: the partitions are split (a hand-over in each)
        await asyncio.sleep(3.0)
        second.stop()  # left: they all move back to the first (another)
        await members(1)
        await asyncio.sleep(3.0)

    # Every run completes exactly once, and then: no tripwire firing (no skipped command)
    # and the commits reach the end of every commands partition (none froze).
    try:
        await crash_mid_flight(stack, endpoint, join_and_leave)
    finally:
        second.kill()
