"""A handler that cannot take a batch now (its schema registry is away) makes
the reader rewind to the batch's first record and try again later: nothing
is skipped, nothing is counted twice."""

from __future__ import annotations

from datetime import datetime, timezone

from confluent_kafka import TopicPartition

from connectors.kafka_readers import ConfluentReader
from connectors.kafka_source import KafkaBatchPartition
from engine.records import RetryLater


class Msg:
    def __init__(self, offset: int):
        self._offset = offset

    def error(self):
        return None

    def offset(self) -> int:
        return self._offset


class ReplayingConsumer:
    """Serves offsets from its position; `seek` moves the position back."""

    def __init__(self, end: int):
        self.position = 0
        self.end = end
        self.seeks: list[int] = []

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.position = partitions[0].offset

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append(tp.offset)
        self.position = tp.offset

    def consume(self, n: int, timeout: float) -> list[Msg]:
        batch = [Msg(o) for o in range(self.position, min(self.position + n, self.end))]
        self.position += len(batch)
        return batch


class FlakyHandler:
    def __init__(self, failures: int):
        self.failures = failures
        self.seen: list[list[int]] = []

    def handle(self, batch, end_of_input, caught_up):
        if len(batch) and self.failures:
            self.failures -= 1
            raise RetryLater("schema registry unavailable")
        self.seen.append([m.offset() for m in batch.messages] if len(batch) else [])
        return [len(batch)] if len(batch) else []

    def snapshot(self):
        return None


def test_retry_later_rewinds_and_waits() -> None:
    consumer = ReplayingConsumer(end=10)
    handler = FlakyHandler(failures=2)
    part = KafkaBatchPartition(ConfluentReader.around(consumer, "t", 0), "t", 0, 0, 10, handler, batch_size=4, poll_timeout_s=0, tick_s=0)
    assert part.next_batch() == []
    assert consumer.seeks == [0] and part.snapshot()[0] == 0
    assert part.next_awake() is not None and part.next_awake() > datetime.now(timezone.utc)
    assert part.next_batch() == []
    assert consumer.seeks == [0, 0]
    outputs = []
    while True:
        try:
            outputs += part.next_batch()
        except StopIteration:
            break
    assert [o for batch in handler.seen for o in batch] == list(range(10))
    assert sum(outputs) == 10 and part.snapshot()[0] == 10
