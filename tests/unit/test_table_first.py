"""A join's table is read before its events: the gate's rule, and two real
`KafkaBatchPartition`s over in-memory logs (the events wait until the table
has reached the end of its log, then both read as usual)."""

from __future__ import annotations

from dataflows.wiring import table_side
from config import load_pipeline
from config.sql import compile_query
from connectors.kafka_readers import ConfluentReader
from connectors.kafka_source import KafkaBatchPartition
from engine.table_first import TableFirst
from tests.support.pipeline import REPO
from tests.unit.test_alignment import LogConsumer

SHAPES = REPO / "tests" / "support" / "sr_shapes"


def test_the_events_wait_until_every_table_partition_has_loaded() -> None:
    gate = TableFirst("users", "clicks", max_wait_s=30)
    gate.loading(0)
    gate.loading(1)
    assert not gate.may_read(now_s=0.0)
    gate.loaded(0)
    assert not gate.may_read(now_s=1.0)
    gate.loaded(1)
    assert gate.may_read(now_s=2.0)
    gate.loading(2)  # once open, it stays open: a table partition that falls behind live holds nobody back
    assert gate.may_read(now_s=3.0)


def test_a_table_that_never_loads_holds_the_events_at_most_max_wait(caplog) -> None:
    gate = TableFirst("users", "clicks", max_wait_s=5)
    gate.loading(0)
    assert not gate.may_read(now_s=100.0)  # the wait counts from the first ask
    assert not gate.may_read(now_s=104.9)
    assert gate.may_read(now_s=105.0)
    assert "clicks: reading it although users has not reached the end of its log after 5 s" in caplog.text


def test_no_table_partition_in_this_process_holds_nobody() -> None:
    assert TableFirst("users", "clicks").may_read(now_s=0.0)


class Rows:
    """A handler that records which log each batch came from, in the order they were read."""

    def __init__(self, name: str, seen: list[str]):
        self.name, self.seen = name, seen

    def handle(self, batch, end_of_input, caught_up):
        self.seen.extend([self.name] * len(batch))
        return []

    def snapshot(self):
        return None


def test_real_partitions_read_the_table_to_its_end_before_any_event() -> None:
    gate = TableFirst("users", "clicks")
    seen: list[str] = []
    users, clicks = list(range(250)), list(range(400))

    def partition(name: str, times: list[int], **gating) -> KafkaBatchPartition:
        return KafkaBatchPartition(ConfluentReader.around(LogConsumer(times), name, 0), name, 0, 0, len(times),
                                   Rows(name, seen), batch_size=100, poll_timeout_s=0, tick_s=0, **gating)

    events = partition("clicks", clicks, waits_for=gate)  # built first, and asked first, each round
    table = partition("users", users, loads_first=gate)
    live = [events, table]
    while live:
        for part in list(live):
            try:
                part.next_batch()
            except StopIteration:
                live.remove(part)
    assert seen == ["users"] * len(users) + ["clicks"] * len(clicks)


def test_the_table_of_a_join_is_the_input_without_an_event_time() -> None:
    for name, processor, table in (("member-clicks.yaml", "gold-member-views", "member-stream"),
                                   ("top-tracks.yaml", "track-plays-join", "tracks-stream")):
        pipeline = load_pipeline(SHAPES / name, env={})
        spec = compile_query(next(p for p in pipeline.query_processors if p.name == processor), pipeline).join
        side = table_side(pipeline, spec, upstream={})
        assert side is not None and (spec.left, spec.right)[side].stream == table
        assert table_side(pipeline, spec, upstream={table: object()}) is None  # handed over: not read from Kafka
