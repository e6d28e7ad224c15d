"""`handed_over`: a Stream that a query of the same dataflow writes, read
by another query as if it were read from Kafka.

    upstream results -> (one step: the records as the upstream wrote them,
    in its order, through the reading query's own per-partition handler)
    -> the handler's outputs, as a Kafka source would give them

The reading query decodes the bytes with its own Stream's schema and format
and judges them by its own watermark, exactly as a reader of the topic
would; the handed-over Stream is one partition (partition -1, offsets
counted from 0 in the order the rows were handed over). Handing over
instead of reading the topic back means a bounded run's downstream query
sees everything its upstream wrote before it ends, and a restart from the
recovery store resumes both at the same snapshot, so nothing is counted
twice (the topic itself may hold a re-emitted row twice, byte-identical).
Late records and dead letters of such an input are written from the
records themselves (there is no offset to read them back from).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Generic, TypeVar

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from connectors.kafka_source import BatchHandler
from connectors.late_fetch import late_headers
from engine.records import KafkaOut, LateRecord, PartitionBatch, PartitionId, QueryResult, RawRecord, RecordList
from runtime.stop import stop_requested

X = TypeVar("X")

HANDED_OVER_PARTITION = -1


def handed_over_partition(topic: str) -> PartitionId:
    return PartitionId(topic, HANDED_OVER_PARTITION)


class HandoverLogic(StatefulBatchLogic[QueryResult, list[X], tuple[int, Any]], Generic[X]):
    """The reading query's handler for the one partition of a handed-over Stream."""

    def __init__(self, handler: BatchHandler[X], topic: str, next_offset: int, tick_s: float):
        self.handler = handler
        self.topic = topic
        self.next_offset = next_offset
        self.tick = timedelta(seconds=tick_s)

    def _records(self, results: list[QueryResult]) -> list[RawRecord]:
        first = self.next_offset
        self.next_offset += len(results)
        return [RawRecord(self.topic, HANDED_OVER_PARTITION, first + i, r.out.key, r.out.value, list(r.out.headers), None)
                for i, r in enumerate(results)]

    def on_batch(self, values: list[QueryResult]) -> tuple[list[list[X]], bool]:
        records = self._records(values)
        return [[_carrying(item, records) for item in self.handler.handle(RecordList(records), False, True)]], self.RETAIN

    def on_notify(self) -> tuple[list[list[X]], bool]:
        # Every tick, as a Kafka partition with nothing to read: its reader is heard from (it may turn idle).
        return [list(self.handler.handle(RecordList(()), False, True))], self.RETAIN

    def on_eof(self) -> tuple[list[list[X]], bool]:
        # The writer's input ended: the end of this input too, unless the process is stopping.
        return [list(self.handler.handle(RecordList(()), stop_requested() is None, True))], self.RETAIN

    def notify_at(self) -> datetime:
        return datetime.now(timezone.utc) + self.tick

    def snapshot(self) -> tuple[int, Any]:
        return (self.next_offset, self.handler.snapshot())


def _carrying(item: Any, records: list[RawRecord]) -> Any:
    """A windowed handler's output carries its records, for the late output."""
    batch = getattr(item, "batch", None)
    if isinstance(batch, PartitionBatch) and batch.records_in:
        return replace(item, batch=replace(batch, records=records))
    return item


@operator
def handed_over(
    step_id: str,
    up: Stream[QueryResult],
    make_handler: Callable[[PartitionId, tuple[PartitionId, ...], Any], BatchHandler[X]],
    topic: str,
    tick_s: float = 0.2,
) -> Stream[X]:
    """What `make_handler`'s handler makes of the rows of `up`, per batch of them."""
    pid = handed_over_partition(topic)

    def build(state: tuple[int, Any] | None) -> HandoverLogic[X]:
        offset, handler_state = state if state is not None else (0, None)
        return HandoverLogic(make_handler(pid, (pid,), handler_state), topic, offset, tick_s)

    keyed = op.key_on("key", up, lambda _result: "all")
    made = op.key_rm("unkey", op.stateful_batch("read", keyed, build))
    return op.flat_map("items", made, lambda items: items)


def late_of_handed_over(late: LateRecord, late_topic: str) -> KafkaOut:
    """A late record of a handed-over input, as the late topic holds any other."""
    record = late.record
    assert record is not None, "a handed-over input's late records carry themselves"
    return KafkaOut(late_topic, record.key, record.value, [*(record.headers or ()), *late_headers(late)])
