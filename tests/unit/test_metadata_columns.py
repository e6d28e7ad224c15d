"""Columns read from Kafka metadata rather than the record value: parsed per
column over a whole read, with what cannot be read named; event time from a
header in the partition stage; the planner refusing what no record has."""

from __future__ import annotations

import struct

import orjson
import polars as pl
import pytest

from config.pipeline import LOCAL_KAFKA, EngineSettings, Pipeline, QueryProcessor, SchemaField, StreamSpec, TimeAttribute
from config.sql import SqlError, compile_query
from engine.metadata import MetadataColumns
from engine.partition_stage import PartitionStage
from engine.records import PartitionId, RawRecord, RecordList
from engine.serde import make_decoder

FIELDS = (
    SchemaField("device", "string"),
    SchemaField("sent", "long", "timestamp-millis", metadata_from="header.sent"),
    SchemaField("label", "string", optional=True, metadata_from="header.label"),
    SchemaField("stamp", "long", "timestamp-millis", metadata_from="timestamp"),
    SchemaField("pos", "long", metadata_from="offset"),
    SchemaField("part", "int", metadata_from="partition"),
    SchemaField("seen", "long", "timestamp-millis", proctime=True),
)
STREAM = StreamSpec(name="s", topic="s", protocol="kafka", servers=LOCAL_KAFKA, fields=FIELDS, value_format="json",
                    time_attribute=TimeAttribute("sent", 1_000, "header", header="sent"), modes=frozenset({"read", "write"}))
SOURCE = PartitionId("s", 3)
SINK = StreamSpec(name="out", topic="out", protocol="kafka", servers=LOCAL_KAFKA, value_format="json", modes=frozenset({"write"}))


def read(headers: list[list | None], stamps: list[int | None] | None = None, first: int = 10) -> RecordList:
    return RecordList([RawRecord("s", 3, first + i, None, orjson.dumps({"device": f"d{i}"}), h, (stamps or [None] * len(headers))[i])
                       for i, h in enumerate(headers)])


def test_every_kind_of_metadata_column_for_a_reads_good_rows():
    batch = read([[("sent", b"1645020000123"), ("label", b"a")],
                  [("sent", struct.pack(">q", 1645020000456)), ("label", b"x"), ("label", "é".encode())],  # the last one counts
                  [("sent", b"-5")],
                  None], stamps=[7, -1, 9, 11])
    columns = MetadataColumns.of(STREAM, [f.name for f in FIELDS], clock=lambda: 1_700_000_000.25)
    frame, rejected = columns.add(pl.DataFrame({"device": ["d0", "d1", "d2", "d3"]}), batch, [0, 1, 2, 3], SOURCE)
    assert rejected == []
    assert frame.to_dicts() == [
        {"device": "d0", "sent": 1645020000123, "label": "a", "stamp": 7, "pos": 10, "part": 3, "seen": 1_700_000_000_250},
        {"device": "d1", "sent": 1645020000456, "label": "é", "stamp": None, "pos": 11, "part": 3, "seen": 1_700_000_000_250},
        {"device": "d2", "sent": -5, "label": None, "stamp": 9, "pos": 12, "part": 3, "seen": 1_700_000_000_250},
        {"device": "d3", "sent": None, "label": None, "stamp": 11, "pos": 13, "part": 3, "seen": 1_700_000_000_250},
    ]


@pytest.mark.parametrize("value", [b"soon", b"12345678901234567890", b"\x00\x01\x02", "ü".encode() * 3, b""])
def test_a_header_that_is_no_integer_is_named(value):
    columns = MetadataColumns.of(STREAM, ["sent"])
    frame, rejected = columns.add(pl.DataFrame({"device": ["a", "b"]}), read([[("sent", b"5")], [("sent", value)]]), [0, 1], SOURCE)
    assert [pos for pos, _ in rejected] == [1]
    assert "Kafka header 'sent'" in rejected[0][1] and rejected[0][1].startswith("wrong-type")
    assert frame["sent"].to_list()[0] == 5


def test_only_the_good_rows_of_a_read_get_their_columns():
    columns = MetadataColumns.of(STREAM, ["pos", "stamp"])
    batch = RecordList([RawRecord("s", 3, o, None, b"{}", None, o * 10) for o in (4, 7, 8)])  # offsets with a gap
    frame, _ = columns.add(pl.DataFrame({"device": ["x", "y"]}), batch, [0, 2], SOURCE)
    assert frame.select("pos", "stamp").rows() == [(4, 40), (8, 80)]


def test_event_time_from_a_header_in_the_partition_stage():
    sql = ("INSERT INTO `out` SELECT window_start, window_end, device, COUNT(*) AS n "
           "FROM TABLE(TUMBLE(TABLE `s`, DESCRIPTOR(sent), INTERVAL '10' SECONDS)) GROUP BY window_start, window_end, device")
    pipeline = Pipeline("t.yaml", {"s": STREAM, "out": SINK}, (), ())
    plan = compile_query(QueryProcessor("q", sql, sql), pipeline)
    stage = PartitionStage(plan, STREAM, EngineSettings(max_future_skew_ms=None), make_decoder(STREAM, ["device"]), SOURCE,
                           (SOURCE,), "s-dlq")
    out = stage.process(read([[("sent", b"20000")], None, [("sent", struct.pack(">q", 12_000))], [("sent", b"x1")]]))
    assert [(d.value, dict(d.headers)["x-dlq-reason"].split(b":")[0]) for d in out.dead] == [
        (b'{"device":"d1"}', b"missing-field"), (b'{"device":"d3"}', b"wrong-type")]
    assert b"sent (the Kafka header 'sent')" in dict(out.dead[0].headers)["x-dlq-reason"]
    assert sorted(out.batch.groups) == [(10_000, 20_000, ("d2",)), (20_000, 30_000, ("d0",))]
    assert out.batch.watermark_ms == 19_000 and out.batch.dead_lettered == 2


@pytest.mark.parametrize("field, message", [
    (SchemaField("epoch", "int", metadata_from="leader-epoch"), "reads the Kafka metadata 'leader-epoch'"),
    (SchemaField("rate", "double", metadata_from="header.rate"), "reads the Kafka header 'header.rate' as double"),
])
def test_metadata_no_record_has_is_refused_where_the_query_reads_it(field, message):
    stream = StreamSpec(name="m", topic="m", protocol="kafka", servers=LOCAL_KAFKA, value_format="json",
                        fields=(SchemaField("device", "string"), field), modes=frozenset({"read", "write"}))
    pipeline = Pipeline("t.yaml", {"m": stream, "out": SINK}, (), ())
    sql = f"INSERT INTO `out` SELECT device, {field.name} FROM `m`"
    with pytest.raises(SqlError, match=message) as error:
        compile_query(QueryProcessor("q", sql, sql), pipeline)
    assert error.value.column == sql.index(f", {field.name}") + 3  # 1-based, at the column's name
    fine = "INSERT INTO `out` SELECT device FROM `m`"
    compile_query(QueryProcessor("q", fine, fine), pipeline)  # the column is not read: nothing to refuse
