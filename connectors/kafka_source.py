"""A partitioned Kafka source for Bytewax that reads whole batches.

Compared to `bytewax.connectors.kafka.KafkaSource` it adds what the pipeline
needs: a bounded wait for the broker instead of a hang, the Streaming
Runtime's `scan.startup.mode`, a bounded mode that stops at the offsets that
were the end of each partition at start, and a per-partition handler that
runs beside the reader and snapshots its state together with the offset, so
the partition's watermark and its position can never disagree after a
restart; for handlers that track a watermark, reads aligned in event time
(`engine.alignment`), so a replay's state stays a few windows; whether a
partition is caught up with its log (only then may it be judged idle); and
the offsets of snapshots committed to the Processor's consumer group.

Items per read: whatever the handler makes of the read's records. A
partition with nothing to read still calls its handler with no records
every tick, so the engine keeps hearing from it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Generic, Iterable, Mapping, Protocol, TypeVar, cast

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from config.pipeline import StartupMode
from connectors.kafka_admin import partition_counts, wait_for_kafka
from connectors.kafka_readers import PartitionReaderLike, open_reader
from engine.alignment import EventTimeAlignment
from engine.records import PartitionId, RecordBatch, RecordList, RetryLater
from engine.table_first import TableFirst
from runtime.stop import stop_requested

log = logging.getLogger(__name__)

X = TypeVar("X")

PROBE_EVERY_S = 1.0
"""How often a caught-up partition asks the broker for its end offset, so that
a broker it cannot reach is noticed (the partition is then not caught up)."""
PROBE_TIMEOUT_S = 0.5


class BatchHandler(Protocol[X]):
    """Per-partition processing: a read's records in, items out.

    `caught_up` says whether the reader had reached the end of the
    partition's log (and could still reach the broker) after this read: only
    such a partition may be judged idle."""

    def handle(self, batch: RecordBatch, end_of_input: bool, caught_up: bool) -> Iterable[X]: ...

    def snapshot(self) -> Any: ...


class WatermarkedHandler(BatchHandler[X], Protocol[X]):
    """A handler that tracks its partition's watermark, so reads can be aligned in event time."""

    def watermark(self) -> int | None: ...


@dataclass(frozen=True)
class SourceSettings:
    """How a Stream's partitions are read, as the Stream, the Processor and the run options say."""

    startup_mode: StartupMode = "earliest-offset"
    startup_timestamp_ms: int | None = None
    bounded: bool = False  # stop each partition at the end offset it had when it was opened
    batch_size: int = 20000
    connect_timeout_s: float = 30.0
    native: bool = True  # the native reader where it is built
    group_id: str = "iot-monitoring"  # where offsets of completed snapshots are committed
    max_watermark_drift_ms: int | None = None  # event-time alignment of the partitions; None: off
    poll_timeout_s: float = 0.0
    tick_s: float = 0.2


class KafkaBatchPartition(StatefulSourcePartition[X, tuple[int, Any]], Generic[X]):
    """Reads one partition; hands every batch to its handler."""

    def __init__(self, reader: PartitionReaderLike, topic: str, partition: int, start: int, end: int | None,
                 handler: BatchHandler[X], batch_size: int, poll_timeout_s: float, tick_s: float,
                 alignment: EventTimeAlignment | None = None, committer: OffsetCommitter | None = None,
                 loads_first: TableFirst | None = None, waits_for: TableFirst | None = None):
        """`loads_first`: this is a join's table, which its events wait for; `waits_for`: these are the events."""
        self.reader = reader
        self.topic = topic
        self.partition = partition
        self.next_offset = start
        self.end = end
        self.handler = handler
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.tick_s = tick_s
        self.idle_poll = timedelta(milliseconds=10)
        self.retry_after = timedelta(seconds=1)
        self.finished = False
        self.end_seen = False  # the reader reported reaching the end of the log (bounded mode asks it to)
        self.last_emit = 0.0
        self.last_retry_log = 0.0
        self.last_probe = float("-inf")
        self.reachable = True
        self.awake: datetime | None = None
        self.alignment = alignment
        self.committer = committer
        self.loads_first = loads_first
        self.waits_for = waits_for
        if alignment is not None:
            alignment.join(partition)
        if loads_first is not None:
            loads_first.loading(partition)
        reader.assign(start)

    def next_batch(self) -> list[X]:
        if self.finished:
            raise StopIteration()
        if stop_requested():  # a graceful stop: the input ends here, the handler keeps its state
            self._finish()
            raise StopIteration()
        if self.end is not None and self.next_offset >= self.end:
            self._finish()
            return list(self.handler.handle(RecordList(()), True, True))
        if self.waits_for is not None and not self.waits_for.may_read():
            self.awake = datetime.now(timezone.utc) + self.idle_poll  # the join's table is being read first
            return []
        if self.alignment is not None and not self.alignment.may_read(self.partition):
            self.awake = datetime.now(timezone.utc) + self.idle_poll  # ahead in event time: let the others catch up
            return []
        read = self.reader.read(self.batch_size, self.poll_timeout_s)
        # Nothing queued: let the worker run other steps and come back soon,
        # instead of blocking it in librdkafka (latency of every partition).
        self.awake = None if read.count or read.errors else datetime.now(timezone.utc) + self.idle_poll
        for code, _, text in read.errors:
            if code == KafkaError._PARTITION_EOF:
                self.end_seen = True
            else:
                log.warning("Kafka %s/%s: %s (retrying)", self.topic, self.partition, text)
        next_offset = read.next_offset if read.next_offset is not None else self.next_offset
        # The end offset may be a transaction's commit marker, which is never
        # read as a record: reaching the end of the log then ends the partition,
        # once a read finds nothing more.
        at_end = self.end is not None and (next_offset >= self.end or (self.end_seen and not read.count))
        now = time.monotonic()
        if not read.count and not at_end and now - self.last_emit < self.tick_s:
            return []
        caught_up = at_end if self.end is not None else self._caught_up(next_offset, now)
        if caught_up and self.loads_first is not None:
            self.loads_first.loaded(self.partition)
        try:
            out = list(self.handler.handle(read.batch, at_end, caught_up))
        except RetryLater as exc:
            if now - self.last_retry_log > 10:
                log.warning("%s/%s: %s; retrying", self.topic, self.partition, exc)
                self.last_retry_log = now
            self.reader.seek(self.next_offset)
            self.awake = datetime.now(timezone.utc) + self.retry_after
            return []
        self.next_offset = next_offset
        self.last_emit = now
        if at_end:
            self._finish()
        elif self.alignment is not None:  # its source made it for WatermarkedHandlers only
            watermark = cast(WatermarkedHandler[X], self.handler).watermark()
            self.alignment.report(self.partition, watermark, self._has_backlog(read.count))
        return out

    def _caught_up(self, next_offset: int, now: float) -> bool:
        """Whether the partition has nothing more to read right now, as far as
        the broker says; False while the broker cannot be asked."""
        high = self.reader.cached_high_watermark()
        if high >= 0 and next_offset < high:
            return False
        if now - self.last_probe >= PROBE_EVERY_S:
            self.last_probe = now
            try:
                _, high = self.reader.watermarks(PROBE_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - any failure to ask means: not known to be caught up
                if self.reachable:
                    log.warning("Kafka %s/%s: cannot ask the broker for the end of the log (%s); "
                                "the partition holds the watermark until it can", self.topic, self.partition, exc)
                self.reachable = False
                return False
            if not self.reachable:
                log.info("Kafka %s/%s: the broker answers again", self.topic, self.partition)
            self.reachable = True
            return next_offset >= high
        return self.reachable

    def _has_backlog(self, just_read: int) -> bool:
        """Whether records are waiting beyond what was just read (caught-up
        partitions never hold a replay back)."""
        if self.end is not None:
            return self.next_offset < self.end
        high = self.reader.cached_high_watermark()
        return high > self.next_offset if high >= 0 else just_read >= self.batch_size

    def _finish(self) -> None:
        self.finished = True
        self._leave()

    def _leave(self) -> None:
        """A partition that no longer reads holds nobody back."""
        if self.alignment is not None:
            self.alignment.leave(self.partition)
        if self.loads_first is not None:
            self.loads_first.loaded(self.partition)

    def next_awake(self) -> datetime | None:
        return self.awake

    def snapshot(self) -> tuple[int, Any]:
        if self.committer is not None:
            self.committer.snapshot_taken(self.partition, self.next_offset)
        return (self.next_offset, self.handler.snapshot())

    def close(self) -> None:
        self._leave()
        self.reader.close()
        if self.committer is not None:
            self.committer.close()


class KafkaBatchSource(FixedPartitionedSource[X, tuple[int, Any]], Generic[X]):
    """Every partition of one topic, each read by the worker that owns it.

    `make_handler(partition_id, all_partitions, handler_state)` builds the
    per-partition processing. Nothing is asked of the broker until Bytewax
    lists the partitions at run time.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        make_handler: Callable[[PartitionId, tuple[PartitionId, ...], Any], BatchHandler[X]],
        settings: SourceSettings = SourceSettings(),
        consumer_config: Mapping[str, str] | None = None,
        loads_first: TableFirst | None = None,
        waits_for: TableFirst | None = None,
    ):
        """`loads_first` / `waits_for`: the table, or the events, of a join (`engine.table_first`)."""
        self.bootstrap = bootstrap
        self.topic = topic
        self.make_handler = make_handler
        self.settings = settings
        self.consumer_config = dict(consumer_config or {})
        # handlers must then be WatermarkedHandlers; None: no alignment
        drift = settings.max_watermark_drift_ms
        self.alignment = None if drift is None else EventTimeAlignment(drift)
        self.loads_first, self.waits_for = loads_first, waits_for
        self._partition_count: int | None = None

    def _partitions(self) -> int:
        """The topic's partition count, asked once per process."""
        if self._partition_count is None:
            client = wait_for_kafka(self.bootstrap, self.settings.connect_timeout_s, self.consumer_config)
            counts = partition_counts(client, [self.topic])
            if self.topic not in counts:
                raise RuntimeError(f"Kafka topic {self.topic!r} does not exist at {self.bootstrap}")
            self._partition_count = counts[self.topic]
        return self._partition_count

    def list_parts(self) -> list[str]:
        return [str(PartitionId(self.topic, p)) for p in range(self._partitions())]

    def _config(self) -> dict[str, str]:
        return {
            "group.id": self.settings.group_id,
            "enable.auto.commit": "false",  # the offsets of completed snapshots are committed instead
            "enable.partition.eof": "true" if self.settings.bounded else "false",
            "auto.offset.reset": "earliest",  # an offset that is gone resumes at the oldest record kept
            "fetch.wait.max.ms": "50",
            # librdkafka's 1 s default back-off between fetches caps a consumer
            # far below what the broker serves; a smaller prefetch queue keeps
            # memory bounded at the same speed. A Stream's properties override both.
            "fetch.queue.backoff.ms": "10",
            "queued.max.messages.kbytes": "16384",
            "socket.connection.setup.timeout.ms": "5000",
            "log_level": "3",
            **self.consumer_config,
            "bootstrap.servers": self.bootstrap,
        }

    def build_part(self, step_id: str, for_part: str, resume_state: tuple[int, Any] | None) -> KafkaBatchPartition[X]:
        pid = PartitionId.parse(for_part)
        s = self.settings
        config = self._config()
        reader = open_reader(config, self.topic, pid.partition, native=s.native)
        low, high = reader.watermarks(s.connect_timeout_s)
        if resume_state is not None:
            start, handler_state = resume_state
            start = self._still_there(pid, start, low, high)
        else:
            start, handler_state = self._start_offset(config, pid.partition, low, high), None
        all_parts = tuple(PartitionId(self.topic, p) for p in range(self._partitions()))
        handler = self.make_handler(pid, all_parts, handler_state)
        end = high if s.bounded else None
        return KafkaBatchPartition(reader, self.topic, pid.partition, start, end, handler, s.batch_size, s.poll_timeout_s,
                                   s.tick_s, self.alignment, OffsetCommitter(config, self.topic),
                                   self.loads_first, self.waits_for)

    def _still_there(self, pid: PartitionId, start: int, low: int, high: int) -> int:
        """A resume offset that retention deleted (or a topic that was made
        anew) cannot be read: say what is skipped and resume at the oldest record kept."""
        if start < low:
            log.error("Kafka %s: offset %d, where this dataflow stopped, is gone (the log now starts at %d): "
                      "%d record(s) were deleted by retention before they were read; resuming at %d",
                      pid, start, low, low - start, low)
            return low
        if start > high:
            log.error("Kafka %s: offset %d, where this dataflow stopped, is past the end of the log (%d): "
                      "the topic was made anew; resuming at its start, %d", pid, start, high, low)
            return low
        return start

    def _start_offset(self, config: dict[str, str], part: int, low: int, high: int) -> int:
        mode = self.settings.startup_mode
        if mode == "latest-offset":
            return high
        if mode == "timestamp" and self.settings.startup_timestamp_ms is not None:
            stamp = self.settings.startup_timestamp_ms
            found = _ask(config, lambda c: c.offsets_for_times([TopicPartition(self.topic, part, stamp)], timeout=10))
            return found[0].offset if found[0].offset >= 0 else high
        if mode == "group-offsets":
            committed = _ask(config, lambda c: c.committed([TopicPartition(self.topic, part)], timeout=10))
            if committed and committed[0].offset >= 0:
                return self._still_there(PartitionId(self.topic, part), committed[0].offset, low, high)
            log.info("Kafka %s/%s: group %r has no committed offset; starting at the earliest record",
                     self.topic, part, config["group.id"])
        return low


class OffsetCommitter:
    """Commits a partition's offsets to the Processor's consumer group, one
    snapshot behind (the offset of snapshot n is committed when snapshot n+1
    is taken, by which time the epoch of snapshot n has closed), so the
    committed offset does not run ahead of what a restart from the recovery
    store resumes at. The commit only informs (lag in Kafka's own
    tools, `scan.startup.mode: group-offsets` for a run without a recovery
    store); the recovery store stays what a restart reads."""

    def __init__(self, config: Mapping[str, str], topic: str) -> None:
        self.config = dict(config)
        self.topic = topic
        self.pending: int | None = None
        self._consumer: Consumer | None = None
        self._failed_once = False

    def snapshot_taken(self, partition: int, offset: int) -> None:
        previous, self.pending = self.pending, offset
        if previous is None:
            return
        try:
            if self._consumer is None:
                self._consumer = Consumer(self.config)
            self._consumer.commit(offsets=[TopicPartition(self.topic, partition, previous)], asynchronous=True)
        except KafkaException as exc:
            if not self._failed_once:
                log.warning("Kafka %s/%s: committing offset %d to group %r failed (%s); it is retried at the next snapshot",
                            self.topic, partition, previous, self.config.get("group.id"), exc)
                self._failed_once = True

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _ask(config: dict[str, str], question: Callable[[Consumer], Any]) -> Any:
    """A question only confluent-kafka's consumer answers (offsets for a time,
    the group's committed offsets), asked once at start."""
    consumer = Consumer(config)
    try:
        return question(consumer)
    finally:
        consumer.close()
