"""Test-only fault injection for test_handover.py: a slow seek to the committed offsets.

Python imports ``sitecustomize`` at start from ``PYTHONPATH``; the hand-over test puts
this directory there for the stack it starts. In the processor only (and only with
``JOBLEDGER_TEST_SEEK_DELAY`` set), faust's ``Consumer.perform_seek`` waits that many
seconds before seeking, as with a slow group coordinator. faust 0.15.3 resumes the stream
partitions *before* that seek, so its fetcher (which polls about once a second) delivers
commands while the seek is pending on every restart instead of now and then: the race the
hand-over fix removes. With the fix the partitions stay paused during the wait.
"""

import asyncio
import os
import sys

_DELAY = float(os.environ.get("JOBLEDGER_TEST_SEEK_DELAY") or 0)

if _DELAY and "services.processor" in getattr(sys, "orig_argv", ()):
    from faust.transport.consumer import Consumer

    _perform_seek = Consumer.perform_seek

    async def _slow_perform_seek(self: Consumer) -> None:
        await asyncio.sleep(_DELAY)
        await _perform_seek(self)

    Consumer.perform_seek = _slow_perform_seek  # type: ignore[method-assign]
    print(f"slowseek: faust's seek to committed offsets waits {_DELAY}s first",
          file=sys.stderr, flush=True)
