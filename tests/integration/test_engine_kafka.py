"""`python -m bytewax.run dataflows.iot` against real Kafka, with the seed's
pipeline: expected results are computed here, independently of the engine."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from config import load_pipeline
from engine.serde import encode_confluent_avro
from tests.support.kafka_io import produce, read_all
from tests.support.pipeline import REPO, run_dataflow, seed_pipeline, start_dataflow
from tests.support.ports import free_port

pytestmark = pytest.mark.broker

BASE = 1_645_020_000_000  # 2022-02-16 14:00:00 UTC, the seed's day
CODES = [f"C{i:03d}" for i in range(1, 8)]
SCHEMA = load_pipeline(REPO / "config" / "iot-monitoring.yaml", env={}).streams["iot-monitoring-stream"].avro_schema_json


def event(ts: int, code: str = "C001", type_: str = "ERROR") -> dict:
    return {"error_code": code, "type": type_, "application": "Zontrax", "version": "1.2.3 ", "description": "d", "ts": ts}


def avro(events: list[dict]) -> list[bytes]:
    return encode_confluent_avro(SCHEMA, 1, events)


def flink_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def expected_counts(events: list[dict], late: set[int] = frozenset()) -> Counter:
    return Counter(
        (e["ts"] - e["ts"] % 60_000, e["error_code"]) for i, e in enumerate(events) if e["type"] == "ERROR" and i not in late
    )


def result_counts(records: list) -> Counter:
    out: Counter = Counter()
    for key, value, _, _, _ in records:
        row = orjson.loads(value)
        assert orjson.loads(key) == {"error_code": row["error_code"]}
        start = int(datetime.strptime(row["window_start"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000)
        assert (start, row["error_code"]) not in out, "a window result was emitted twice"
        out[(start, row["error_code"])] = row["error_count"]
    return out


def seed_events(n: int, seed: int = 7, minutes: int = 5) -> list[dict]:
    rng = random.Random(seed)
    span = minutes * 60_000
    return [event(BASE + i * span // n + rng.randint(-1_500, 0) + 1_500, rng.choice(CODES), rng.choice(["ERROR", "DEBUG", "INFO", "WARN"]))
            for i in range(n)]


def check_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_seed_scenario_counts_in_the_seed_json_format(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    source, sink = new_topic(partitions=3), new_topic()
    events = seed_events(3_000)
    for p in range(3):  # unkeyed, spread over the partitions in time order, as the generator does
        produce(kafka_bootstrap, source, avro(events[p::3]), partition=p)
    check_ok(run_dataflow(seed_pipeline(tmp_path, source, sink), kafka_bootstrap))

    records = read_all(kafka_bootstrap, sink)
    assert result_counts(records) == expected_counts(events)
    key, value, headers, _, _ = records[0]
    first = min(expected_counts(events))
    assert value == (
        f'{{"window_start":"{flink_time(first[0])}","window_end":"{flink_time(first[0] + 60_000)}",'
        f'"error_code":"{orjson.loads(value)["error_code"]}","error_count":{orjson.loads(value)["error_count"]}}}'
    ).encode()
    assert dict(headers)["windowStartTime"] == str(first[0]).encode()
    # results that fire together come ordered by window, then key
    windows = [(orjson.loads(v)["window_end"], orjson.loads(v)["error_code"]) for _, v, _, _, _ in records]
    assert windows == sorted(windows)


READERS = {"native": {}, "confluent-kafka": {"IOT_NATIVE_KAFKA": "0"}}  # how partitions are read (connectors.kafka_readers)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_out_of_order_late_and_watermark_raised_by_filtered_records(tmp_path: Path, kafka_bootstrap: str, new_topic,
                                                                     reader: str) -> None:
    source, sink = new_topic(), new_topic()
    events = [
        event(BASE + 10_000, "C001"),
        event(BASE + 62_000, "C002"),
        event(BASE + 58_000, "C001"),  # 4 s behind the max, but W = 59_000 < 59_999: still counted
        event(BASE + 64_000, "C002", "INFO"),  # filtered, yet raises W to 61_000: [0, 60 s) fires
        event(BASE + 59_000, "C003"),  # its window fired: late
        event(BASE + 70_000, "C002"),
    ]
    produce(kafka_bootstrap, source, avro(events), partition=0)
    check_ok(run_dataflow(seed_pipeline(tmp_path, source, sink), kafka_bootstrap, env=READERS[reader]))

    assert result_counts(read_all(kafka_bootstrap, sink)) == expected_counts(events, late={4})
    late = read_all(kafka_bootstrap, source + "-late", expect=1)
    assert len(late) == 1
    key, value, headers, _, _ = late[0]
    assert value == avro([events[4]])[0] and key is None  # unchanged
    h = dict(headers)
    assert h["x-late-window-start"] == flink_time(BASE).encode()
    assert h["x-late-window-end"] == flink_time(BASE + 60_000).encode()
    assert int(h["x-late-watermark"]) == BASE + 64_000 - 3_000
    assert h["x-source-offset"] == b"4"


@pytest.mark.parametrize("reader", sorted(READERS))
def test_malformed_records_go_to_the_dead_letter_topic_with_reasons(tmp_path: Path, kafka_bootstrap: str, new_topic,
                                                                     reader: str) -> None:
    source, sink = new_topic(), new_topic()
    good = seed_events(400, seed=3)
    body = avro([event(BASE)])[0]
    bad = {
        "bad-avro": b"\x00\x00\x00\x00\x01" + b"\xff" * 3,
        "truncated": body[:12],
        "wrong-magic": b"\x07" + body[1:],
        "json-garbage": b'{"error_code": "C001", "ts": ',
        "future": avro([event(int(time.time() * 1000) + 3_600_000)])[0],
        "empty": b"",
    }
    values = avro(good)
    mixed = values[:200] + list(bad.values()) + values[200:]
    produce(kafka_bootstrap, source, mixed, partition=0)
    check_ok(run_dataflow(seed_pipeline(tmp_path, source, sink), kafka_bootstrap, env=READERS[reader]))

    assert result_counts(read_all(kafka_bootstrap, sink)) == expected_counts(good)
    dead = read_all(kafka_bootstrap, source + "-dlq", expect=len(bad))
    assert [v for _, v, _, _, _ in dead] == list(bad.values())
    reasons = [dict(h)["x-dlq-reason"].decode() for _, _, h, _, _ in dead]
    assert all(reasons), reasons
    assert reasons[4].startswith("future-timestamp")
    assert reasons[2].startswith("bad-magic-byte")
    assert [dict(h)["x-source-offset"] for _, _, h, _, _ in dead] == [str(200 + i).encode() for i in range(len(bad))]
    assert all(dict(h)["x-source-topic"] == source.encode() for _, _, h, _, _ in dead)


def test_accounting_identity(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    source, sink = new_topic(), new_topic()
    rng = random.Random(11)
    events = seed_events(2_000, seed=11)
    for i in rng.sample(range(200, 2_000), 40):  # some records far behind: late
        events[i] = dict(events[i], ts=events[i]["ts"] - 120_000)
    values = avro(events)
    for i in rng.sample(range(2_000), 15):
        values[i] = b"\x00garbage"
    produce(kafka_bootstrap, source, values, partition=0)
    check_ok(run_dataflow(seed_pipeline(tmp_path, source, sink), kafka_bootstrap))

    counted = sum(result_counts(read_all(kafka_bootstrap, sink)).values())
    late = len(read_all(kafka_bootstrap, source + "-late"))
    dead = len(read_all(kafka_bootstrap, source + "-dlq"))
    filtered = sum(1 for e, v in zip(events, values) if v != b"\x00garbage" and e["type"] != "ERROR")
    assert dead == 15
    assert late > 0
    assert filtered + counted + late + dead == len(values)


def test_idle_partition_does_not_hold_results_back(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    """Four partitions, the fourth never written: windows still fire while
    the others are live (quiet-input advance switched off to isolate the rule)."""
    source, sink = new_topic(partitions=4), new_topic()
    pipeline = seed_pipeline(tmp_path, source, sink)
    pipeline.write_text(pipeline.read_text().replace(
        "ddl.scan.startup.mode: earliest-offset\n", "ddl.scan.startup.mode: earliest-offset\n      quiet-advance: \"false\"\n      idle-timeout: 2 s\n", 1))
    proc = start_dataflow(pipeline, kafka_bootstrap)
    stop = threading.Event()

    def feed() -> None:
        ts = BASE
        while not stop.is_set():
            for p in range(3):
                produce(kafka_bootstrap, source, avro([event(ts, "C001")]), partition=p)
            ts += 5_000
            time.sleep(0.2)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        deadline = time.monotonic() + 60
        records = []
        while time.monotonic() < deadline and not records:
            time.sleep(1)
            records = read_all(kafka_bootstrap, sink, timeout_s=2)
        assert records, "no window fired while partition 3 was idle"
        first = orjson.loads(records[0][1])
        assert first["window_start"] == flink_time(BASE) and first["error_count"] == 36  # 12 rounds x 3 partitions
    finally:
        stop.set()
        feeder.join(10)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def test_quiet_input_still_emits_its_last_window(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    source, sink = new_topic(), new_topic()
    events = [event(BASE + 1_000), event(BASE + 50_000, "C002")]
    produce(kafka_bootstrap, source, avro(events), partition=0)
    proc = start_dataflow(seed_pipeline(tmp_path, source, sink), kafka_bootstrap)  # live, not bounded
    try:
        records = read_all(kafka_bootstrap, sink, timeout_s=60, expect=2)
        assert result_counts(records) == expected_counts(events)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


@pytest.mark.slow
def test_parallel_runs_equal_one_worker(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    source = new_topic(partitions=4)
    events = seed_events(4_000, seed=5)
    for p in range(4):
        produce(kafka_bootstrap, source, avro(events[p::4]), partition=p)
    outputs = {}
    one = new_topic()
    (tmp_path / "one").mkdir()
    check_ok(run_dataflow(seed_pipeline(tmp_path / "one", source, one), kafka_bootstrap))
    outputs["1 worker"] = result_counts(read_all(kafka_bootstrap, one))

    two_workers = new_topic()
    (tmp_path / "w2").mkdir()
    check_ok(run_dataflow(seed_pipeline(tmp_path / "w2", source, two_workers), kafka_bootstrap, args=("-w", "2")))
    outputs["-w 2"] = result_counts(read_all(kafka_bootstrap, two_workers))

    two_processes = new_topic()
    (tmp_path / "p2").mkdir()
    pipeline = seed_pipeline(tmp_path / "p2", source, two_processes)
    ports = [free_port(), free_port()]
    addresses = ";".join(f"127.0.0.1:{p}" for p in ports)
    procs = [start_dataflow(pipeline, kafka_bootstrap, bounded=True, args=("-i", str(i), "-a", addresses)) for i in range(2)]
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out[-3000:]
    outputs["2 processes"] = result_counts(read_all(kafka_bootstrap, two_processes))

    assert outputs["1 worker"] == expected_counts(events)
    assert outputs["-w 2"] == outputs["1 worker"]
    assert outputs["2 processes"] == outputs["1 worker"]


@pytest.mark.slow
def test_kill_9_and_restart_from_the_recovery_store_gives_the_same_results(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    """A live run fed over time, killed with SIGKILL in the middle and
    restarted on the same recovery store, emits every window once with the
    right count; a result emitted twice is byte-identical."""
    source, sink = new_topic(partitions=2), new_topic()
    events = seed_events(24_000, seed=9, minutes=8)
    events.append(event(BASE + 8 * 60_000 - 500, "C001"))  # the last window ends soon after the last record
    pipeline = seed_pipeline(tmp_path, source, sink)
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True, cwd=REPO)
    args = ("-r", str(recovery), "-s", "1", "-b", "0")

    def feed() -> None:  # about 12 s of input, both partitions advancing together
        for chunk in range(0, len(events), 1_000):
            part = events[chunk:chunk + 1_000]
            for p in range(2):
                produce(kafka_bootstrap, source, avro(part[p::2]), partition=p)
            time.sleep(0.5)

    feeder = threading.Thread(target=feed, daemon=True)
    proc = start_dataflow(pipeline, kafka_bootstrap, args=args)
    feeder.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(read_all(kafka_bootstrap, sink, timeout_s=1)) < 14:
        time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert feeder.is_alive(), "the input ended before the kill"
    before = len(read_all(kafka_bootstrap, sink))
    assert before > 0

    proc = start_dataflow(pipeline, kafka_bootstrap, args=args)
    try:
        feeder.join(60)
        expected = expected_counts(events)
        deadline = time.monotonic() + 90
        after = []
        while time.monotonic() < deadline:
            after = read_all(kafka_bootstrap, sink, timeout_s=2)
            if len({(orjson.loads(v)["window_start"], orjson.loads(v)["error_code"]) for _, v, _, _, _ in after}) >= len(expected):
                break
            time.sleep(1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    by_window: dict = {}
    for key, value, headers, _, _ in after:
        row = orjson.loads(value)
        ident = (row["window_start"], row["window_end"], row["error_code"])
        if ident in by_window:
            assert by_window[ident] == (key, value, headers), "a re-emitted result differs"
        by_window[ident] = (key, value, headers)
    got = Counter()
    for key, value, _ in by_window.values():
        row = orjson.loads(value)
        start = int(datetime.strptime(row["window_start"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000)
        got[(start, row["error_code"])] = row["error_count"]
    assert got == expected
