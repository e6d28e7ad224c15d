"""The event generator: schema, distributions, repeatability, trouble mixed in."""

from __future__ import annotations

import io
import json
import re
import time
from collections import Counter

import fastavro
import orjson
import pytest

from cli.datagen import EventGenerator, GeneratorSettings, event_times
from cli.main import main
from config import load_pipeline
from engine.serde import make_decoder
from tests.support.seed_schema import SEED_SCHEMA

N = 20_000
START = 1_645_020_000_000
CODES = [
    "C001_ABORTED", "C002_ALREADY_EXISTS", "C003_CANCELLED", "C004_DEADLINE_EXCEEDED", "C005_FAILED_PRECONDITION",
    "C006_INTERNAL", "C007_INVALID_ARGUMENT", "C008_NOT_FOUND", "C009_OUT_OF_RANGE", "C010_PERMISSION_DENIED",
    "C011_RESOURCE_EXHAUSTED", "C012_UNAVAILABLE", "C013_UNIMPLEMENTED", "C014_UNKNOWN",
]  # fmt: skip
VERSION = re.compile(r"^(\d)\.(\d{1,2})\.(\d{1,2})( |-SNAPSHOT)$")


@pytest.fixture(scope="module")
def stream():
    return load_pipeline().stream("iot-monitoring-stream")


@pytest.fixture(scope="module")
def decoded(stream):
    gen = EventGenerator(GeneratorSettings(schema_json=stream.avro_schema_json), seed=42)
    messages = gen.messages(event_times(START, 25, 0, N))
    batch = make_decoder(stream).decode([m.value for m in messages])
    assert batch.errors == []
    return messages, batch.rows()


def test_generated_records_decode_with_the_streams_schema(stream, decoded):
    messages, rows = decoded
    assert len(rows) == N
    assert [r["ts"] for r in rows] == [START + i * 40 for i in range(N)]  # 25/s: 40 ms apart
    assert all(m.key is None for m in messages)  # unkeyed, like the original
    assert {m.value[:5] for m in messages} == {b"\x00\x00\x00\x00\x01"}  # Confluent framing, schema id 1


def test_default_settings_write_the_seed_schema():
    messages = EventGenerator(seed=1).messages([START] * 50)
    parsed = fastavro.parse_schema(SEED_SCHEMA)
    for m in messages:
        body = io.BytesIO(m.value[5:])
        record = fastavro.schemaless_reader(body, parsed, None)
        assert body.tell() == len(m.value) - 5
        assert set(record) == {f["name"] for f in SEED_SCHEMA["fields"]}


def test_fields_follow_the_original_distributions(decoded):
    _, rows = decoded
    codes = Counter(r["error_code"] for r in rows)
    assert set(codes) == set(CODES)
    for code in CODES:  # expected 1429 each, standard deviation about 36
        assert abs(codes[code] - N / 14) < 0.15 * N / 14, (code, codes[code])
    types = Counter(r["type"] for r in rows)
    assert set(types) == {"ERROR", "DEBUG", "INFO", "WARN"}
    for t, n in types.items():  # expected 5000, sd about 61
        assert abs(n - N / 4) < 0.08 * N / 4, (t, n)
    versions = [VERSION.match(r["version"]) for r in rows]
    assert all(versions)
    parts = [tuple(int(v.group(i)) for i in (1, 2, 3)) for v in versions]
    assert {p[0] for p in parts} == set(range(10))
    assert {p[1] for p in parts} == set(range(20)) and {p[2] for p in parts} == set(range(20))
    snapshots = sum(v.group(4) == "-SNAPSHOT" for v in versions)  # expected 2500, sd about 47
    assert abs(snapshots - N / 8) < 0.1 * N / 8
    assert len({r["application"] for r in rows}) >= 10 and all(r["application"] for r in rows)
    assert all("Chuck Norris" in r["description"] for r in rows)
    assert len({r["description"] for r in rows}) >= 10


def test_same_seed_same_bytes_and_batching_does_not_matter():
    settings = GeneratorSettings(jitter_ms=800, late_fraction=0.1, malformed_fraction=0.1, keyed=True)
    times = event_times(START, 100, 0, 2000)
    one = EventGenerator(settings, seed=7).messages(times)
    gen = EventGenerator(settings, seed=7)
    split = gen.messages(times[:333]) + gen.messages(times[333:])
    assert one == split
    assert [m.value for m in one] == [m.value for m in EventGenerator(settings, seed=7).messages(times)]


def test_different_seeds_differ():
    times = event_times(START, 25, 0, 200)
    a = [m.value for m in EventGenerator(seed=1).messages(times)]
    b = [m.value for m in EventGenerator(seed=2).messages(times)]
    assert sum(x != y for x, y in zip(a, b)) > 150


def test_keyed_messages_carry_their_error_code(stream):
    gen = EventGenerator(GeneratorSettings(schema_json=stream.avro_schema_json, keyed=True), seed=3)
    messages = gen.messages([START] * 100)
    rows = make_decoder(stream).decode([m.value for m in messages]).rows()
    assert [m.key for m in messages] == [r["error_code"].encode() for r in rows]


def test_jitter_and_late_events(stream):
    settings = GeneratorSettings(schema_json=stream.avro_schema_json, jitter_ms=500, late_fraction=0.2, late_by_ms=120_000)
    times = event_times(START, 1000, 0, 5000)
    messages = EventGenerator(settings, seed=5).messages(times)
    rows = make_decoder(stream).decode([m.value for m in messages]).rows()
    late = 0
    for t, m, r in zip(times, messages, rows):
        assert r["ts"] == m.event_time_ms
        lag = t - r["ts"]
        if m.kind == "late":
            late += 1
            assert 120_000 <= lag <= 120_500
        else:
            assert m.kind == "event" and 0 <= lag <= 500
    assert abs(late - 1000) < 150  # 20 % of 5000, sd about 28
    assert any(a["ts"] > b["ts"] for a, b in zip(rows, rows[1:]))  # out of order


@pytest.mark.parametrize(
    "fmt, codes",
    [
        ("avro-confluent", {"truncated", "avro-decode-error", "bad-magic-byte"}),
        ("json", {"json-decode-error", "missing-field", "wrong-type"}),
    ],
)
def test_malformed_values_are_exactly_the_decode_errors(stream, fmt, codes):
    settings = GeneratorSettings(value_format=fmt, schema_json=stream.avro_schema_json, malformed_fraction=0.25)
    messages = EventGenerator(settings, seed=11).messages(event_times(START, 25, 0, 2000))
    batch = make_decoder(stream if fmt != "json" else _as_json(stream)).decode([m.value for m in messages])
    malformed = [i for i, m in enumerate(messages) if m.kind.startswith("malformed:")]
    assert abs(len(malformed) - 500) < 90
    assert [i for i, _ in batch.errors] == malformed
    assert {reason.split(":")[0] for _, reason in batch.errors} == codes


def _as_json(stream):
    from dataclasses import replace

    return replace(stream, value_format="json")


def test_json_values_hold_the_fields_in_schema_order(stream):
    settings = GeneratorSettings(value_format="json", schema_json=stream.avro_schema_json, keyed=True)
    m = EventGenerator(settings, seed=1).messages([START])[0]
    assert list(orjson.loads(m.value)) == [f["name"] for f in json.loads(stream.avro_schema_json)["fields"]]
    assert orjson.loads(m.key) == {"error_code": orjson.loads(m.value)["error_code"]}


def test_event_times():
    assert event_times(1000, 25, 0, 3) == [1000, 1040, 1080]
    assert event_times(1000, 25, 10, 2) == [1400, 1440]
    assert event_times(1000, 0, 0, 3) == [1000, 1001, 1002]


@pytest.mark.parametrize(
    "kwargs",
    [{"late_fraction": 1.5}, {"malformed_fraction": -0.1}, {"jitter_ms": -1}, {"schema_json": json.dumps({"type": "record", "name": "R", "fields": [{"name": "x", "type": "long"}]})}],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        GeneratorSettings(**kwargs)


def test_cli_reports_bad_options_as_user_errors(capsys):
    assert main(["generate", "--late-fraction", "2", "--count", "1"]) == 2
    assert "late-fraction must be between 0 and 1" in capsys.readouterr().err


def test_cli_gives_up_on_an_unreachable_broker_in_bounded_time(capsys):
    started = time.monotonic()
    assert main(["generate", "--bootstrap", "127.0.0.1:1", "--connect-timeout", "1", "--count", "1"]) == 2
    assert time.monotonic() - started < 10
    assert "127.0.0.1:1 did not answer" in capsys.readouterr().err
