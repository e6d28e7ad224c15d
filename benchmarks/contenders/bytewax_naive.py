"""(f) The obvious Bytewax dataflow for the query: Bytewax's KafkaSource
(bounded with `tail=False`) -> deserialize each record -> filter ->
`count_window` keyed by error_code with an `EventClock` (3 s wait) and a
1-minute `TumblingWindower` -> Bytewax's KafkaSink.

Run: `python -m bytewax.run benchmarks.contenders.bytewax_naive` with
BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_FORMAT (and BENCH_FETCH_QUEUE_BACKOFF_MS) set.
"""

from __future__ import annotations

import io
import json
import os
from datetime import datetime, timedelta, timezone

import bytewax.operators as op
import fastavro
import orjson
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import EventClock, TumblingWindower, count_window

from benchmarks.contenders.common import consumer_tuning
from benchmarks.pipeline_yaml import seed_schema_json

ALIGN = datetime(2022, 1, 1, tzinfo=timezone.utc)
LENGTH = timedelta(minutes=1)


def decoder(fmt: str):
    if fmt == "json":
        def from_json(value: bytes) -> dict:
            record = orjson.loads(value)
            record["ts"] = datetime.fromtimestamp(record["ts"] / 1000, timezone.utc)
            return record
        return from_json
    schema = fastavro.parse_schema(json.loads(seed_schema_json()))

    def from_avro(value: bytes) -> dict:
        return fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)  # ts comes out as a datetime
    return from_avro


def build(bootstrap: str, input_topic: str, output_topic: str, fmt: str, consumer_config: dict[str, str]) -> Dataflow:
    decode = decoder(fmt)
    flow = Dataflow("naive-error-count")
    messages = op.input("read", flow, KafkaSource([bootstrap], [input_topic], tail=False, add_config=consumer_config))
    records = op.map("decode", messages, lambda msg: decode(msg.value))
    errors = op.filter("errors", records, lambda r: r["type"] == "ERROR")
    clock = EventClock(lambda r: r["ts"], wait_for_system_duration=timedelta(seconds=3))
    counted = count_window("count", errors, clock, TumblingWindower(length=LENGTH, align_to=ALIGN),
                           key=lambda r: r["error_code"])

    def as_message(item: tuple[str, tuple[int, int]]) -> KafkaSinkMessage:
        code, (window_id, n) = item
        start = ALIGN + window_id * LENGTH
        start_ms = int(start.timestamp() * 1000)
        value = {"window_start_ms": start_ms, "window_end_ms": start_ms + 60_000, "error_code": code, "error_count": n}
        return KafkaSinkMessage(code.encode(), orjson.dumps(value))

    def late_message(item: tuple[str, tuple[int, dict]]) -> KafkaSinkMessage:
        code, (window_id, _record) = item
        start_ms = int((ALIGN + window_id * LENGTH).timestamp() * 1000)
        return KafkaSinkMessage(code.encode(), orjson.dumps({"late_window_start_ms": start_ms, "error_code": code}))

    results = op.merge("results-and-late", op.map("encode", counted.down, as_message),
                       op.map("encode-late", counted.late, late_message))
    op.output("write", results, KafkaSink([bootstrap], output_topic))
    return flow


flow = build(os.environ["BENCH_BOOTSTRAP"], os.environ["BENCH_INPUT"], os.environ["BENCH_OUTPUT"],
             os.environ.get("BENCH_FORMAT", "avro-confluent"),
             consumer_tuning(int(os.environ.get("BENCH_FETCH_QUEUE_BACKOFF_MS", "-1"))))
