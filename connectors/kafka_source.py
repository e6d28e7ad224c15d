"""A partitioned Kafka source for Bytewax that reads whole batches.

Compared to `bytewax.connectors.kafka.KafkaSource` it adds what the pipeline
needs: a bounded wait for the broker instead of a hang, the Streaming
Runtime's `scan.startup.mode`, a bounded mode that stops at the offsets that
were the end of each partition at start, and a per-partition processing hook
(`on_batch`) that runs beside the reader and snapshots its state together
with the offset, so the partition's watermark and its position can never
disagree after a restart; and, for handlers that track a watermark, reads
aligned in event time (`engine.alignment`), so a replay's state stays a
few windows.

One item per read: whatever `on_batch` makes of a batch of records.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Generic, Iterable, Mapping, Protocol, TypeVar, cast

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import Consumer, KafkaError, TopicPartition

from engine.alignment import EventTimeAlignment
from connectors.kafka_admin import partition_counts, wait_for_kafka
from connectors.kafka_readers import ConfluentReader, NativeReader, open_reader

log = logging.getLogger(__name__)

X = TypeVar("X")


class RetryLater(Exception):
    """A handler cannot process this batch now (a dependency is away); the
    reader rewinds to the batch's first record and tries again later."""


class BatchHandler(Protocol[X]):
    """Per-partition processing: records in, one item out (or None). The
    records are a read's, as `connectors.kafka_readers` describes them."""

    def handle(self, records: Any, end_of_input: bool) -> Iterable[X]: ...

    def snapshot(self) -> Any: ...


class WatermarkedHandler(BatchHandler[X], Protocol[X]):
    """A handler that tracks its partition's watermark, so reads can be aligned in event time."""

    def watermark(self) -> int | None: ...


@dataclass(frozen=True)
class StartupMode:
    """Where a partition starts when the recovery store has no position for it."""

    mode: str = "earliest-offset"  # earliest-offset | latest-offset | group-offsets | timestamp
    timestamp_ms: int | None = None


class KafkaBatchPartition(StatefulSourcePartition[X, tuple[int, Any]], Generic[X]):
    """Reads one partition; hands every batch to its handler."""

    def __init__(self, reader: ConfluentReader | NativeReader, topic: str, partition: int, start: int, end: int | None,
                 handler: BatchHandler[X], batch_size: int, poll_timeout_s: float, tick_s: float,
                 alignment: EventTimeAlignment | None = None):
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
        self.last_emit = 0.0
        self.last_retry_log = 0.0
        self.awake: datetime | None = None
        self.alignment = alignment
        if alignment is not None:
            alignment.join(partition)
        reader.assign(start)

    def next_batch(self) -> list[X]:
        if self.finished:
            raise StopIteration()
        if self.end is not None and self.next_offset >= self.end:
            self._finish()
            return list(self.handler.handle([], True))
        if self.alignment is not None and not self.alignment.may_read(self.partition):
            self.awake = datetime.now(timezone.utc) + self.idle_poll  # ahead in event time: let the others catch up
            return []
        read = self.reader.read(self.batch_size, self.poll_timeout_s)
        # Nothing queued: let the worker run other steps and come back soon,
        # instead of blocking it in librdkafka (latency of every partition).
        self.awake = None if read.count or read.errors else datetime.now(timezone.utc) + self.idle_poll
        for code, _, text in read.errors:
            if code != KafkaError._PARTITION_EOF:
                log.warning("Kafka %s/%s: %s (retrying)", self.topic, self.partition, text)
        next_offset = read.next_offset if read.next_offset is not None else self.next_offset
        at_end = self.end is not None and next_offset >= self.end
        now = time.monotonic()
        if not read.count and not at_end and now - self.last_emit < self.tick_s:
            return []
        try:
            out = list(self.handler.handle(read.records, at_end))
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

    def _has_backlog(self, just_read: int) -> bool:
        """Whether records are waiting beyond what was just read (caught-up
        partitions never hold a replay back)."""
        if self.end is not None:
            return self.next_offset < self.end
        high = self.reader.cached_high_watermark()
        return high > self.next_offset if high >= 0 else just_read >= self.batch_size

    def _finish(self) -> None:
        self.finished = True
        if self.alignment is not None:
            self.alignment.leave(self.partition)

    def next_awake(self) -> datetime | None:
        return self.awake

    def snapshot(self) -> tuple[int, Any]:
        return (self.next_offset, self.handler.snapshot())

    def close(self) -> None:
        if self.alignment is not None:
            self.alignment.leave(self.partition)
        self.reader.close()


class KafkaBatchSource(FixedPartitionedSource[X, tuple[int, Any]], Generic[X]):
    """Every partition of one topic, each read by the worker that owns it.

    `make_handler(topic, partition, all_partitions, handler_state)` builds the
    per-partition processing; `bounded` stops each partition at the end
    offset it had when the partition was opened.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        make_handler: Callable[[str, int, tuple[str, ...], Any], BatchHandler[X]],
        *,
        startup: StartupMode = StartupMode(),
        bounded: bool = False,
        consumer_config: Mapping[str, str] | None = None,
        batch_size: int = 20000,
        poll_timeout_s: float = 0.0,
        tick_s: float = 0.2,
        connect_timeout_s: float = 30.0,
        max_watermark_drift_ms: int | None = None,
    ):
        self.bootstrap = bootstrap
        self.topic = topic
        self.make_handler = make_handler
        self.startup = startup
        self.bounded = bounded
        self.consumer_config = dict(consumer_config or {})
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.tick_s = tick_s
        self.connect_timeout_s = connect_timeout_s
        # handlers must then be WatermarkedHandlers; None: no alignment
        self.alignment = None if max_watermark_drift_ms is None else EventTimeAlignment(max_watermark_drift_ms)
        self._partition_count: int | None = None

    def _partitions(self) -> int:
        """The topic's partition count, asked once per process."""
        if self._partition_count is None:
            client = wait_for_kafka(self.bootstrap, self.connect_timeout_s, self.consumer_config)
            counts = partition_counts(client, [self.topic])
            if self.topic not in counts:
                raise RuntimeError(f"Kafka topic {self.topic!r} does not exist at {self.bootstrap}")
            self._partition_count = counts[self.topic]
        return self._partition_count

    def list_parts(self) -> list[str]:
        return [f"{self.topic}/{p}" for p in range(self._partitions())]

    def build_part(self, step_id: str, for_part: str, resume_state: tuple[int, Any] | None) -> KafkaBatchPartition[X]:
        _, partition = for_part.rsplit("/", 1)
        part = int(partition)
        config = {
            "group.id": "iot-monitoring",  # offsets live in the recovery store; nothing is committed
            "enable.auto.commit": "false",
            "enable.partition.eof": "false",
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
        reader = open_reader(config, self.topic, part)
        low, high = reader.watermarks(self.connect_timeout_s)
        if resume_state is not None:
            start, handler_state = resume_state
        else:
            start, handler_state = self._start_offset(config, part, low, high), None
        all_parts = tuple(f"{self.topic}/{p}" for p in range(self._partitions()))
        handler = self.make_handler(self.topic, part, all_parts, handler_state)
        end = high if self.bounded else None
        return KafkaBatchPartition(reader, self.topic, part, start, end, handler, self.batch_size, self.poll_timeout_s,
                                   self.tick_s, self.alignment)

    def _start_offset(self, config: dict[str, str], part: int, low: int, high: int) -> int:
        mode = self.startup.mode
        if mode == "latest-offset":
            return high
        if mode == "timestamp" and self.startup.timestamp_ms is not None:
            found = _ask(config, lambda c: c.offsets_for_times([TopicPartition(self.topic, part, self.startup.timestamp_ms)], timeout=10))
            return found[0].offset if found[0].offset >= 0 else high
        if mode == "group-offsets":
            committed = _ask(config, lambda c: c.committed([TopicPartition(self.topic, part)], timeout=10))
            if committed and committed[0].offset >= 0:
                return committed[0].offset
        return low


def _ask(config: dict[str, str], question: Callable[[Consumer], Any]) -> Any:
    """A question only confluent-kafka's consumer answers (offsets for a time,
    the group's committed offsets), asked once at start."""
    consumer = Consumer(config)
    try:
        return question(consumer)
    finally:
        consumer.close()

