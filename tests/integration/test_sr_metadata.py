"""Columns that are not in the record value, end to end on real Kafka: event
time from a Kafka header (decimal text or 8 bytes big-endian, as the
Streaming Runtime's producers wrote it), and `SELECT *` of a filter query
with the Kafka metadata and processing-time columns, as Flink's table has
them. Expected rows are computed here from the records sent."""

from __future__ import annotations

import random
import struct
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from engine.serde import format_timestamp_ms
from tests.support.kafka_io import read_all
from tests.support.pipeline import run_dataflow

pytestmark = pytest.mark.broker

BASE = 1_645_020_000_000


def pipeline_yaml(tmp_path: Path, source: str, counts: str, copies: str) -> Path:
    text = f"""
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Stream
metadata:
  name: readings-stream
spec:
  name: {source}
  protocol: kafka
  dataSchemaContext:
    schema:
      namespace: org.example.plant
      name: Readings
      fields:
        - name: device
          type: string
        - name: reading
          type: double
    metadataFields:
      - name: sent_at
        type: long_timestamp-millis
        metadata:
          from: header.sent-at
        watermark: "`sent_at` - INTERVAL '1' SECOND"
      - name: part
        type: int
        metadata:
          from: partition
      - name: pos
        type: long
        metadata:
          from: offset
    timeAttributes:
      - name: arrived
    options:
      ddl.value.format: json
      ddl.scan.startup.mode: earliest-offset
---
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Processor
metadata:
  name: readings-per-device
spec:
  type: FSQL
  inlineQuery:
    - "INSERT INTO [[STREAM:counts-stream]] SELECT window_start, window_end, device, COUNT(*) AS n
       FROM TABLE(TUMBLE(TABLE [[STREAM:readings-stream]], DESCRIPTOR(sent_at), INTERVAL '10' SECONDS))
       GROUP BY window_start, window_end, device"
---
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Processor
metadata:
  name: high-readings
spec:
  type: FSQL
  inlineQuery:
    - "INSERT INTO [[STREAM:copies-stream]] SELECT * FROM [[STREAM:readings-stream]] WHERE reading > 10"
---
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Stream
metadata:
  name: counts-stream
spec:
  name: {counts}
  protocol: kafka
  keys: [device]
---
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Stream
metadata:
  name: copies-stream
spec:
  name: {copies}
  protocol: kafka
"""
    path = tmp_path / "readings.yaml"
    path.write_text(text)
    return path


def test_header_event_time_and_select_star_with_metadata(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    from confluent_kafka import Producer

    source, counts_topic, copies_topic = new_topic(partitions=2), new_topic(), new_topic()
    rng = random.Random(4)
    sent = []  # (partition, device, reading, sent_at or None, header bytes or None)
    for i in range(400):
        ts = BASE + i * 100 + rng.randrange(800)  # out of order by less than the 1 s delay
        header = str(ts).encode() if i % 2 else struct.pack(">q", ts)
        sent.append((i % 2, rng.choice("abc"), round(rng.uniform(0, 20), 1), ts, header))
    sent.insert(57, (1, "a", 15.0, None, None))  # no header: NULL, which event time cannot be
    sent.insert(120, (0, "b", 16.0, None, b"soon"))  # a header that is no number: a dead letter for both queries
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    offsets = {0: 0, 1: 0}
    positions = []
    for part, device, reading, _, header in sent:
        producer.produce(source, partition=part, value=orjson.dumps({"device": device, "reading": reading}),
                         headers=[("sent-at", header)] if header is not None else None)
        positions.append(offsets[part])
        offsets[part] += 1
    assert producer.flush(30) == 0
    started_ms = time.time() * 1000
    result = run_dataflow(pipeline_yaml(tmp_path, source, counts_topic, copies_topic), kafka_bootstrap,
                          processors="readings-per-device,high-readings")
    assert result.returncode == 0, result.stderr[-3000:]

    timed = [(part, device, ts) for part, device, _, ts, header in sent if ts is not None]
    # per partition, a row is late when its window's end - 1 <= the watermark of both partitions before it;
    # the rows are less out of order than the delay and the partitions advance together: none is late
    expected = Counter((ts - ts % 10_000, device) for _, device, ts in timed)
    got = {}
    for key, value, _, _, _ in read_all(kafka_bootstrap, counts_topic):
        row = orjson.loads(value)
        got[(row["window_start"], row["device"])] = row["n"]
    assert got == {(format_timestamp_ms(start), device): n for (start, device), n in expected.items()}

    copies = [orjson.loads(v) for _, v, _, _, _ in read_all(kafka_bootstrap, copies_topic)]
    wanted = [(part, pos, device, reading, ts) for (part, device, reading, ts, header), pos in zip(sent, positions)
              if reading > 10 and header != b"soon"]
    assert sorted((c["part"], c["pos"], c["device"], c["reading"], c["sent_at"]) for c in copies) == sorted(
        (part, pos, device, reading, None if ts is None else format_timestamp_ms(ts)) for part, pos, device, reading, ts in wanted)
    assert list(copies[0]) == ["device", "reading", "sent_at", "part", "pos", "arrived"]  # Flink's column order
    arrived = [c["arrived"] for c in copies]
    assert all(format_timestamp_ms(int(started_ms) - 1000) <= a <= format_timestamp_ms(int(time.time() * 1000)) for a in arrived)

    reasons = Counter(dict(h)["x-dlq-reason"].split(b":")[0] for _, _, h, _, _ in read_all(kafka_bootstrap, source + "-dlq"))
    assert reasons == {b"missing-field": 1, b"wrong-type": 2}  # the missing header is the windowed query's only
