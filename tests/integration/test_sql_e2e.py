"""The SQL in the YAML decides what runs: other queries, another schema
(JSON, keyed), end to end through real Kafka. Expected results are computed
here from the generated records by plain Python, not by the package."""

from __future__ import annotations

import random
import signal
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from tests.support.kafka_io import produce, read_all
from tests.support.pipeline import run_dataflow, scrape, start_dataflow
from tests.support.ports import free_port

pytestmark = pytest.mark.broker

BASE = 1_645_020_000_000
DEVICES = ["d1", "d2", "d3"]
SITES = ["north", "south"]


def sensor_pipeline(tmp_path: Path, source: str, sink: str, query: str, startup: str = "earliest-offset") -> Path:
    text = f"""
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Stream
metadata:
  name: sensors
spec:
  name: {source}
  protocol: kafka
  streamMode: [read]
  keys: [device]
  dataSchemaContext:
    schema:
      namespace: com.example.sensors
      name: Reading
      fields:
        - name: device
          type: string
        - name: site
          type: string
        - name: temperature
          type: double
          optional: true
        - name: ts
          type: long_timestamp-millis
          watermark: "`ts` - INTERVAL '2' SECONDS"
    options:
      ddl.value.format: json
      ddl.scan.startup.mode: {startup}
---
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Stream
metadata:
  name: summary
spec:
  name: {sink}
  protocol: kafka
  streamMode: [write]
  keys: [device]
---
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Processor
metadata:
  name: sensor-query
spec:
  type: FSQL
  inlineQuery:
    - "{query}"
"""
    path = tmp_path / "sensors.yaml"
    path.write_text(text)
    return path


def readings(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        temperature = None if rng.random() < 0.05 else round(rng.uniform(-10, 45), 2)
        out.append({"device": rng.choice(DEVICES), "site": rng.choice(SITES), "temperature": temperature,
                    "ts": BASE + i * 250 + rng.randint(0, 1_500)})  # out of order by less than the 2 s delay
    return out


def produce_keyed(bootstrap: str, topic: str, rows: list[dict]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for row in rows:  # keyed by device, as the Stream declares: one device, one partition
        producer.produce(topic, key=row["device"].encode(), value=orjson.dumps(row))
    assert producer.flush(30) == 0


def stamp(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000)


def test_hop_windows_count_per_device(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    source, sink = new_topic(partitions=3), new_topic()
    rows = readings(600, seed=1)
    produce_keyed(kafka_bootstrap, source, rows)
    query = ("INSERT INTO [[STREAM:summary]] SELECT window_start, window_end, device, COUNT(*) AS n "
             "FROM TABLE(HOP(TABLE [[STREAM:sensors]], DESCRIPTOR(ts), INTERVAL '10' SECONDS, INTERVAL '30' SECONDS)) "
             "GROUP BY window_start, window_end, device")
    result = run_dataflow(sensor_pipeline(tmp_path, source, sink, query), kafka_bootstrap)
    assert result.returncode == 0, result.stderr[-3000:]

    expected: dict = defaultdict(int)
    for row in rows:  # every 10 s-aligned start within 30 s before ts
        start = row["ts"] - row["ts"] % 10_000
        while start > row["ts"] - 30_000:
            expected[(start, start + 30_000, row["device"])] += 1
            start -= 10_000
    got = {}
    for key, value, _, _, _ in read_all(kafka_bootstrap, sink):
        out = orjson.loads(value)
        assert orjson.loads(key) == {"device": out["device"]}
        got[(stamp(out["window_start"]), stamp(out["window_end"]), out["device"])] = out["n"]
    assert got == dict(expected)


def test_sum_avg_min_max_with_a_two_column_group_by(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    source, sink = new_topic(partitions=2), new_topic()
    rows = readings(800, seed=2)
    produce_keyed(kafka_bootstrap, source, rows)
    query = ("INSERT INTO [[STREAM:summary]] SELECT window_start, window_end, site, device, COUNT(temperature) AS n, "
             "SUM(temperature) AS total, AVG(temperature) AS mean, MIN(temperature) AS low, MAX(temperature) AS high "
             "FROM TABLE(TUMBLE(TABLE [[STREAM:sensors]], DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
             "WHERE site <> 'nowhere' GROUP BY window_start, window_end, site, device")
    result = run_dataflow(sensor_pipeline(tmp_path, source, sink, query), kafka_bootstrap)
    assert result.returncode == 0, result.stderr[-3000:]

    temps: dict = defaultdict(list)
    for row in rows:
        temps[(row["ts"] - row["ts"] % 60_000, row["site"], row["device"])].append(row["temperature"])
    got = {}
    for _, value, _, _, _ in read_all(kafka_bootstrap, sink):
        out = orjson.loads(value)
        assert list(out) == ["window_start", "window_end", "site", "device", "n", "total", "mean", "low", "high"]
        got[(stamp(out["window_start"]), out["site"], out["device"])] = out
    assert set(got) == set(temps)
    for ident, values in temps.items():
        present = [v for v in values if v is not None]
        out = got[ident]
        assert out["n"] == len(present)
        assert out["total"] == pytest.approx(sum(present))
        assert out["mean"] == pytest.approx(sum(present) / len(present))
        assert (out["low"], out["high"]) == (min(present), max(present))


def test_stateless_filter_and_projection(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    source, sink = new_topic(), new_topic()
    rows = readings(300, seed=3)
    values = [orjson.dumps(r) for r in rows]
    values.insert(50, b"not json at all")
    produce(kafka_bootstrap, source, values, partition=0)
    query = ("INSERT INTO [[STREAM:summary]] SELECT device, temperature AS celsius FROM [[STREAM:sensors]] "
             "WHERE temperature > 30 AND device IN ('d1', 'd2')")
    result = run_dataflow(sensor_pipeline(tmp_path, source, sink, query), kafka_bootstrap)
    assert result.returncode == 0, result.stderr[-3000:]

    expected = [{"device": r["device"], "celsius": r["temperature"]} for r in rows
                if r["temperature"] is not None and r["temperature"] > 30 and r["device"] in ("d1", "d2")]
    assert [orjson.loads(v) for _, v, _, _, _ in read_all(kafka_bootstrap, sink)] == expected
    dead = read_all(kafka_bootstrap, source + "-dlq", expect=1)
    assert [v for _, v, _, _, _ in dead] == [b"not json at all"]


def test_latest_offset_skips_what_was_there_and_metrics_are_served(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    source, sink = new_topic(), new_topic()
    old = [{"device": "d1", "site": "north", "temperature": 1.0, "ts": BASE + i} for i in range(10)]
    produce(kafka_bootstrap, source, [orjson.dumps(r) for r in old], partition=0)
    query = ("INSERT INTO [[STREAM:summary]] SELECT window_start, window_end, device, COUNT(*) AS n "
             "FROM TABLE(TUMBLE(TABLE [[STREAM:sensors]], DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
             "GROUP BY window_start, window_end, device")
    port = free_port()
    proc = start_dataflow(sensor_pipeline(tmp_path, source, sink, query, startup="latest-offset"), kafka_bootstrap,
                          env={"BYTEWAX_DATAFLOW_API_ENABLED": "true", "BYTEWAX_DATAFLOW_API_PORT": str(port),
                               "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(tmp_path)})
    try:
        metrics = scrape(f"http://127.0.0.1:{port}/metrics", timeout_s=30)
        time.sleep(2)  # the readers have taken their starting offsets
        new = [{"device": "d2", "site": "south", "temperature": 2.0, "ts": BASE + 118_500 + i} for i in range(5)]  # near the end of its window: quiet input closes it soon
        produce(kafka_bootstrap, source, [orjson.dumps(r) for r in new], partition=0)
        records = read_all(kafka_bootstrap, sink, timeout_s=60, expect=1)
        assert [(orjson.loads(v)["device"], orjson.loads(v)["n"]) for _, v, _, _, _ in records] == [("d2", 5)]
        metrics = scrape(f"http://127.0.0.1:{port}/metrics", timeout_s=10)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert 'iot_records_in_total{processor="sensor-query"} 5.0' in metrics
    assert 'iot_results_out_total{processor="sensor-query"} 1.0' in metrics
    assert 'iot_watermark_ms{partition="' in metrics or "iot_watermark_ms{" in metrics
    assert "iot_watermark_lag_seconds" in metrics and "iot_open_windows" in metrics
