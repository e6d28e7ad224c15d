"""Event-time alignment of reads: the rule, and a replay through real
`KafkaBatchPartition`s in which one partition is ten times sparser in event
time than the other."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from confluent_kafka import TopicPartition

from engine.alignment import EventTimeAlignment
from connectors.kafka_readers import ConfluentReader
from connectors.kafka_source import KafkaBatchPartition

DRIFT = 60_000


def test_a_partition_too_far_ahead_of_a_backlog_pauses_and_resumes() -> None:
    group = EventTimeAlignment(DRIFT)
    group.report(0, 100_000, True)
    group.report(1, 100_000 + DRIFT, True)
    assert group.may_read(1)  # exactly the drift: still allowed
    group.report(1, 100_001 + DRIFT, True)
    assert not group.may_read(1) and group.may_read(0)
    group.report(0, 100_001, True)
    assert group.may_read(1)


def test_caught_up_finished_and_new_partitions_hold_nobody_back() -> None:
    group = EventTimeAlignment(DRIFT)
    group.report(0, 0, False)  # caught up with its log (live traffic)
    group.report(1, 10 * DRIFT, True)
    assert group.may_read(1)
    group.join(2)  # no watermark yet
    assert group.may_read(1) and group.may_read(2)
    group.report(3, 0, True)
    assert not group.may_read(1)
    group.leave(3)  # finished
    assert group.may_read(1)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(0, 7), st.tuples(st.none() | st.integers(0, 10**7), st.booleans()), min_size=1))
def test_some_partition_with_a_backlog_may_always_read(reports) -> None:
    group = EventTimeAlignment(DRIFT)
    for partition, (watermark, backlog) in reports.items():
        group.report(partition, watermark, backlog)
    behind = [p for p, (_, backlog) in reports.items() if backlog]
    assert not behind or any(group.may_read(p) for p in behind)


class Msg:
    def __init__(self, offset: int, ts: int):
        self._offset, self.ts = offset, ts

    def error(self):
        return None

    def offset(self) -> int:
        return self._offset


class LogConsumer:
    """One partition's log of event times, served in order."""

    def __init__(self, times: list[int]):
        self.times, self.position, self.consumed = times, 0, 0

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.position = partitions[0].offset

    def consume(self, n: int, timeout: float) -> list[Msg]:
        batch = [Msg(o, self.times[o]) for o in range(self.position, min(self.position + n, len(self.times)))]
        self.position += len(batch)
        self.consumed += 1
        return batch


class WatermarkHandler:
    def __init__(self):
        self.max_ts: int | None = None

    def handle(self, batch, end_of_input, caught_up):
        for m in batch.messages:
            self.max_ts = m.ts if self.max_ts is None else max(self.max_ts, m.ts)
        return [len(batch)] if len(batch) else []

    def snapshot(self):
        return None

    def watermark(self):
        return None if self.max_ts is None else self.max_ts - 3000


def replay(aligned: bool) -> tuple[int, int]:
    """Round-robin reads of a dense and a sparse partition over 30 minutes of
    event time: the largest gap between their watermarks, and records read."""
    minutes = 30
    dense = [i * 100 for i in range(minutes * 600)]  # 10 events per second
    sparse = [i * 1000 for i in range(minutes * 60)]  # 1 event per second
    group = EventTimeAlignment(DRIFT) if aligned else None
    parts = []
    for p, times in enumerate((dense, sparse)):
        handler = WatermarkHandler()
        parts.append((KafkaBatchPartition(ConfluentReader.around(LogConsumer(times), "t", p), "t", p, 0, len(times), handler, batch_size=100,
                                          poll_timeout_s=0, tick_s=0, alignment=group), handler))
    largest_gap, read, live = 0, 0, set(range(len(parts)))
    while live:
        for p in sorted(live):
            try:
                read += sum(parts[p][0].next_batch())
            except StopIteration:
                live.discard(p)
        marks = [h.watermark() for part, h in parts if not part.finished and h.watermark() is not None]
        if len(marks) == 2:
            largest_gap = max(largest_gap, max(marks) - min(marks))
    return largest_gap, read


def test_aligned_replay_keeps_partitions_within_the_drift_and_reads_everything() -> None:
    gap, read = replay(aligned=True)
    assert read == 30 * 600 + 30 * 60
    assert gap <= DRIFT + 100_000  # the drift plus one read of the sparse partition (100 records = 100 s)
    unaligned_gap, unaligned_read = replay(aligned=False)
    assert unaligned_read == read
    assert unaligned_gap > 10 * DRIFT  # what alignment prevents: the sparse partition runs far ahead
