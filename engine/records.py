"""The values that travel between the pipeline's steps.

They are plain, picklable objects: a batch crosses worker and process
boundaries, and the recovery store pickles operator state.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, NamedTuple

Headers = list[tuple[str, bytes]]


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

    source: str  # "topic/partition"
    partitions: tuple[str, ...]  # every partition of the input, so the engine knows whom to wait for
    records_in: int
    filtered: int
    dead_lettered: int
    watermark_ms: int | None  # W_p after this batch (None: no valid record yet)
    max_event_ms: int | None
    groups: dict[tuple[int, int, tuple], GroupRows]
    end_of_input: bool = False
    topic: str = ""
    partition: int = 0


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
