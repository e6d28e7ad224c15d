"""Event times outside years 0000..9999 (valid longs all the same) are dead
letters: they must neither wrap the partition's watermark around 64 bits nor
open a window that never fires."""

from __future__ import annotations

import orjson
import pytest

from config.pipeline import EngineSettings, SchemaField, StreamSpec, TimeAttribute
from engine.partition_stage import PartitionStage
from engine.records import PartitionId, RawRecord, RecordList
from engine.serde import make_decoder
from engine.window_engine import WindowEngine
from tests.unit.test_window_engine import BASE, DELAY, NOW, STREAM, TUMBLE, make_plan

LOWEST = -62_167_219_200_000  # 0000-01-01 00:00:00.000 UTC
HIGHEST = 253_402_300_799_999  # 9999-12-31 23:59:59.999 UTC
KAFKA_TIME = StreamSpec(
    name="events", topic="events", protocol="kafka", servers="unused:9092", value_format="json",
    fields=(SchemaField("code", "string"), SchemaField("type", "string"), SchemaField("v", "long", optional=True)),
    time_attribute=TimeAttribute("ts", DELAY, source="kafka-timestamp"),
)


def ev(ts: int) -> bytes:
    return orjson.dumps({"code": "A", "type": "ERROR", "v": 1, "ts": ts})


def run(stamps: list[int], stream: StreamSpec = STREAM, skew_ms: int | None = None):
    """One batch through a partition stage and the engine; (results, late offsets, dead letters, engine)."""
    settings = EngineSettings(idle_timeout_ms=10**12, max_future_skew_ms=skew_ms)
    plan = make_plan(TUMBLE)
    source = PartitionId("events", 0)
    stage = PartitionStage(plan, stream, settings, make_decoder(stream), source, (source,), "dlq",
                           clock=lambda: NOW / 1000)
    engine = WindowEngine(plan, settings, DELAY)
    if stream.time_attribute.source == "kafka-timestamp":
        records = [RawRecord("events", 0, i, None, ev(0), None, ts) for i, ts in enumerate(stamps)]
    else:
        records = [RawRecord("events", 0, i, None, ev(ts), None, None) for i, ts in enumerate(stamps)]
    read = stage.process(RecordList(records))
    fired = engine.on_batch(read.batch, NOW)
    results, late, dead = fired.results + engine.on_end().results, fired.late, read.dead
    counters = engine.state.counters
    assert counters["filtered"] + counters["counted"] + counters["late"] + counters["dead_lettered"] == len(stamps)
    return results, [lr.offset for lr in late], dead, engine


EXTREMES = [-(2**63), 2**63 - 1, LOWEST - 1, HIGHEST + 1, -(2**62), 2**62]


@pytest.mark.parametrize("stream", [STREAM, KAFKA_TIME], ids=["field", "kafka-timestamp"])
@pytest.mark.parametrize("extreme", EXTREMES)
def test_an_extreme_event_time_is_a_dead_letter_and_the_rest_of_the_batch_is_unharmed(extreme: int, stream) -> None:
    results, late, dead, engine = run([BASE + 1_000, extreme, BASE + 2_000, BASE + 61_000], stream)
    assert late == []
    assert [(r.start_ms, r.aggregates["n"]) for r in results] == [(BASE, 2), (BASE + 60_000, 1)]
    assert [dict(d.headers)["x-dlq-reason"].decode() for d in dead] == [
        f"timestamp-out-of-range: {extreme} is not an epoch-millisecond time in years 0000..9999"]
    assert engine.open_window_count == 0


def test_the_first_and_last_millisecond_of_years_0000_to_9999_are_event_times() -> None:
    results, late, dead, engine = run([LOWEST, HIGHEST])
    assert dead == [] and late == []
    assert [r.start_ms for r in results] == [LOWEST - LOWEST % 60_000, HIGHEST - HIGHEST % 60_000]
    assert engine.open_window_count == 0


def test_the_clock_skew_guard_still_applies_within_the_range() -> None:
    _, _, dead, _ = run([BASE, HIGHEST], skew_ms=600_000)
    assert [dict(d.headers)["x-dlq-reason"].split(b":")[0] for d in dead] == [b"future-timestamp"]
