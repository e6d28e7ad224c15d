"""What the hand-written contenders share: their command line, the
record-by-record decoders, and how they publish their counts."""

from __future__ import annotations

import argparse
import io
import json
from typing import Any, Callable

import fastavro
import orjson
from confluent_kafka import Producer

from benchmarks.pipeline_yaml import seed_schema_json

WINDOW_MS = 60_000


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True, help="input topic")
    parser.add_argument("--output", help="topic for the counts")
    parser.add_argument("--format", choices=("avro-confluent", "json"), default="avro-confluent")
    parser.add_argument("--events", type=int, default=0, help="number of input records (for engines that stop by count)")
    parser.add_argument("--fetch-queue-backoff-ms", type=int, default=-1,
                        help="librdkafka fetch.queue.backoff.ms for the consumer (-1: the library's default)")
    return parser.parse_args()


def consumer_tuning(backoff_ms: int) -> dict[str, str]:
    """The one consumer setting every contender gets alike (see docs/performance.md):
    librdkafka stops fetching a partition for fetch.queue.backoff.ms (1 s by
    default) whenever its local queue is full, which at these rates is most
    of the time."""
    return {} if backoff_ms < 0 else {"fetch.queue.backoff.ms": str(backoff_ms)}


def long_schema() -> Any:
    """The seed's writer schema with `ts` read as the plain long it is on the
    wire (fastavro would otherwise build a datetime for every record)."""
    schema = json.loads(seed_schema_json())
    for field in schema["fields"]:
        if isinstance(field["type"], dict) and field["type"].get("logicalType") == "timestamp-millis":
            field["type"] = "long"
    return fastavro.parse_schema(schema)


def record_decoder(fmt: str) -> Callable[[bytes], dict]:
    """One value -> one dict, the usual way for each format."""
    if fmt == "json":
        return orjson.loads
    schema = long_schema()
    reader = fastavro.schemaless_reader

    def decode_confluent(value: bytes) -> dict:
        buf = io.BytesIO(value)
        buf.seek(5)  # magic byte and schema id
        return reader(buf, schema, None)

    return decode_confluent


def publish_counts(bootstrap: str, topic: str, counts: dict[tuple[int, str], int]) -> None:
    """One JSON record per (window, code), keyed by the code."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 3})
    for (start, code), n in sorted(counts.items()):
        value = {"window_start_ms": start, "window_end_ms": start + WINDOW_MS, "error_code": code, "error_count": n}
        producer.produce(topic, orjson.dumps(value), code.encode())
    if producer.flush(60) != 0:
        raise RuntimeError(f"counts not written to {topic}")
