"""Batch decoders and encoders: round trips, corrupt input, output format."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import fastavro
import orjson
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from hypothesis import given, settings
from hypothesis import strategies as st

from config.pipeline import StreamSpec, TimeAttribute, frozen_map
from engine.serde import (
    encode_avro,
    encode_confluent_avro,
    encode_json_key,
    encode_json_value,
    format_timestamp_ms,
    make_decoder,
)
from engine.serde.batch import DecodedBatch, concat_batches
from tests.support.pipeline import REPO
from tests.support.seed_schema import SEED_SCHEMA

SEED_JSON = json.dumps(SEED_SCHEMA)
FIELDS = [f["name"] for f in SEED_SCHEMA["fields"]]
SCHEMA_ID = 7
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stream(fmt: str, **overrides) -> StreamSpec:
    spec = dict(
        name="iot-monitoring-stream",
        topic="iot-monitoring",
        protocol="kafka",
        servers="127.0.0.1:9092",
        value_format=fmt,
        avro_schema_json=SEED_JSON,
        time_attribute=TimeAttribute(column="ts", watermark_delay_ms=3000),
    )
    spec.update(overrides)
    return StreamSpec(**spec)


def seed_records(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "error_code": f"C{rng.randint(1, 14):03d}_CODE",
            "ts": 1645020042399 + rng.randint(-5000, 5000),
            "type": rng.choice(["ERROR", "DEBUG", "INFO", "WARN"]),
            "application": rng.choice(["Hatity", "Mat Lam Tam", "Zontrax", "Zaam-Dox"]),
            "version": f"{rng.randint(0, 9)}.{rng.randint(0, 19)}.{rng.randint(0, 19)} ",
            "description": "a fact " * rng.randint(0, 30) + "\u00e9\u4e2d",
        }
        for _ in range(n)
    ]


def framed(records: list[dict], schema=SEED_SCHEMA, schema_id: int = SCHEMA_ID) -> list[bytes]:
    """Confluent-framed Avro written with plain fastavro, independent of the encoder under test."""
    parsed = fastavro.parse_schema(schema)
    out = []
    for r in records:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, r)
        out.append(b"\x00" + schema_id.to_bytes(4, "big") + buf.getvalue())
    return out


def reasons(batch) -> dict[int, str]:
    return dict(batch.errors)


def good_rows(batch) -> dict[int, dict]:
    return dict(zip(batch.index, batch.rows()))


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["avro-confluent", "avro", "json"])
def test_round_trip_of_the_seed_schema(fmt):
    records = seed_records(300)
    if fmt == "avro-confluent":
        values = encode_confluent_avro(SEED_JSON, SCHEMA_ID, records)
    elif fmt == "avro":
        values = encode_avro(SEED_JSON, records)
    else:
        values = [orjson.dumps(r) for r in records]
    batch = make_decoder(stream(fmt)).decode(values)
    assert batch.errors == []
    assert list(batch.index) == list(range(300))
    assert batch.rows() == records
    assert batch.frame.height == 300 and batch.frame.columns == FIELDS


def test_encoder_output_is_the_confluent_wire_format():
    records = seed_records(20)
    assert encode_confluent_avro(SEED_JSON, SCHEMA_ID, records) == framed(records)


@pytest.mark.parametrize("fmt", ["avro-confluent", "json"])
def test_projection_returns_only_the_requested_columns(fmt):
    records = seed_records(50)
    values = framed(records) if fmt != "json" else [orjson.dumps(r) for r in records]
    batch = make_decoder(stream(fmt), ["ts", "type", "error_code"]).decode(values)
    assert list(batch.columns) == ["ts", "type", "error_code"]
    assert batch.columns["ts"] == [r["ts"] for r in records]
    assert batch.columns["type"] == [r["type"] for r in records]


def test_event_time_written_as_datetime_comes_out_as_epoch_millis():
    moments = [datetime(2022, 2, 16, 14, 18, 0, 123000, tzinfo=UTC) + timedelta(seconds=s) for s in range(5)]
    records = [dict(seed_records(1)[0], ts=m) for m in moments]
    batch = make_decoder(stream("avro-confluent"), ["ts"]).decode(framed(records))
    expected = [(m - EPOCH) // timedelta(milliseconds=1) for m in moments]
    assert batch.columns["ts"] == expected
    assert all(type(v) is int for v in batch.columns["ts"])


def test_frame_and_columns_agree():
    records = seed_records(40)
    batch = make_decoder(stream("avro-confluent")).decode(framed(records))
    assert batch.frame.to_dict(as_series=False) == batch.columns
    json_batch = make_decoder(stream("json")).decode([orjson.dumps(r) for r in records])
    assert json_batch.frame.to_dict(as_series=False) == json_batch.columns


def test_empty_batch():
    for fmt in ("avro-confluent", "avro", "json"):
        batch = make_decoder(stream(fmt), ["ts"]).decode([])
        assert (list(batch.index), batch.errors, batch.columns) == ([], [], {"ts": []})


def test_unknown_column_is_refused_when_the_decoder_is_made():
    with pytest.raises(ValueError, match="no record field 'severity'"):
        make_decoder(stream("avro-confluent"), ["ts", "severity"])


# --- corrupt Avro input ---------------------------------------------------------------------

OTHER_SCHEMA = {
    "type": "record",
    "name": "Reading",
    "fields": [{"name": "sensor", "type": "long"}, {"name": "celsius", "type": "double"}, {"name": "ok", "type": "boolean"}],
}


def corruptions(good: list[bytes], rng: random.Random) -> dict[str, bytes | None]:
    """One bad value of each kind, built from good values."""
    header = b"\x00" + SCHEMA_ID.to_bytes(4, "big")
    other = framed([{"sensor": 123456789, "celsius": 21.5, "ok": True}], OTHER_SCHEMA)[0]
    longer = framed([dict(seed_records(1, seed=99)[0], description="x" * 300)])[0]
    return {
        "truncated body": good[0][:-7],
        "truncated header": good[1][:3],
        "wrong magic byte": b"\x01" + good[2][1:],
        "wrong schema id": b"\x00" + (SCHEMA_ID + 1).to_bytes(4, "big") + good[3][5:],
        "random bytes": bytes(rng.randrange(256) for _ in range(60)),
        "framed random bytes": header + bytes(rng.randrange(256) for _ in range(60)),
        "another schema": other,
        "trailing bytes": good[4] + b"\x02\x04",
        "a body that swallows the next record": longer[:-200],
        "no value": None,
    }


EXPECTED_CODES = {
    "truncated body": {"truncated"},
    "truncated header": {"truncated"},
    "wrong magic byte": {"bad-magic-byte"},
    "wrong schema id": {"unknown-schema-id"},
    "random bytes": {"bad-magic-byte"},
    "framed random bytes": {"truncated", "avro-decode-error"},
    "another schema": {"truncated", "avro-decode-error"},
    "trailing bytes": {"avro-decode-error"},
    "a body that swallows the next record": {"truncated", "avro-decode-error"},
    "no value": {"null-value"},
}


def confluent_stream_accepting_only_our_id() -> StreamSpec:
    return stream("avro-confluent", options=frozen_map({"value.avro-confluent.schema-id": str(SCHEMA_ID)}))


@pytest.mark.parametrize("kind", list(EXPECTED_CODES))
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_each_corruption_is_an_error_at_its_index_and_the_rest_decode(kind, where):
    records = seed_records(40, seed=3)
    values: list[bytes | None] = framed(records)
    bad = corruptions(framed(seed_records(5, seed=4)), random.Random(5))[kind]
    at = {"first": 0, "middle": 17, "last": 40}[where]
    values.insert(at, bad)
    batch = make_decoder(confluent_stream_accepting_only_our_id()).decode(values)
    assert list(reasons(batch)) == [at]
    assert reasons(batch)[at].split(":")[0] in EXPECTED_CODES[kind]
    expected_good = {i: r for i, r in zip([i for i in range(41) if i != at], records)}
    assert good_rows(batch) == expected_good


def test_all_corruptions_in_one_batch():
    records = seed_records(100, seed=6)
    values: list[bytes | None] = framed(records)
    bad = corruptions(framed(seed_records(5, seed=7)), random.Random(8))
    positions = {}
    for k, (kind, value) in enumerate(bad.items()):
        at = 3 + k * 9
        values.insert(at, value)
        positions[at] = kind
    batch = make_decoder(confluent_stream_accepting_only_our_id()).decode(values)
    got = reasons(batch)
    assert sorted(got) == sorted(positions)
    for at, kind in positions.items():
        assert got[at].split(":")[0] in EXPECTED_CODES[kind], (kind, got[at])
    good_positions = [i for i in range(len(values)) if i not in positions]
    assert list(batch.index) == good_positions
    assert batch.rows() == records


def avro_long(n: int) -> bytes:
    """Avro's zigzag varint, written out here to build hostile bodies by hand."""
    z, out = (n << 1) ^ (n >> 63), bytearray()
    while z > 0x7F:
        out.append(z & 0x7F | 0x80)
        z >>= 7
    return bytes(out + bytes([z]))


@pytest.mark.parametrize("extra", [0, 16, 40])
def test_body_that_swallows_the_next_record_does_not_hide_it(extra):
    """A last string whose length claims the bytes after it: decoding a plain
    concatenation would read the next record into it and shift every later row."""
    records = [dict(r, description="abc") for r in seed_records(10, seed=9)]
    values = framed(records)
    body = values[4][5:]
    assert body.endswith(avro_long(3) + b"abc")
    claimed = 3 + len(values[5]) - 5 + extra
    values[4] = values[4][: -len(avro_long(3) + b"abc")] + avro_long(claimed) + b"abc"
    batch = make_decoder(stream("avro-confluent")).decode(values)
    assert [i for i, _ in batch.errors] == [4]
    assert batch.errors[0][1].startswith("truncated")
    assert good_rows(batch) == {i: r for i, r in enumerate(records) if i != 4}


NUMBERS_SCHEMA = {
    "type": "record",
    "name": "Numbers",
    "fields": [{"name": "ts", "type": "long"}, {"name": "a", "type": "long"}, {"name": "b", "type": "long"}],
}


@pytest.mark.parametrize("seed", range(20))
def test_misaligned_numbers_are_caught(seed):
    """With only varints there is no UTF-8 to trip over: a short record makes
    a plain concatenated read shift silently, and only the alignment proof catches it."""
    rng = random.Random(seed)
    records = [{"ts": rng.randint(0, 2**40), "a": rng.randint(-300, 300), "b": rng.randint(0, 2**20)} for _ in range(30)]
    values = framed(records, NUMBERS_SCHEMA)
    bad = sorted(rng.sample(range(30), 3))
    for i in bad:
        values[i] = values[i][:-1] if rng.random() < 0.5 else values[i] + avro_long(rng.randint(0, 99))
    spec = stream("avro-confluent", avro_schema_json=json.dumps(NUMBERS_SCHEMA))
    batch = make_decoder(spec).decode(values)
    assert sorted(reasons(batch)) == bad
    assert good_rows(batch) == {i: r for i, r in enumerate(records) if i not in bad}


def _without_logical_types(schema: dict) -> dict:
    """Timestamps as the raw longs they are on the wire: any long is a valid
    Avro value, even one no datetime can hold (the event-time rules judge it)."""
    fields = [dict(f, type=f["type"]["type"]) if isinstance(f["type"], dict) else f for f in schema["fields"]]
    return dict(schema, fields=fields)


def _oracle(value: bytes | None) -> dict | None:
    """Per-record reference decode with plain fastavro: the record, or None if bad."""
    if value is None or len(value) < 5 or value[0] != 0 or int.from_bytes(value[1:5], "big") != SCHEMA_ID:
        return None
    buf = io.BytesIO(value[5:])
    try:
        record = fastavro.schemaless_reader(buf, fastavro.parse_schema(_without_logical_types(SEED_SCHEMA)), None)
    except Exception:
        return None
    if buf.tell() != len(value) - 5:
        return None
    return record


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 30),
    mutations=st.lists(
        st.tuples(st.integers(0, 29), st.sampled_from(["cut", "flip", "insert", "replace"]), st.integers(0, 10**6)),
        max_size=4,
    ),
)
def test_batch_decode_matches_a_per_record_decode_under_random_damage(n, mutations):
    """Whatever the damage, the batch result equals decoding each record alone."""
    values = framed(seed_records(n, seed=n))
    for target, how, r in mutations:
        i = target % n
        v = bytearray(values[i])
        p = r % len(v) if v else 0
        if how == "cut":
            v = v[:p]
        elif how == "flip":
            if v:
                v[p] ^= 1 << (r % 8)
        elif how == "insert":
            v[p:p] = bytes([r % 256])
        else:
            v = bytearray(random.Random(r).randbytes(r % 80))
        values[i] = bytes(v)
    batch = make_decoder(confluent_stream_accepting_only_our_id()).decode(values)
    expected = {i: _oracle(v) for i, v in enumerate(values)}
    assert good_rows(batch) == {i: rec for i, rec in expected.items() if rec is not None}
    assert sorted(reasons(batch)) == [i for i, rec in expected.items() if rec is None]


def test_plain_avro_isolates_bad_records():
    records = seed_records(20, seed=10)
    values: list[bytes | None] = encode_avro(SEED_JSON, records)
    values[3] = values[3][:-4]
    values[9] = None
    values[15] = b"\xff\xff\xff"
    batch = make_decoder(stream("avro")).decode(values)
    assert sorted(reasons(batch)) == [3, 9, 15]
    assert reasons(batch)[9].startswith("null-value")
    assert good_rows(batch) == {i: r for i, r in enumerate(records) if i not in (3, 9, 15)}


def test_any_schema_id_is_accepted_without_registry_or_option():
    records = seed_records(5)
    values = framed(records, schema_id=1) + framed(records, schema_id=99)
    batch = make_decoder(stream("avro-confluent")).decode(values)
    assert batch.errors == [] and batch.rows() == records + records


def test_optional_event_time_that_is_null_is_an_error():
    schema = dict(SEED_SCHEMA, fields=[*SEED_SCHEMA["fields"][:1], {"name": "ts", "type": ["null", "long"]}, *SEED_SCHEMA["fields"][2:]])
    records = seed_records(6)
    records[2]["ts"] = None
    spec = stream("avro", avro_schema_json=json.dumps(schema))
    batch = make_decoder(spec).decode(encode_avro(json.dumps(schema), records))
    assert batch.errors == [(2, "null-value: ts")]
    assert list(batch.index) == [0, 1, 3, 4, 5]


# --- schema registry -------------------------------------------------------------------------


def test_registry_gives_the_writer_schema_by_id_and_unknown_ids_are_errors():
    client = SchemaRegistryClient.new_client({"url": "mock://serde-test"})
    v1 = client.register_schema("iot-monitoring-value", Schema(SEED_JSON, "AVRO"))
    writer_v2 = dict(SEED_SCHEMA, fields=[*SEED_SCHEMA["fields"], {"name": "severity", "type": "int", "default": 0}])
    v2 = client.register_schema("iot-monitoring-value", Schema(json.dumps(writer_v2), "AVRO"))
    assert v1 != v2
    records = seed_records(12, seed=11)
    values = framed(records[:6], schema_id=v1) + framed([dict(r, severity=3) for r in records[6:]], writer_v2, v2)
    values.insert(4, framed(records[:1], schema_id=v2 + 100)[0])
    decoder = make_decoder(stream("avro-confluent", schema_registry_url="mock://serde-test"), registry=client)
    batch = decoder.decode(values)
    assert [i for i, _ in batch.errors] == [4]
    assert batch.errors[0][1].startswith("unknown-schema-id:")
    assert batch.rows() == records  # v2 records read with the stream's (reader) fields only
    assert list(batch.index) == [i for i in range(13) if i != 4]


def test_registry_lookups_are_cached():
    client = SchemaRegistryClient.new_client({"url": "mock://serde-cache"})
    sid = client.register_schema("s-value", Schema(SEED_JSON, "AVRO"))
    calls = []
    real_get = client.get_schema
    client.get_schema = lambda schema_id, *a, **k: calls.append(schema_id) or real_get(schema_id, *a, **k)
    decoder = make_decoder(stream("avro-confluent"), registry=client)
    for _ in range(3):
        decoder.decode(framed(seed_records(5), schema_id=sid) + framed(seed_records(1), schema_id=sid + 1))
    assert sorted(calls) == [sid, sid + 1]


# --- JSON --------------------------------------------------------------------------------------


def json_values(records):
    return [orjson.dumps(r) for r in records]


@pytest.mark.parametrize(
    "value, code",
    [
        (b"{not json", "json-decode-error"),
        (b"", "json-decode-error"),
        (b"[1, 2]", "not-an-object: got array"),
        (b'"text"', "not-an-object: got str"),
        (None, "null-value"),
    ],
)
def test_json_unreadable_values(value, code):
    records = seed_records(5)
    values = json_values(records)
    values.insert(2, value)
    batch = make_decoder(stream("json")).decode(values)
    assert [i for i, _ in batch.errors] == [2]
    assert batch.errors[0][1].startswith(code)
    assert batch.rows() == records


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda r: r.pop("ts"), "missing-field: ts"),
        (lambda r: r.update(ts="Wednesday"), "wrong-type: ts (expected long, got str that is not a timestamp)"),
        (lambda r: r.update(ts=True), "wrong-type: ts (expected long, got bool)"),
        (lambda r: r.update(ts=1.5), "wrong-type: ts (expected long, got float)"),
        (lambda r: r.update(ts=2**63), "wrong-type: ts (expected long, got int out of range)"),
        (lambda r: r.update(ts=None), "null-value: ts"),
        (lambda r: r.pop("application"), "missing-field: application"),
        (lambda r: r.update(type=3), "wrong-type: type (expected string, got int)"),
    ],
)
def test_json_schema_violations(change, reason):
    records = seed_records(6)
    bad = dict(records[3])
    change(bad)
    values = json_values(records)
    values[3] = orjson.dumps(bad, option=orjson.OPT_PASSTHROUGH_BIGINT) if False else json.dumps(bad).encode()
    batch = make_decoder(stream("json")).decode(values)
    assert batch.errors == [(3, reason)]
    assert good_rows(batch) == {i: r for i, r in enumerate(records) if i != 3}


@pytest.mark.parametrize("text, millis", [
    ("2022-02-16 14:18:00", 1_645_021_080_000),        # Flink's JSON form of a TIMESTAMP(3)
    ("2022-02-16 14:18:00.05", 1_645_021_080_050),
    ("2022-02-16T14:18:00.123Z", 1_645_021_080_123),   # ISO-8601
])
def test_json_timestamps_as_flink_writes_them_are_read_as_epoch_millis(text, millis):
    """A query's JSON output (timestamps as text) can be another query's input."""
    records = seed_records(4)
    values = json_values(records)
    values[1] = json.dumps(dict(records[1], ts=text)).encode()
    for columns in (None, ("error_code",)):  # the time column decoded, and only checked
        batch = make_decoder(stream("json"), columns).decode(values)
        assert batch.errors == []
        if columns is None:
            assert [r["ts"] for r in batch.rows()] == [records[0]["ts"], millis, *(r["ts"] for r in records[2:])]


def test_json_ignores_unknown_fields_and_accepts_ints_for_doubles():
    schema = dict(SEED_SCHEMA, fields=[*SEED_SCHEMA["fields"], {"name": "load", "type": ["null", "double"]}])
    spec = stream("json", avro_schema_json=json.dumps(schema))
    rows = [dict(r, load=load, extra={"nested": 1}) for r, load in zip(seed_records(3), [2, 2.5, None])]
    batch = make_decoder(spec, ["ts", "load"]).decode(json_values(rows))
    assert batch.errors == []
    assert batch.columns["load"] == [2.0, 2.5, None]
    assert type(batch.columns["load"][0]) is float


# --- hypothesis round trips ------------------------------------------------------------------

record_strategy = st.fixed_dictionaries(
    {
        "error_code": st.text(max_size=20),
        "ts": st.integers(-(2**63), 2**63 - 1),
        "type": st.sampled_from(["ERROR", "DEBUG", "INFO", "WARN"]),
        "application": st.text(max_size=40),
        "version": st.text(max_size=20),
        "description": st.text(max_size=200),
    }
)


@settings(max_examples=100, deadline=None)
@given(st.lists(record_strategy, max_size=40))
def test_hypothesis_round_trip_avro_confluent(records):
    batch = make_decoder(stream("avro-confluent")).decode(encode_confluent_avro(SEED_JSON, 1, records))
    assert batch.errors == [] and batch.rows() == records


@settings(max_examples=100, deadline=None)
@given(st.lists(record_strategy, max_size=40))
def test_hypothesis_round_trip_json(records):
    batch = make_decoder(stream("json")).decode([json.dumps(r).encode() for r in records])
    assert batch.errors == [] and batch.rows() == records


# --- output format -------------------------------------------------------------------------


class Column:
    def __init__(self, name, type_):
        self.name, self.type = name, type_

    def __hash__(self):
        return hash((self.name, self.type))

    def __eq__(self, other):
        return (self.name, self.type) == (other.name, other.type)


ERROR_COUNT_COLUMNS = (
    Column("window_start", "long_timestamp-millis"),
    Column("window_end", "long_timestamp-millis"),
    Column("error_code", "string"),
    Column("error_count", "long"),
)


def test_json_key_and_value_exactly_as_the_seed_shows():
    start = (datetime(2022, 2, 16, 14, 18, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
    row = {"window_start": start, "window_end": start + 60_000, "error_code": "C001_ABORTED", "error_count": 26}
    assert encode_json_key(["error_code"], row) == b'{"error_code":"C001_ABORTED"}'
    assert encode_json_value(ERROR_COUNT_COLUMNS, row) == (
        b'{"window_start":"2022-02-16 14:18:00","window_end":"2022-02-16 14:19:00",'
        b'"error_code":"C001_ABORTED","error_count":26}'
    )


def test_json_key_formats_timestamp_key_fields_when_told():
    assert encode_json_key(["window_end", "error_code"], {"window_end": 500, "error_code": "X"}, {"window_end"}) == (
        b'{"window_end":"1970-01-01 00:00:00.5","error_code":"X"}'
    )


@pytest.mark.parametrize(
    "moment, text",
    [
        (datetime(2022, 2, 16, 14, 18, 0, tzinfo=UTC), "2022-02-16 14:18:00"),
        (datetime(2022, 2, 16, 14, 18, 0, 500000, tzinfo=UTC), "2022-02-16 14:18:00.5"),
        (datetime(2022, 2, 16, 14, 18, 0, 50000, tzinfo=UTC), "2022-02-16 14:18:00.05"),
        (datetime(2022, 2, 16, 14, 18, 0, 123000, tzinfo=UTC), "2022-02-16 14:18:00.123"),
        (datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "1969-12-31 23:59:59.999"),
    ],
)
def test_timestamp_examples(moment, text):
    assert format_timestamp_ms((moment - EPOCH) // timedelta(milliseconds=1)) == text


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_timestamp_format_matches_datetime(moment):
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000, tzinfo=UTC)
    ms = (moment - EPOCH) // timedelta(milliseconds=1)
    expected = moment.isoformat(sep=" ", timespec="milliseconds").removesuffix("+00:00")
    expected = expected.removesuffix(".000")
    if "." in expected:
        expected = expected.rstrip("0")
    assert format_timestamp_ms(ms) == expected


def test_an_unreachable_registry_is_an_infrastructure_error_not_bad_records():
    from engine.serde import SchemaRegistryUnavailable

    class DownRegistry:
        def get_schema(self, schema_id):
            raise ConnectionError("connection refused")

    decoder = make_decoder(stream("avro-confluent"), registry=DownRegistry())
    with pytest.raises(SchemaRegistryUnavailable, match="id 7"):
        decoder.decode(framed(seed_records(3)))


def test_consecutive_clean_ranges_stay_one_range_and_gaps_become_a_list():
    def part(index):
        return DecodedBatch(["x"], index, [], columns={"x": [0] * len(index)})

    joined = concat_batches(["x"], part(range(0, 3)), part(range(3, 3)), part(range(3, 7)))
    assert joined.index == range(0, 7)
    gapped = concat_batches(["x"], part(range(0, 2)), part([3, 5]), part(range(6, 8)))
    assert gapped.index == [0, 1, 3, 5, 6, 7]
    assert concat_batches(["x"], part(range(0, 2)), part(range(3, 4))).index == [0, 1, 3]


def test_an_avro_decoder_leaves_the_json_decoder_unloaded() -> None:
    """msgspec and the JSON decoder are a start-up cost that an Avro pipeline need not pay."""
    probe = (
        "import sys\n"
        "from config.pipeline import StreamSpec\n"
        "from engine.serde import make_decoder\n"
        "def stream(fmt):\n"
        "    return StreamSpec(name='s', topic='t', protocol='kafka', servers='k:9092', value_format=fmt,\n"
        "                      avro_schema_json=sys.argv[1])\n"
        "for fmt in ('avro', 'avro-confluent'): make_decoder(stream(fmt))\n"
        "print(sorted(m for m in ('msgspec', 'engine.serde.json_decoder') if m in sys.modules))\n"
        "print(type(make_decoder(stream('json'))).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, SEED_JSON], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "JsonBatchDecoder"]
