"""The pipeline over the local stack's secured Kafka listeners: SASL_SSL with
SCRAM and with PLAIN, and TLS with a client certificate, read by the native
reader; a wrong password and an untrusted CA stop the start at once with one
clear line that names the listener and the cause, and never the password."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from cli.datagen import EventGenerator, GeneratorSettings, event_times
from cli.local_stack_secure import new_ca, pem_cert
from cli.main import main
from config import load_pipeline
from connectors.kafka_readers import NativeReader
from engine.serde import make_decoder
from engine.serde.timestamps import format_timestamp_ms
from tests.support.kafka_io import produce, read_all
from tests.support.pipeline import run_dataflow, seed_pipeline

pytestmark = pytest.mark.broker

WAYS_IN = ["scram", "plain", "mtls"]  # SASL_SSL SCRAM-SHA-512, SASL_SSL PLAIN, SSL with a client certificate


@pytest.mark.parametrize("how, mechanism", [("scram", "SCRAM-SHA-512"), ("scram", "SCRAM-SHA-256"), ("plain", None),
                                            ("mtls", None)])
def test_the_native_reader_reads_over_each_secured_listener(secure_stack, new_secure_topic, how, mechanism) -> None:
    topic = new_secure_topic()
    settings = {**secure_stack.kafka(how), **({"sasl.mechanism": mechanism} if mechanism else {})}
    values = [f'{{"i": {i}}}'.encode() for i in range(500)]
    produce(settings["bootstrap.servers"], topic, values, partition=0, config=settings)
    reader = NativeReader({**settings, "group.id": "secure-test", "enable.auto.commit": "false", "log_level": "3"}, topic, 0)
    try:
        assert reader.watermarks(10) == (0, 500)
        reader.assign(0)
        got, deadline = [], time.monotonic() + 30
        while len(got) < 500 and time.monotonic() < deadline:
            read = reader.read(200, 0.5)
            assert not read.errors
            got += [r.value for r in read.batch.records()]
    finally:
        reader.close()
    assert got == values


def expected_counts(pipeline: Path, seed: int, start_ms: int, n: int) -> Counter:
    """What the seed query must count for the generator's events: ERRORs per minute and code."""
    stream = load_pipeline(pipeline, env={}).stream("iot-monitoring-stream")
    messages = EventGenerator(GeneratorSettings(schema_json=stream.avro_schema_json), seed).messages(event_times(start_ms, 0, 0, n))
    columns = make_decoder(stream).decode([m.value for m in messages]).columns
    counts: Counter = Counter()
    for kind, code, ts in zip(columns["type"], columns["error_code"], columns["ts"]):
        if kind == "ERROR":
            counts[(format_timestamp_ms(ts - ts % 60_000), code)] += 1
    return counts


@pytest.mark.parametrize("how", WAYS_IN)
def test_the_seed_pipeline_runs_end_to_end_secured(tmp_path, secure_stack, new_secure_topic, monkeypatch, how) -> None:
    """generator -> dataflow -> results topic, each on the secured listener
    given only by the KAFKA_* variables, the input read natively."""
    source, sink = new_secure_topic(partitions=2), new_secure_topic()
    pipeline = seed_pipeline(tmp_path, source, sink)
    env = secure_stack.env(how)
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    n, seed, start_ms = 4000, 11, 1_700_000_098_000  # two seconds before a minute ends: two windows
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["generate", "--config", str(pipeline), "--bootstrap", bootstrap, "--count", str(n), "--rate", "0",
                 "--seed", str(seed), "--start-ms", str(start_ms), "--no-progress"]) == 0

    result = run_dataflow(pipeline, bootstrap, env={**env, "IOT_LOG_LEVEL": "DEBUG"}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    for partition in (0, 1):
        assert f"{source}/{partition} is read by the native reader" in result.stderr
    assert "read with confluent-kafka" not in result.stderr

    records = read_all(bootstrap, sink, config=secure_stack.kafka(how))
    got = Counter()
    for _key, value, _headers, _partition, _offset in records:
        row = orjson.loads(value)
        got[(row["window_start"], row["error_code"])] += row["error_count"]
    assert len(records) == len(got)  # each window and code once
    assert got == expected_counts(pipeline, seed, start_ms, n)
    assert len({window for window, _code in got}) == 2


def start_error(tmp_path: Path, env: dict[str, str], bootstrap: str) -> tuple[str, float]:
    """The dataflow's start with these settings: it must exit 2, and quickly."""
    pipeline = seed_pipeline(tmp_path, "never-read", "never-written")
    started = time.monotonic()
    result = run_dataflow(pipeline, bootstrap, env={**env, "IOT_CONNECT_TIMEOUT": "60"}, timeout=90)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("iot-monitoring: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0], elapsed


@pytest.mark.parametrize("how", ["scram", "plain"])
def test_a_wrong_password_is_one_line_at_start(tmp_path, secure_stack, how) -> None:
    wrong = "not-the-password-7f3a"
    env = {**secure_stack.env(how), "KAFKA_SASL_PASSWORD": wrong}
    line, elapsed = start_error(tmp_path, env, env["KAFKA_BOOTSTRAP_SERVERS"])
    assert f"Kafka at {env['KAFKA_BOOTSTRAP_SERVERS']} (SASL_SSL, " in line
    assert "authentication failed" in line
    assert wrong not in line and secure_stack.kafka(how)["sasl.password"] not in line
    assert elapsed < 30  # refused at the first connection, not after IOT_CONNECT_TIMEOUT's 60 s


def test_an_untrusted_certificate_is_one_line_at_start(tmp_path, secure_stack) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(pem_cert(new_ca("some other CA")[0]))
    env = {**secure_stack.env("scram"), "KAFKA_SSL_CA_LOCATION": str(other_ca)}
    line, elapsed = start_error(tmp_path, env, env["KAFKA_BOOTSTRAP_SERVERS"])
    assert f"Kafka at {env['KAFKA_BOOTSTRAP_SERVERS']} (SASL_SSL, SCRAM-SHA-512, user 'iot'): certificate verify failed" in line
    assert env["KAFKA_SASL_PASSWORD"] not in line
    assert elapsed < 30


def test_generate_refuses_a_wrong_password_in_one_line(secure_stack, monkeypatch, capsys) -> None:
    env = {**secure_stack.env("scram"), "KAFKA_SASL_PASSWORD": "wrong-one-9c1d"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["generate", "--bootstrap", env["KAFKA_BOOTSTRAP_SERVERS"], "--topic", "never-written", "--count", "1",
                 "--no-progress", "--connect-timeout", "60"])
    err = capsys.readouterr().err
    assert code == 2
    assert "authentication failed" in err and "wrong-one-9c1d" not in err
