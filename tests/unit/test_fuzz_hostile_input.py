"""Hostile input through the real decoders and the event-time engine (the
partition stage and the window engine, driven as the dataflow drives them,
no broker): random bytes, Avro framing gone wrong, deep and huge JSON,
invalid UTF-8 in values, keys and header names, NaN and infinities, event
times at and past every limit, records at and above Kafka's size limit.

Whatever comes in, nothing raises, and every record ends exactly once as
filtered, counted, late or dead-lettered (the engine's accounting identity);
every dead letter says why and can be written to Kafka; every result can be
encoded."""

from __future__ import annotations

import io
import json
import math

import fastavro
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.pipeline import EngineSettings, SchemaField, StreamSpec, TimeAttribute
from config.sql.parser import parse_query
from config.sql.plan import Aggregate, OutputColumn, Plan, WindowSpec
from config.sql.predicate import compile_predicate
from connectors.kafka_sink import fit, record_size, writable_headers
from connectors.late_fetch import late_headers
from engine.partition_stage import MAX_EVENT_MS, MIN_EVENT_MS, PartitionStage
from engine.records import PartitionId, RawRecord, RecordList
from engine.serde import encode_json_key, encode_json_value, make_decoder
from engine.window_engine import WindowEngine, result_row

BASE = 1_645_020_000_000
NOW = BASE + 3_600_000
DELAY = 3_000
KAFKA_LIMIT = 1_000_000
SCHEMA_ID = 7

AVRO_SCHEMA = {"type": "record", "name": "Event", "fields": [
    {"name": "code", "type": "string"},
    {"name": "type", "type": "string"},
    {"name": "v", "type": ["null", "long"]},
    {"name": "x", "type": ["null", "double"]},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
]}
FIELDS = {f.name: f for f in (SchemaField("code", "string"), SchemaField("type", "string"),
                              SchemaField("v", "long", optional=True), SchemaField("x", "double", optional=True),
                              SchemaField("ts", "long", "timestamp-millis"))}


def stream(fmt: str) -> StreamSpec:
    return StreamSpec(name="events", topic="events", protocol="kafka", servers="unused:9092", value_format=fmt,
                      avro_schema_json=json.dumps(AVRO_SCHEMA), time_attribute=TimeAttribute("ts", DELAY),
                      options={"value.avro-confluent.schema-id": str(SCHEMA_ID)} if fmt != "json" else {})


def where(sql: str):
    query = f"INSERT INTO `out` SELECT code FROM `events` WHERE {sql}"
    return compile_predicate(parse_query(query).statement.expression.args["where"].this, FIELDS, query, "events")


AGGREGATES = (Aggregate("COUNT", None, "n", "long"), Aggregate("SUM", "v", "total", "long"),
              Aggregate("SUM", "x", "xs", "double"), Aggregate("AVG", "x", "mean", "double"),
              Aggregate("MIN", "x", "low", "double"), Aggregate("MAX", "x", "high", "double"))
PLAN = Plan(
    source="events", sink="out", predicate=where("type = 'ERROR' AND (x IS NULL OR x <> 1.5)"),
    window=WindowSpec("TUMBLE", "ts", 60_000), group_by=("code",), aggregates=AGGREGATES,
    projection=(OutputColumn("window_start", "window_start", "window_start", "long_timestamp-millis"),
                OutputColumn("code", "group", "code", "string"),
                *(OutputColumn(a.alias, "aggregate", a.alias, a.result_type) for a in AGGREGATES)),
)
SETTINGS = EngineSettings(idle_timeout_ms=10**12, max_future_skew_ms=600_000)

# --- values ---------------------------------------------------------------------------------

event_times = st.one_of(
    st.integers(BASE - 120_000, BASE + 600_000),
    st.sampled_from([-(2**63), 2**63 - 1, MIN_EVENT_MS, MIN_EVENT_MS - 1, MAX_EVENT_MS, MAX_EVENT_MS + 1, 0, -1,
                     NOW + 600_001, 2**62]),
)
floats = st.one_of(st.none(), st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1.5, 1e308, 5e-324]))
codes = st.one_of(st.sampled_from(["A", "B", "C\u00e9", ""]), st.text(max_size=300))
records = st.fixed_dictionaries({
    "code": codes, "type": st.sampled_from(["ERROR", "ERROR", "INFO"]), "ts": event_times,
    "v": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), "x": floats,
})
NESTED = [b"[" * n + b"]" * n for n in (10, 126, 127, 128, 1_000, 50_000)]
HUGE = b"d" * (KAFKA_LIMIT + 10)


def as_json(record: dict, extra: bytes | None = None) -> bytes:
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    text = orjson.dumps(clean)
    return text[:-1] + b', "extra": ' + extra + b"}" if extra is not None else text


def broken_utf8(value: bytes, at: int) -> bytes:
    return value[:at % (len(value) + 1)] + b"\xff\xc3" + value[at % (len(value) + 1):]


json_values = st.one_of(
    records.map(as_json),
    st.builds(as_json, records, st.sampled_from(NESTED)),
    st.builds(as_json, records, st.just(b'"' + HUGE + b'"')),
    st.builds(broken_utf8, records.map(as_json), st.integers(0, 200)),
    st.binary(max_size=64),
    st.sampled_from([None, b"", b"null", b"{}", b"[]", b'{"ts": NaN}', b'{"ts": 1e999}', b"\xef\xbb\xbf{}",
                     b'{"code":"A","type":"ERROR","ts":1.0}']),
)


def avro_body(record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(AVRO_SCHEMA), record)
    return buf.getvalue()


def avro_record(record: dict) -> dict:
    return {**record, "ts": max(-(2**63), min(record["ts"], 2**63 - 1))}


def framed(record: dict, schema_id: int = SCHEMA_ID, magic: bytes = b"\x00") -> bytes:
    return magic + schema_id.to_bytes(4, "big") + avro_body(avro_record(record))


avro_values = st.one_of(
    records.map(framed),
    records.map(framed),
    st.builds(framed, records, st.integers(0, 2**32 - 1)),  # an id no one registered
    st.builds(framed, records, st.just(SCHEMA_ID), st.sampled_from([b"\x01", b"\xff", b"{"])),  # bad magic byte
    st.builds(lambda r, cut: framed(r)[:cut], records, st.integers(0, 12)),  # short header, truncated body
    st.builds(lambda r, tail: framed(r) + tail, records, st.binary(min_size=1, max_size=8)),  # trailing bytes
    st.builds(lambda body: b"\x00" + SCHEMA_ID.to_bytes(4, "big") + body, st.binary(max_size=40)),
    st.builds(lambda r: framed({**r, "code": HUGE.decode()}), records),  # at and over the size limit
    st.binary(max_size=64),
    st.just(None),
)
keys = st.one_of(st.none(), st.binary(max_size=16), st.just(b"\xff\xfe"), st.just(b"k" * 300))
header_names = st.sampled_from(["trace", "", "\ufffd", "h\udcff", "x-dlq-reason", "n" * 300])
headers = st.one_of(st.none(), st.lists(st.tuples(header_names, st.one_of(st.none(), st.binary(max_size=8))), max_size=3))


@st.composite
def inputs(draw, values):
    partitions = draw(st.integers(1, 2))
    items = draw(st.lists(st.tuples(st.integers(0, partitions - 1), values, keys, headers), max_size=25))
    cuts = draw(st.lists(st.integers(0, 25), max_size=5))
    return partitions, items, cuts


# --- driving the engine --------------------------------------------------------------------


def run(fmt: str, partitions: int, items: list, cuts: list[int]) -> None:
    spec = stream(fmt)
    names = tuple(PartitionId("events", p) for p in range(partitions))
    stages = [PartitionStage(PLAN, spec, SETTINGS, make_decoder(spec), names[p], names, "events-dlq",
                             clock=lambda: NOW / 1000) for p in range(partitions)]
    engine = WindowEngine(PLAN, SETTINGS, DELAY)
    batches: list[tuple[int, list[RawRecord]]] = []
    for offset, (p, value, key, hdrs) in enumerate(items):
        record = RawRecord("events", p, offset, key, value, hdrs, BASE)
        if batches and batches[-1][0] == p and offset not in cuts:
            batches[-1][1].append(record)
        else:
            batches.append((p, [record]))
    results, late, dead = [], [], []
    for p, batch in batches:
        read = stages[p].process(RecordList(batch))
        dead += read.dead
        fired = engine.on_batch(read.batch, NOW)
        results += fired.results
        late += fired.late
    results += engine.on_end().results

    counters = engine.state.counters
    assert counters["records_in"] == len(items)
    assert counters["filtered"] + counters["counted"] + counters["late"] + counters["dead_lettered"] == len(items)
    assert counters["dead_lettered"] == len(dead) and counters["late"] == len(late)
    assert engine.open_window_count == 0
    for letter in dead:
        reason = dict(letter.headers)["x-dlq-reason"].decode()
        assert reason.split(":")[0] in {"truncated", "bad-magic-byte", "unknown-schema-id", "avro-decode-error",
                                        "json-decode-error", "not-an-object", "missing-field", "wrong-type",
                                        "null-value", "future-timestamp", "timestamp-out-of-range"}, reason
        written = fit(letter, KAFKA_LIMIT)
        assert written is not None and record_size(written) <= KAFKA_LIMIT
        for name, _ in writable_headers(written.headers):
            name.encode()
    for item in late:
        late_headers(item)
        assert MIN_EVENT_MS <= item.window_start_ms <= MAX_EVENT_MS
    for result in results:
        assert MIN_EVENT_MS <= result.start_ms <= MAX_EVENT_MS
        row = result_row(PLAN, result)
        encode_json_value(PLAN.projection, row)
        encode_json_key(["code"], row)
        assert -(2**63) <= row["total"] < 2**63 if row["total"] is not None else True


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(inputs(json_values))
def test_hostile_json_input_is_accounted_for_and_nothing_raises(case) -> None:
    run("json", *case)


@FUZZ
@given(inputs(avro_values))
def test_hostile_avro_input_is_accounted_for_and_nothing_raises(case) -> None:
    run("avro-confluent", *case)


def test_the_fuzzed_kinds_of_record_are_each_dead_lettered_for_their_reason() -> None:
    """The strategies above do reach what they aim at: one record of each kind, by hand."""
    good = {"code": "A", "type": "ERROR", "ts": BASE, "v": 1, "x": 2.0}
    spec = stream("avro-confluent")
    source = PartitionId("events", 0)
    stage = PartitionStage(PLAN, spec, SETTINGS, make_decoder(spec), source, (source,), "dlq", clock=lambda: NOW / 1000)
    values = [framed(good), framed(good, 8), framed(good, magic=b"\x01"), framed(good)[:3], framed(good)[:-1],
              framed(good) + b"\x00", framed({**good, "ts": 2**63 - 1}), framed({**good, "x": math.nan})]
    read = stage.process(RecordList([RawRecord("events", 0, i, None, v, None, None) for i, v in enumerate(values)]))
    batch, dead = read.batch, read.dead
    reasons = [dict(d.headers)["x-dlq-reason"].decode().split(":")[0] for d in dead]
    assert reasons[:3] == ["unknown-schema-id", "bad-magic-byte", "truncated"]
    assert reasons[3] in ("truncated", "avro-decode-error") and reasons[4] == "avro-decode-error"
    assert reasons[5] == "timestamp-out-of-range"
    # the good record and the NaN one pass the decoder and the filter (NaN <> 1.5 is true)
    assert batch.records_in - batch.dead_lettered - batch.filtered == 2
