"""The executor's loop: each dispatch order is its own task, bounded in number, isolated.

- Independent: the loop keeps fetching while slots are free, so a slow endpoint holds one
  slot and nothing else. With every slot busy the partitions are paused, and getmany is
  still called (an idle poll longer than max.poll.interval would cost the assignment).
- Isolated: no exception from one record stops the loop. An order that cannot be read is
  written to the dead-letter topic; an order that cannot be carried out fails its attempt
  permanently with the error as the reason, and is dead-lettered too.
- Durable: an order counts as done once its report (and dead letter) is acknowledged by
  the broker. Offsets are committed as orders finish: the low watermark, plus the done
  offsets above it in the commit's metadata (see offsets.py), so a restart does not call a
  finished attempt again. RecentOrders catches redeliveries within one process's life.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from functools import partial
from typing import Any

import aiohttp
import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, OffsetMetadataTooLargeError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from events.dispatch import DispatchOrder, decode_dispatch
from events.topics import Topics
from events.types import AttemptFailure
from services.addresses import Network
from services.deadletter import DeadLetter, dead_letter, encode_dead_letter
from services.delivery import Delivery, RecordRefused
from services.domain import Command, ReportAttemptFailed, encode_command
from services.executor.call import Report, call_endpoint, failure_report, send_cancel_notice
from services.executor.offsets import MAX_METADATA_CHARS, PartitionProgress
from services.executor.webhooks import deliver_webhook
from services.runtoken import run_token

log = logging.getLogger(__name__)

RECENT_KEPT = 100_000
COMMIT_INTERVAL_SECS = 0.15
POLL_MS = 100
READ_COMMITTED_SECS = 5.0
# Failures that mean the order itself cannot be carried out; recorded as dead letters.
POISON_KINDS = frozenset({"refused", "executor_error"})
MAX_MESSAGE_CHARS = 2000


class RecentOrders:
    """Idempotency keys of orders this process finished, so a redelivery is not called
    twice (the committed offsets cover restarts; this covers rebalances and repeats)."""

    def __init__(self, size: int = RECENT_KEPT) -> None:
        self._done: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def __contains__(self, key: str) -> bool:
        return key in self._done

    def add(self, key: str) -> None:
        self._done[key] = None
        self._done.move_to_end(key)
        if len(self._done) > self._size:
            self._done.popitem(last=False)


class AttemptRefused(Exception):
    """The executor refused to carry an order out (its URL or address); for dead letters."""


Waiting = list[tuple[PartitionProgress, int]]


class Executor:
    def __init__(self, *, consumer: AIOKafkaConsumer, delivery: Delivery,
                 admin: AIOKafkaAdminClient, session: aiohttp.ClientSession,
                 allowed: Sequence[Network], topics: Topics, group_id: str,
                 max_in_flight: int, token_secret: bytes = b"") -> None:
        self._consumer = consumer
        self._delivery = delivery
        self._admin = admin
        self._session = session
        self._allowed = tuple(allowed)
        self._topics = topics
        self._group_id = group_id
        self._max_in_flight = max(1, max_in_flight)
        self._token_secret = token_secret
        # Idempotency key of each attempt being called -> the task calling it: a cancel
        # notice for the attempt cancels the call, and the attempt is reported stopped.
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._stop_asked: set[str] = set()
        self._partitions: dict[TopicPartition, PartitionProgress] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Idempotency key (or a record's own key for unreadable ones) -> the offsets that
        # wait for the one task carrying it out: a redelivery while the first is running
        # is not called twice, and is done when the first is.
        self._running: dict[str, Waiting] = {}
        self._recent = RecentOrders()
        self._changed = False
        self._last_commit = 0.0
        self._metadata_chars = MAX_METADATA_CHARS
        self._paused = False
        # Partitions whose committed metadata is being read; kept paused until it is.
        self._loading: set[TopicPartition] = set()

    def tasks(self) -> "set[asyncio.Task[None]]":
        """The orders running now (a copy)."""
        return set(self._tasks)

    def listener(self) -> ConsumerRebalanceListener:
        return _Rebalance(self)

    # --- the loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, grace_secs: float) -> None:
        while not stop.is_set():
            free = self._max_in_flight - len(self._tasks)
            self._backpressure(free)
            try:
                batches = await self._consumer.getmany(timeout_ms=POLL_MS if free > 0 else 50,
                                                       max_records=max(free, 1))
            except KafkaError as exc:
                log.warning("fetching dispatch orders failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            for tp, records in batches.items():
                for record in records:
                    self._take(tp, record)
            await self._commit()
        await self._drain(grace_secs)
        await self._commit(force=True)

    def _backpressure(self, free: int) -> None:
        if free <= 0 and not self._paused:
            self._consumer.pause(*self._consumer.assignment())
            self._paused = True
        elif free > 0 and self._paused:
            self._consumer.resume(*(self._consumer.paused() - self._loading))
            self._paused = False
        elif self._paused:
            # Partitions assigned while saturated arrive unpaused.
            self._consumer.pause(*self._consumer.assignment())

    async def _drain(self, grace_secs: float) -> None:
        """Let running orders finish (their reports are written) for a while, then cut
        them short: those are not done, and are called again by whoever comes next."""
        if not self._tasks:
            return
        log.info("stopping: waiting up to %.0fs for %d orders", grace_secs, len(self._tasks))
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_secs)
        await cancel_all(pending)

    # --- one record -------------------------------------------------------------------

    def _take(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        progress = self._partitions.setdefault(tp, PartitionProgress())
        try:
            self._dispatch(tp, progress, record)
        except Exception:
            # A bug in the bookkeeping must not stop the loop or hold the partition back.
            log.exception("could not handle dispatch record %s@%s", tp, record.offset)
            progress.finished(record.offset)
            self._changed = True

    def _dispatch(self, tp: TopicPartition, progress: PartitionProgress,
                  record: ConsumerRecord[bytes, bytes]) -> None:
        if not progress.fetched(record.offset):
            self._changed = True
            return
        try:
            order = decode_dispatch(record.value if record.value is not None else b"")
        except Exception as exc:
            letter = dead_letter("executor", exc, "skipped: the order cannot be read",
                                 topic=tp.topic, partition=tp.partition,
                                 offset=record.offset, key=record.key, value=record.value)
            self._start(f"unreadable:{tp.topic}:{tp.partition}:{record.offset}",
                        self._write_letter(letter), progress, record.offset)
            return
        key = order.work_key
        if order.kind == "cancel":
            if (calling := self._calls.get(order.idempotency_key)) is not None:
                self._stop_asked.add(order.idempotency_key)
                calling.cancel()
        if key in self._recent:
            progress.finished(record.offset)
            self._changed = True
        elif key in self._running:
            self._running[key].append((progress, record.offset))
        elif order.kind == "cancel":
            self._start(key, self._notify_cancel(order), progress, record.offset)
        elif order.kind == "webhook":
            self._start(key, deliver_webhook(self._session, order, self._allowed,
                                             self._token_secret, self._report),
                        progress, record.offset)
        else:
            self._start(key, self._carry_out(order, record), progress, record.offset)

    def _start(self, key: str, work: Coroutine[Any, Any, None],
               progress: PartitionProgress, offset: int) -> None:
        self._running[key] = [(progress, offset)]
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(partial(self._finished, key))

    def _finished(self, key: str, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        waiting = self._running.pop(key, [])
        if task.cancelled():
            return  # cut short at stop: not done, so not committed
        if task.exception() is not None:
            # _carry_out catches everything; this is a bug in it. The processor's report
            # deadline times the attempt out if its report was lost.
            log.error("order %s ended with an error", key, exc_info=task.exception())
        self._recent.add(key)
        for progress, offset in waiting:
            progress.finished(offset)
        self._changed = True

    def _token(self, order: DispatchOrder) -> str | None:
        if not self._token_secret:
            return None
        return run_token(self._token_secret, order.project_id, order.job_id, order.run_id,
                         order.attempt)

    async def _call(self, order: DispatchOrder) -> Report:
        """Call the endpoint, unless a cancel notice for the attempt comes first: then stop
        waiting and report the attempt stopped (its run is canceling)."""
        key = order.idempotency_key
        task = asyncio.current_task()
        assert task is not None
        self._calls[key] = task
        try:
            return await call_endpoint(self._session, order, self._allowed,
                                       self._token(order), time.perf_counter())
        except asyncio.CancelledError:
            if key not in self._stop_asked or task.cancelling() > 1:
                raise  # the executor is stopping: not done, carried out again later
            task.uncancel()
            stopped = AttemptFailure(kind="canceled", retryable=False,
                                     message="the executor stopped waiting: cancel requested")
            return failure_report(order, stopped)
        finally:
            self._calls.pop(key, None)
            self._stop_asked.discard(key)

    async def _report(self, command: Command) -> None:
        try:
            await self._delivery.send(self._topics.commands, encode_command(command),
                                      command.job_id.encode())
        except RecordRefused:
            log.exception("report %s could not be written", command.command_id)

    async def _notify_cancel(self, order: DispatchOrder) -> None:
        why = await send_cancel_notice(self._session, order, self._allowed, self._token(order))
        if why is not None:
            log.info("cancel notice for %s not delivered: %s", order.idempotency_key, why)

    async def _carry_out(self, order: DispatchOrder,
                         record: ConsumerRecord[bytes, bytes]) -> None:
        letter: DeadLetter | None = None
        try:
            report: Report = await self._call(order)
        except Exception as exc:
            # Anything else (a bug, an order no call can be made of): the attempt fails
            # permanently, with the error, instead of the order failing the loop.
            failure = AttemptFailure(kind="executor_error", retryable=False,
                                     message=f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE_CHARS])
            report = failure_report(order, failure)
            letter = self._letter(exc, record, "attempt failed permanently")
        else:
            if isinstance(report, ReportAttemptFailed) and report.failure.kind in POISON_KINDS:
                letter = self._letter(AttemptRefused(report.failure.message), record,
                                      f"attempt failed permanently ({report.failure.kind})")
        letter = await self._write_report(order, report, record) or letter
        if letter is not None:
            await self._write_letter(letter)

    async def _write_report(self, order: DispatchOrder, report: Report,
                            record: ConsumerRecord[bytes, bytes]) -> DeadLetter | None:
        """Write the report; if the broker will never take it (too large), fail the attempt
        with that reason instead, and return the dead letter to record."""
        key = order.job_id.encode()
        try:
            await self._delivery.send(self._topics.commands, encode_command(report), key)
            return None
        except (RecordRefused, msgspec.MsgspecError, ValueError, TypeError,
                OverflowError) as exc:
            failure = AttemptFailure(kind="executor_error", retryable=False,
                                     message=f"the report could not be written: "
                                             f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE_CHARS])
            letter = self._letter(exc, record, "report replaced by a failure")
        try:
            await self._delivery.send(self._topics.commands,
                                      encode_command(failure_report(order, failure)), key)
        except RecordRefused:
            log.exception("report for %s could not be written at all", order.idempotency_key)
        return letter

    def _letter(self, exc: BaseException, record: ConsumerRecord[bytes, bytes],
                reason: str) -> DeadLetter:
        return dead_letter("executor", exc, reason, topic=record.topic,
                           partition=record.partition, offset=record.offset,
                           key=record.key, value=record.value)

    async def _write_letter(self, letter: DeadLetter) -> None:
        key = letter.key.encode() if letter.key is not None else None
        try:
            await self._delivery.send(self._topics.deadletter, encode_dead_letter(letter), key)
        except RecordRefused:
            log.exception("dead letter for %s[%s]@%s could not be written", letter.topic,
                          letter.partition, letter.offset)

    # --- offsets ------------------------------------------------------------------------

    async def _commit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and (not self._changed or now - self._last_commit < COMMIT_INTERVAL_SECS):
            return
        self._changed, self._last_commit = False, now
        assigned = self._consumer.assignment()
        points = {tp: point for tp, progress in list(self._partitions.items())
                  if tp in assigned
                  and (point := progress.commit_point(self._metadata_chars)) is not None}
        await self._commit_points(points)

    async def _commit_points(self, points: dict[TopicPartition, tuple[int, str]]) -> None:
        if not points:
            return
        offsets = {tp: OffsetAndMetadata(offset, metadata)
                   for tp, (offset, metadata) in points.items()}
        try:
            await self._consumer.commit(offsets)
        except OffsetMetadataTooLargeError:
            # The broker's limit is below Kafka's default: keep less in the metadata.
            self._metadata_chars //= 2
            log.warning("offset metadata too large; keeping at most %d characters",
                        self._metadata_chars)
            self._changed = True
            return
        except KafkaError as exc:
            # A rebalance or a passing broker fault; the next commit carries the same.
            log.warning("committing dispatch offsets failed (%s); will retry", exc)
            self._changed = True
            return
        for tp, point in points.items():
            progress = self._partitions.get(tp)
            if progress is not None:
                progress.committed_at(point)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Commit what is done so the next owner does not call it again; orders still
        # running may finish and report (the processor drops a late or repeated report).
        points = {tp: point for tp in revoked if (progress := self._partitions.get(tp))
                  and (point := progress.commit_point(self._metadata_chars)) is not None}
        await self._commit_points(points)
        for tp in revoked:
            self._partitions.pop(tp, None)

    async def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Hold the new partitions until their committed metadata is read: the fetcher runs
        # on its own, and a record fetched meanwhile would be carried out without knowing
        # it was done in an earlier life.
        self._loading |= assigned
        self._consumer.pause(*assigned)
        try:
            committed = await self._read_committed(assigned)
            for tp in assigned:
                offset, metadata = committed.get(tp, (None, None))
                progress = PartitionProgress.from_committed(offset, metadata)
                self._partitions[tp] = progress
                log.info("assigned %s[%d] at offset %s, %d ranges done above it", tp.topic,
                         tp.partition, offset, len(progress.done_before))
        finally:
            self._loading -= assigned
            if not self._paused:
                self._consumer.resume(*(assigned & self._consumer.assignment()))

    async def _read_committed(self, partitions: set[TopicPartition],
                              ) -> dict[TopicPartition, tuple[int, str]]:
        """The committed offsets with their metadata (the consumer API drops metadata)."""
        if not partitions:
            return {}
        try:
            # Bounded well under the session timeout: no heartbeats go out while the
            # assignment callback runs.
            async with asyncio.timeout(READ_COMMITTED_SECS):
                while True:
                    try:
                        answer = await self._admin.list_consumer_group_offsets(
                            self._group_id, partitions=sorted(partitions))
                        return {tp: (meta.offset, meta.metadata or "")
                                for tp, meta in answer.items()}
                    except KafkaError as exc:
                        log.warning("reading committed offsets failed (%s); retrying", exc)
                        await asyncio.sleep(0.3)
        except TimeoutError:
            # Without the metadata, orders done above the watermark are called again:
            # safe (same Idempotency-Key, same report id), only not frugal.
            log.error("could not read committed offsets of %s; going on without",
                      sorted(partitions))
            return {}


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._executor.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._executor.partitions_assigned(assigned)


async def cancel_all(tasks: "set[asyncio.Task[None]]") -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
