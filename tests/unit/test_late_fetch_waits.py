"""A broker that is slow to give late records back is waited for, with a log
line while it lasts: never a stand-in record after a deadline."""

from __future__ import annotations

import logging

from confluent_kafka import TopicPartition

import connectors.late_fetch as late_fetch
from connectors.late_fetch import LateRecordFetcher
from engine.records import LateRecord


class Msg:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def error(self):
        return None

    def offset(self) -> int:
        return self._offset

    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return 0

    def key(self) -> bytes:
        return b"k%d" % self._offset

    def value(self) -> bytes:
        return b"v%d" % self._offset

    def headers(self):
        return None

    def timestamp(self):
        return (1, 1_000)


class SlowConsumer:
    """Answers nothing for `silent` polls (each one second of a fake clock), then serves from its position."""

    def __init__(self, clock: list[float], silent: int) -> None:
        self.clock, self.silent, self.position = clock, silent, 0

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.position = partitions[0].offset

    def consume(self, n: int, timeout: float) -> list[Msg]:
        self.clock[0] += 1.0
        if self.silent:
            self.silent -= 1
            return []
        batch = [Msg(o) for o in range(self.position, self.position + min(n, 5))]
        self.position += len(batch)
        return batch


def test_a_slow_broker_is_waited_for_and_the_real_record_written(monkeypatch, caplog) -> None:
    clock = [0.0]
    monkeypatch.setattr(late_fetch.time, "monotonic", lambda: clock[0])
    fetcher = LateRecordFetcher("unused:9092", "in-late")
    fetcher._consumer = SlowConsumer(clock, silent=300)  # five minutes without an answer
    with caplog.at_level(logging.WARNING, logger="connectors.late_fetch"):
        out = fetcher.fetch([LateRecord("in", 0, 7, 0, 60_000, 70_000)])
    assert [(m.key, m.value) for m in out] == [(b"k7", b"v7")]
    assert "x-late-missing" not in dict(out[0].headers)
    waits = [r.getMessage() for r in caplog.records if "still reading back" in r.getMessage()]
    assert 25 <= len(waits) <= 31  # one line every 10 s of the wait, not one per poll
