"""The two halves of a wired join, without Bytewax or a broker: each input's
handler over a whole read (metadata columns, filter, dead letters, origins),
and the join step's runner (encoded results, identities, tombstones, the
TTL's clock that stands still while the step does not run, the restore)."""

from __future__ import annotations

import pickle

import orjson

from config.pipeline import LOCAL_KAFKA, Pipeline, QueryProcessor, SchemaField, StreamSpec
from config.sql import compile_query
from engine.join import LEFT, RIGHT
from engine.join_stage import JoinRunner, JoinSideHandler, SideRows, origin_parts
from engine.query_handlers import ResultEncoder
from engine.records import PartitionId, RawRecord, RecordList
from engine.serde import make_decoder


def stream(name: str, *fields: SchemaField, **extra) -> StreamSpec:
    return StreamSpec(name=name, topic=name, protocol="kafka", servers=LOCAL_KAFKA, fields=fields, value_format="json",
                      modes=frozenset({"read", "write"}), **extra)


PLAYS = stream("plays", SchemaField("song", "long"), SchemaField("ms", "long", optional=True),
               SchemaField("at", "long", "timestamp-millis", metadata_from="timestamp"))
SONGS = stream("songs", SchemaField("song", "long"), SchemaField("name", "string"))
OUT = stream("out", SchemaField("song", "long"), SchemaField("name", "string"), SchemaField("at", "long", "timestamp-millis"),
             key_fields=("song",))
UPSERT = stream("latest", SchemaField("song", "long"), SchemaField("name", "string", optional=True),
                SchemaField("at", "long", "timestamp-millis"), connector="upsert-kafka", primary_key=("song",),
                key_fields=("song",))
PIPELINE = Pipeline("t.yaml", {s.name: s for s in (PLAYS, SONGS, OUT, UPSERT)}, (), ())
INNER = ("INSERT INTO `out` SELECT p.song, s.name, p.at FROM (SELECT * FROM `plays` WHERE ms >= 100) AS p "
         "JOIN `songs` AS s ON p.song = s.song")
LEFT_JOIN = "INSERT INTO `latest` SELECT p.song, s.name, p.at FROM `plays` AS p LEFT JOIN `songs` AS s ON p.song = s.song"


def runner_for(sql: str, ttl: int | None = None, state=None) -> JoinRunner:
    plan = compile_query(QueryProcessor("q", sql, sql, state_ttl_ms=ttl), PIPELINE)
    return JoinRunner(plan, ResultEncoder(plan, PIPELINE.stream(plan.sink)), state)


def handler(sql: str, side: int, partition: int = 0) -> JoinSideHandler:
    plan = compile_query(QueryProcessor("q", sql, sql), PIPELINE)
    spec = (plan.join.left, plan.join.right)[side]
    source = PIPELINE.stream(spec.stream)
    columns = [c for c in spec.columns_needed if source.field_named(c).in_record]
    return JoinSideHandler(side, spec, source, make_decoder(source, columns), f"{source.topic}-dlq", PartitionId(source.topic, partition))


def records(topic: str, values: list[dict | bytes], first_offset: int = 0, stamps: list[int] | None = None) -> RecordList:
    return RecordList([RawRecord(topic, 2, first_offset + i, None, v if isinstance(v, bytes) else orjson.dumps(v), None,
                                 (stamps or [None] * len(values))[i]) for i, v in enumerate(values)])


def test_a_read_is_decoded_filtered_and_kept_with_its_metadata_columns_and_origins():
    h = handler(INNER, LEFT, partition=2)
    read = records("plays", [{"song": 1, "ms": 150}, {"song": 2, "ms": 50}, b"{broken", {"song": 3, "ms": None}],
                   first_offset=40, stamps=[1_000, 2_000, 3_000, 4_000])
    (out,) = h.handle(read, False, True)
    assert h.spec.columns == ("song", "at")  # the event time is a Kafka-timestamp column, in the state
    assert [row[:-1] for row in out.rows.rows] == [(1, 1_000)]
    assert origin_parts(out.rows.rows[0][-1]) == (2, 40)
    assert (out.rows.records_in, out.rows.filtered, out.rows.dead_lettered) == (4, 2, 1)
    assert [dict(d.headers)["x-source-offset"] for d in out.dead] == [b"42"]
    assert h.handle(RecordList(()), False, True) == []  # nothing read: nothing for the join step


def test_results_are_encoded_with_an_identity_of_their_pair():
    runner = runner_for(INNER)
    assert runner.on_rows(SideRows(LEFT, [(1, 1_000, 7), (1, 2_000, 8)], 2, 0, 0), 0.0) == []
    results = runner.on_rows(SideRows(RIGHT, [(1, "Song", 1 << 40 | 3)], 1, 0, 0), 10.0)
    assert [orjson.loads(r.out.value) for r in results] == [
        {"song": 1, "name": "Song", "at": "1970-01-01 00:00:01"}, {"song": 1, "name": "Song", "at": "1970-01-01 00:00:02"}]
    assert [r.out.key for r in results] == [b'{"song":1}'] * 2
    assert [r.identity for r in results] == [("join", "+I", (-1, 7), (0, 3)), ("join", "+I", (-1, 8), (0, 3))]
    assert runner.state.counters == {"records_in": 3, "filtered": 0, "counted": 3, "dead_lettered": 0, "results_out": 2}


def test_a_left_joins_retraction_is_a_tombstone_for_its_primary_key():
    runner = runner_for(LEFT_JOIN)
    (padded,) = runner.on_rows(SideRows(LEFT, [(5, 1_000, 1)], 1, 0, 0), 0.0)
    assert (padded.out.key, orjson.loads(padded.out.value)) == (b'{"song":5}', {"song": 5, "name": None, "at": "1970-01-01 00:00:01"})
    tombstone, pair = runner.on_rows(SideRows(RIGHT, [(5, "Five", 2)], 1, 0, 0), 1.0)
    assert (tombstone.out.key, tombstone.out.value) == (b'{"song":5}', None)
    assert tombstone.identity[:2] == ("join", "-D") and pair.identity[:2] == ("join", "+I")
    assert orjson.loads(pair.out.value)["name"] == "Five"


def test_the_ttl_clock_stands_still_while_the_step_does_not_run():
    runner = runner_for(INNER, ttl=1_000)
    runner.on_rows(SideRows(RIGHT, [(1, "Song", 1)], 1, 0, 0), 0.0)
    for now in range(200, 900, 200):
        runner.on_tick(float(now))
    # a restart after an hour: the song has lived 800 ms of the step's time, not an hour
    restored = runner_for(INNER, ttl=1_000, state=pickle.loads(pickle.dumps(runner.snapshot())))
    assert restored.on_tick(3_600_000.0) == 0 and restored.rows_kept() == (0, 1)
    assert len(restored.on_rows(SideRows(LEFT, [(1, 5, 9)], 1, 0, 0), 3_600_150.0)) == 1
    assert restored.on_tick(3_600_350.0) == 1  # the song, at 1150 ms of the step's time
    assert restored.on_tick(3_601_000.0) == 0 and restored.on_tick(3_601_200.0) == 1  # the play, written at 950 ms
    assert restored.rows_kept() == (0, 0) and restored.expired == 2
