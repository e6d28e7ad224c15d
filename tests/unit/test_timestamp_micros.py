"""A `timestamp-micros` column (a TIMESTAMP(6)) comes out of every decoder in
microseconds, Avro and JSON alike, and the output prints its microseconds;
only the event time is turned into epoch milliseconds, by the engine."""

from __future__ import annotations

import io
import json

import fastavro
import orjson
import pytest

from config.pipeline import EngineSettings, StreamSpec, TimeAttribute
from config.sql.plan import OutputColumn
from engine.partition_stage import PartitionStage
from engine.records import PartitionId, RawRecord, RecordList
from engine.serde import encode_json_key, encode_json_value, event_time_divisor, make_decoder
from engine.serde.json_decoder import NativeJsonDecoder
from tests.unit.test_window_engine import NOW, TUMBLE, make_plan

MOMENT_US = 1_645_021_080_123_456  # 2022-02-16 14:18:00.123456 UTC


def schema(event_time: str) -> dict:
    return {"type": "record", "name": "Sample", "fields": [
        {"name": "code", "type": "string"},
        {"name": "type", "type": "string"},
        {"name": "v", "type": ["null", "long"]},
        {"name": "ts", "type": {"type": "long", "logicalType": event_time}},
        {"name": "seen", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
    ]}


def stream(fmt: str, event_time: str = "timestamp-millis") -> StreamSpec:
    return StreamSpec(name="events", topic="events", protocol="kafka", servers="", value_format=fmt,
                      avro_schema_json=json.dumps(schema(event_time)), time_attribute=TimeAttribute("ts", 3_000))


def record(ts: int, seen: int | None) -> dict:
    return {"code": "A", "type": "ERROR", "v": 1, "ts": ts, "seen": seen}


def avro_values(records: list[dict], event_time: str = "timestamp-millis") -> list[bytes]:
    """Confluent-framed Avro, written with plain fastavro."""
    parsed = fastavro.parse_schema(schema(event_time))
    out = []
    for r in records:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, r)
        out.append(b"\x00\x00\x00\x00\x07" + buf.getvalue())
    return out


RECORDS = [record(1_645_021_080_123, MOMENT_US), record(1_645_021_081_000, None), record(1_645_021_082_000, -1)]
EXPECTED = [MOMENT_US, None, -1]


def test_json_paths_keep_microseconds() -> None:
    decoder = make_decoder(stream("json"), ["ts", "seen"])
    values = [orjson.dumps(r) for r in RECORDS]
    assert decoder.decode(values).columns["seen"] == EXPECTED
    assert decoder._decode_clean(values).columns["seen"] == EXPECTED
    assert decoder._decode_each(values).columns["seen"] == EXPECTED
    if NativeJsonDecoder is not None:
        assert decoder._decode_native(values).columns["seen"] == EXPECTED


def test_avro_paths_keep_microseconds() -> None:
    decoder = make_decoder(stream("avro-confluent"), ["ts", "seen"])
    values = avro_values(RECORDS)
    assert decoder.decode(values).columns["seen"] == EXPECTED  # polars, the whole batch at once
    broken = [*values, b"\x00\x00\x00\x00\x07\x02"]  # a truncated record: the batch is split, fastavro decodes
    decoded = decoder.decode(broken)
    assert decoded.columns["seen"] == EXPECTED and [pos for pos, _ in decoded.errors] == [3]


@pytest.mark.parametrize("fmt", ["json", "avro-confluent"])
def test_a_microsecond_event_time_is_windowed_in_milliseconds(fmt: str) -> None:
    spec = stream(fmt, "timestamp-micros")
    assert event_time_divisor(spec) == 1000
    start_ms = 1_645_021_080_000
    records = [record(start_ms * 1000 + 59_999_999, None), record(start_ms * 1000 + 60_000_000, None)]
    values = avro_values(records, "timestamp-micros") if fmt != "json" else [orjson.dumps(r) for r in records]
    settings = EngineSettings(idle_timeout_ms=10**12, max_future_skew_ms=None)
    source = PartitionId("events", 0)
    stage = PartitionStage(make_plan(TUMBLE), spec, settings, make_decoder(spec), source, (source,), "dlq",
                           clock=lambda: NOW / 1000)
    read = stage.process(RecordList([RawRecord("events", 0, i, None, v, None, None) for i, v in enumerate(values)]))
    batch = read.batch
    assert read.dead == []
    assert sorted(start for start, _, _ in batch.groups) == [start_ms, start_ms + 60_000]
    assert batch.max_event_ms == start_ms + 60_000


def test_the_output_prints_a_timestamp_in_its_column_precision() -> None:
    columns = (OutputColumn("seen", "column", "seen", "long_timestamp-micros"),
               OutputColumn("at", "column", "at", "long_timestamp-millis"))
    row = {"seen": MOMENT_US, "at": 1_645_021_080_120}
    assert orjson.loads(encode_json_value(columns, row)) == {"seen": "2022-02-16 14:18:00.123456",
                                                             "at": "2022-02-16 14:18:00.12"}
    assert orjson.loads(encode_json_value(columns, {"seen": MOMENT_US - 123_456 + 10, "at": None})) == {
        "seen": "2022-02-16 14:18:00.00001", "at": None}
    assert encode_json_key(["seen"], row, {"seen": "long_timestamp-micros"}) == b'{"seen":"2022-02-16 14:18:00.123456"}'
    assert encode_json_key(["at"], row, {"at"}) == b'{"at":"2022-02-16 14:18:00.12"}'


def test_a_timestamp_no_calendar_holds_is_written_as_its_number() -> None:
    columns = (OutputColumn("seen", "column", "seen", "long_timestamp-micros"),)
    assert encode_json_value(columns, {"seen": -(2**63)}) == b'{"seen":-9223372036854775808}'
