"""The demo on real brokers. Bounded: counts reach the results topic, alerts reach
RabbitMQ, and the frames of `demo` and `watch --once` show them.

Expected counts come from the input topic itself, decoded here with fastavro
and windowed by hand; expected alerts from the alerting rule's threshold.
Live: Ctrl-C stops the view and every process the demo started.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pika
import pytest

from config import load_pipeline
from tests.support.kafka_io import read_all
from tests.support.pipeline import REPO, seed_pipeline
from tests.support.ports import free_port

pytestmark = pytest.mark.broker

WINDOW_MS = 60_000
THRESHOLD = 50  # the alerting UDF's default ALERT_THRESHOLD
COUNT = 12_000  # events, 1 ms apart: about 107 errors per code per window, so every count alerts


def flink_time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def decode_events(values: list[bytes], schema_json: str) -> tuple[list[dict], int]:
    """Confluent-framed Avro records that decode, and how many do not."""
    raw = json.loads(schema_json)
    for f in raw["fields"]:  # read timestamps as the epoch millis they are on the wire
        if isinstance(f["type"], dict) and "logicalType" in f["type"]:
            f["type"] = f["type"]["type"]
    schema = fastavro.parse_schema(raw)
    events, bad = [], 0
    for value in values:
        try:
            if len(value) < 6 or value[0] != 0:
                raise ValueError("no Confluent framing")
            buffer = io.BytesIO(value[5:])
            record = fastavro.schemaless_reader(buffer, schema)
            if buffer.read():
                raise ValueError("trailing bytes")
            events.append(record)
        except (ValueError, EOFError, IndexError, TypeError):  # what a damaged record raises
            bad += 1
    return events, bad


def table_rows(text: str) -> dict[str, dict[str, int]]:
    """code -> count per window title, from a frame rendered with windows stacked or side by side."""
    windows: dict[str, dict[str, int]] = {}
    titles: list[str] = []
    for line in text.splitlines():
        found = re.findall(r"window (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) →", line)
        if found:
            titles = found
            for t in titles:
                windows.setdefault(t, {})
        for i, (code, count) in enumerate(re.findall(r"│(\S+)\s*│\s*(\d+)\s*│", line)):
            windows[titles[i]][code] = int(count)
    return windows


def bind_queue(url: str, exchange: str) -> tuple[pika.BlockingConnection, str]:
    """Our own listener on the output exchange, declared as the pipeline declares it."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    channel.queue_bind(queue, exchange, routing_key="#")
    return connection, queue


def drain_queue(connection: pika.BlockingConnection, queue: str) -> list[dict]:
    channel = connection.channel()
    alerts = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return alerts
        alerts.append(json.loads(body))


def run_cli(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")  # wide enough for whole alert lines
    for name in ("ALERT_THRESHOLD", "ALERT_CRITICAL_FACTOR", "ALERT_JUMP_FACTOR", "ALERT_MIN_COUNT"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_bounded_demo_counts_alerts_and_frames(kafka_bootstrap, rabbitmq_url, new_topic, new_exchange, tmp_path):
    input_topic, results_topic, exchange = new_topic(), new_topic(), new_exchange()
    pipeline = seed_pipeline(tmp_path, input_topic, results_topic, exchange)
    # the events straddle a minute boundary ten minutes ago
    boundary = (time.time_ns() // 1_000_000 // WINDOW_MS - 10) * WINDOW_MS
    start_ms = boundary - COUNT // 3
    connection, queue = bind_queue(rabbitmq_url, exchange)
    try:
        demo = run_cli(
            "demo", "--bounded-demo", "--pipeline", str(pipeline), "--bootstrap", kafka_bootstrap,
            "--rabbitmq-url", rabbitmq_url, "--udf-port", str(free_port()), "--log-dir", str(tmp_path / "logs"),
            "--count", str(COUNT), "--start-ms", str(start_ms), "--seed", "11",
            "--late-fraction", "0.01", "--malformed-fraction", "0.01", "--timeout", "40",
            timeout=50,
        )
        assert demo.returncode == 0, demo.stderr[-3000:]
        alerts = drain_queue(connection, queue)
    finally:
        connection.close()

    # What the pipeline should have produced, from the input topic as written
    stream = load_pipeline(pipeline).stream("iot-monitoring-stream")
    inputs = read_all(kafka_bootstrap, input_topic, expect=COUNT)
    assert len(inputs) == COUNT
    events, undecodable = decode_events([r[1] for r in inputs], stream.avro_schema_json)
    on_time = [e for e in events if e["ts"] >= start_ms]  # late ones were sent 2 minutes back, before the start
    # the query filters before windows: only late ERROR events are late records, the rest are filtered out
    late = sum(1 for e in events if e["ts"] < start_ms and e["type"] == "ERROR")
    assert undecodable > 0 and late > 0  # the run exercises both side topics
    expected: dict[str, Counter] = {}
    for e in on_time:
        if e["type"] == "ERROR":
            expected.setdefault(flink_time(e["ts"] // WINDOW_MS * WINDOW_MS), Counter())[e["error_code"]] += 1
    assert len(expected) == 2

    # The results topic holds exactly those counts
    results = [json.loads(r[1]) for r in read_all(kafka_bootstrap, results_topic)]
    got: dict[str, dict[str, int]] = {}
    for r in results:
        got.setdefault(r["window_start"], {})[r["error_code"]] = r["error_count"]
    assert got == {w: dict(c) for w, c in expected.items()}
    assert len(results) == sum(len(c) for c in expected.values())

    # Side topics hold the late and the undecodable records
    assert len(read_all(kafka_bootstrap, input_topic + "-late")) == late
    assert len(read_all(kafka_bootstrap, input_topic + "-dlq")) == undecodable

    # RabbitMQ got one alert per count at or above the threshold, each carrying its count
    alerted = {(a["window_start"], a["error_code"]): a["error_count"] for a in alerts}
    should_alert = {(w, code): n for w, c in expected.items() for code, n in c.items() if n >= THRESHOLD}
    assert should_alert and set(should_alert) <= set(alerted)
    assert all(alerted[key] == expected[key[0]][key[1]] for key in alerted)

    # The demo's frame: both windows' counts, the alerts, the side-topic counters
    frame = demo.stdout
    assert table_rows(frame) == {w: dict(c) for w, c in expected.items()}
    assert f"alerts ({len(alerts)} received, newest first)" in frame
    newest_alert_lines = [line for line in frame.splitlines() if "reached the threshold" in line]
    assert newest_alert_lines and all(re.search(r"\b(warning|critical)\b", line) for line in newest_alert_lines)
    assert f"late records {late:,}" in frame
    assert f"dead-lettered {undecodable:,}" in frame
    assert "watermark lag n/a" in frame  # a bounded run serves no metrics

    # `watch --once` reads the same counts back from the topic
    watch = run_cli("watch", "--once", "--pipeline", str(pipeline), "--bootstrap", kafka_bootstrap,
                    "--rabbitmq-url", rabbitmq_url, "--metrics-url", "", timeout=40)
    assert watch.returncode == 0, watch.stderr[-3000:]
    assert table_rows(watch.stdout) == {w: dict(c) for w, c in expected.items()}
    assert f"late records {late:,}" in watch.stdout and f"dead-lettered {undecodable:,}" in watch.stdout


def test_ctrl_c_stops_the_live_demo_and_every_process_it_started(kafka_bootstrap, rabbitmq_url, new_topic,
                                                                 new_exchange, tmp_path):
    pipeline = seed_pipeline(tmp_path, new_topic(), new_topic(), new_exchange())
    env = dict(os.environ, COLUMNS="120")
    demo = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "demo", "--pipeline", str(pipeline), "--bootstrap", kafka_bootstrap,
         "--rabbitmq-url", rabbitmq_url, "--udf-port", str(free_port()), "--metrics-port", str(free_port()),
         "--log-dir", str(tmp_path / "logs"), "--rate", "200", "--duration", "120"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        started: dict[str, int] = {}
        deadline = time.monotonic() + 30
        while "generator" not in started and time.monotonic() < deadline:
            line = demo.stderr.readline()
            if match := re.search(r"started (\S+) \(pid (\d+)\)", line):
                started[match[1]] = int(match[2])
        assert set(started) == {"udf", "dataflow", "generator"}
        time.sleep(3)  # the dataflow is reading and the generator writing
        assert all(Path(f"/proc/{pid}").exists() for pid in started.values())
        demo.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does (the children have their own sessions)
        out, err = demo.communicate(timeout=40)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, err[-2000:]
    assert not [name for name, pid in started.items() if Path(f"/proc/{pid}").exists()]
    for name in started:
        assert f"stopped {name}" in err
    assert "error counts from Kafka topic" in out  # the view was up until the end
