"""The values that travel between the pipeline's steps.

They are plain, picklable objects: a batch crosses worker and process
boundaries, and the recovery store pickles operator state.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Protocol

Headers = list[tuple[str, bytes]]

NO_WATERMARK = -(2**62)
"""A watermark below every event time: nothing has been read yet."""
END_OF_TIME = 2**62
"""The watermark of an input that has ended: every window fires."""


class RetryLater(Exception):
    """A batch cannot be processed now (a dependency such as the schema
    registry is away); the reader rewinds to the batch's first record and
    tries again later."""


class PartitionId(NamedTuple):
    """One input partition; printed as `topic/partition` (Bytewax's part key, metric labels)."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}"

    @classmethod
    def parse(cls, text: str) -> "PartitionId":
        topic, partition = text.rsplit("/", 1)
        return cls(topic, int(partition))


class RawRecord(NamedTuple):
    """A Kafka record as read, kept unchanged for the late and dead-letter outputs.

    A named tuple: cheap to build for every row that might turn out late."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None
    timestamp_ms: int | None


class RecordBatch(Protocol):
    """The records of one read of one partition, in offset order.

    The Kafka readers (`connectors.kafka_readers`) implement it over their
    own buffers, so that a decoder can take the values in place and a record
    object is made only for the few that need one (a dead letter)."""

    @property
    def values(self) -> Sequence[bytes | None]: ...

    @property
    def first_offset(self) -> int: ...

    @property
    def offsets(self) -> Sequence[int] | None:
        """Every record's offset, or None when they are contiguous from `first_offset`."""
        ...

    def __len__(self) -> int: ...

    def record(self, i: int) -> RawRecord: ...

    def records(self) -> list[RawRecord]: ...

    def timestamps(self) -> list[int]:
        """Kafka record timestamps (epoch ms; 0 where the record has none)."""
        ...

    def header_values(self, name: str) -> list[bytes | None]:
        """Each record's value of the header `name` (the last one when it is
        repeated, as a map of headers would keep it); None where it has none."""
        ...


@dataclass(frozen=True)
class RecordList:
    """A `RecordBatch` of plain records (tests, benchmarks, records held in memory)."""

    items: Sequence[RawRecord]

    @property
    def values(self) -> list[bytes | None]:
        return [r.value for r in self.items]

    @property
    def first_offset(self) -> int:
        return self.items[0].offset if self.items else 0

    @property
    def offsets(self) -> list[int]:
        return [r.offset for r in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def record(self, i: int) -> RawRecord:
        return self.items[i]

    def records(self) -> list[RawRecord]:
        return list(self.items)

    def timestamps(self) -> list[int]:
        return [r.timestamp_ms or 0 for r in self.items]

    def header_values(self, name: str) -> list[bytes | None]:
        return [header_value(r.headers, name) for r in self.items]


def header_value(headers: Headers | None, name: str) -> bytes | None:
    """The value of the last header called `name`, None when there is none."""
    found = None
    for key, value in headers or ():
        if key == name:
            found = value
    return found


@dataclass(frozen=True)
class KafkaOut:
    """A record to produce: the sink writes it to `topic` as is."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)


@dataclass
class GroupRows:
    """The records of one batch that fall in one (window, group key).

    `local_watermarks[i]` is the partition's watermark just before row i was
    read (non-decreasing); `values[column]` the aggregate inputs;
    `late_offsets` the Kafka offsets of the rows whose last window this is
    (only those can be routed to the late output from here), at the row
    positions `late_positions` (ascending), or at every row when that is None
    (one window per row: no per-row bookkeeping at all).
    """

    local_watermarks: list[int] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)
    late_offsets: list[int] = field(default_factory=list)
    late_positions: list[int] | None = field(default_factory=list)

    def late_after(self, split: int) -> list[tuple[int, int]]:
        """(row position, offset) of the candidate rows at or after `split`."""
        if self.late_positions is None:
            return list(zip(range(split, len(self.late_offsets)), self.late_offsets[split:]))
        k = bisect_left(self.late_positions, split)
        return list(zip(self.late_positions[k:], self.late_offsets[k:]))


@dataclass
class PartitionBatch:
    """What one input partition contributes per read: grouped rows, its new
    watermark, and its bookkeeping. Dead letters travel separately."""

    source: PartitionId
    partitions: tuple[PartitionId, ...]  # every partition of the input, so the engine knows whom to wait for
    records_in: int
    filtered: int
    dead_lettered: int
    watermark_ms: int | None  # W_p after this batch (None: no valid record yet)
    max_event_ms: int | None
    groups: dict[tuple[int, int, tuple], GroupRows]
    end_of_input: bool = False
    caught_up: bool = False  # the reader had reached the end of the partition's log: it may be judged idle
    records: Sequence[RawRecord] | None = None  # the records themselves, when they cannot be read back by offset (handed over)

    def record_at(self, offset: int) -> RawRecord | None:
        """The record at `offset`, when the batch carries its records."""
        if not self.records:
            return None
        return self.records[offset - self.records[0].offset]


@dataclass(frozen=True)
class WindowResult:
    """A fired window's final value for one group key."""

    start_ms: int
    end_ms: int
    key: tuple
    aggregates: dict[str, Any]


@dataclass(frozen=True)
class LateRecord:
    """A record whose window had fired when it was read, by its Kafka
    coordinates (`connectors.late_fetch` reads it back unchanged)."""

    topic: str
    partition: int
    offset: int
    window_start_ms: int
    window_end_ms: int
    watermark_ms: int
    record: RawRecord | None = None  # the record itself, when it cannot be read back (a handed-over input)


@dataclass(frozen=True)
class Fired:
    """What one call of the window engine gives: fired results (in firing
    order) and the late records of the batch it took."""

    results: list[WindowResult] = field(default_factory=list)
    late: list[LateRecord] = field(default_factory=list)


@dataclass(frozen=True)
class QueryResult:
    """A row a query emits, as its output Stream holds it (`out`), with what
    a downstream stage of the same dataflow needs without decoding it again:
    the window it belongs to, and `identity`, which is the same for every
    re-emission of this row and different from every other row's (the
    window and the whole group key, or the input record's coordinates)."""

    out: KafkaOut
    window: tuple[int, int] | None
    identity: tuple


@dataclass(frozen=True)
class WindowedOutput:
    """What one read of a windowed query's partition gives: its grouped rows
    for the window engine, and its dead letters."""

    batch: PartitionBatch
    dead: list[KafkaOut]


@dataclass(frozen=True)
class RowsOutput:
    """What one read of a stateless query's partition gives: result rows and dead letters."""

    results: list[QueryResult]
    dead: list[KafkaOut]


MESSAGE_ID_NAMESPACE = uuid.UUID("6f2b8f0e-3c1a-5d7e-9b4a-2f61c0d8e915")


def stable_message_id(*parts: object) -> str:
    """The same id for the same parts, in every process and run (UUID v5)."""
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, "\x1f".join(str(p) for p in parts)))


@dataclass(frozen=True)
class AmqpMessage:
    """A message to publish to a RabbitMQ sink's exchange."""

    routing_key: str
    body: bytes
    message_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    timestamp_s: int | None = None  # AMQP timestamps are whole seconds
