"""Decode throughput of the stream value formats, in records per second.

    .venv/bin/python -m benchmarks.decode [--records 100000] [--batch 1000]

Compares a per-record fastavro decode (what a straightforward deserializer
does) with the batch decoder of `engine.serde`, on the seed's
MonitoringStream records with the Confluent framing, and the JSON paths
(the native decoder, and msgspec, which a build without it uses).
Each figure is the best of `--repeat` runs over the same records.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import fastavro
import orjson

from cli.datagen import (
    MONITORING_SCHEMA,
    EventGenerator,
    GeneratorSettings,
    event_times,
)
from config.pipeline import StreamSpec, TimeAttribute
from engine.serde import make_decoder

START_MS = 1_645_020_000_000


def batches(values: Sequence[bytes], size: int) -> list[Sequence[bytes]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def best_rate(run: Callable[[], object], records: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return records / best


@contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Collect what native code writes to fd 2 (polars prints a line per Rust
    panic, caught and handled by the decoder), to count it instead of showing it."""
    lines: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    schema_json = json.dumps(MONITORING_SCHEMA)
    times = event_times(START_MS, 1000, 0, args.records)
    avro_values = [m.value for m in EventGenerator(GeneratorSettings(), seed=1).messages(times)]
    json_values = [m.value for m in EventGenerator(GeneratorSettings(value_format="json"), seed=1).messages(times)]
    damaged = list(avro_values)
    for i in range(0, len(damaged), args.batch):  # one truncated record in every batch: the fallback's cost
        damaged[i] = damaged[i][:-3]

    def spec(fmt: str) -> StreamSpec:
        return StreamSpec(
            name="iot-monitoring-stream", topic="iot-monitoring", protocol="kafka", servers="", value_format=fmt,
            avro_schema_json=schema_json, time_attribute=TimeAttribute("ts", 3000),
        )  # fmt: skip

    parsed = fastavro.parse_schema(MONITORING_SCHEMA)
    avro_decoder = make_decoder(spec("avro-confluent"), ["ts", "type", "error_code"])
    json_decoder = make_decoder(spec("json"), ["ts", "type", "error_code"])

    def fastavro_per_record() -> None:
        for v in avro_values:
            fastavro.schemaless_reader(io.BytesIO(v[5:]), parsed, None)

    def batch_avro(values: Sequence[bytes], view: str) -> Callable[[], None]:
        def run() -> None:
            for chunk in batches(values, args.batch):
                _ = getattr(avro_decoder.decode(chunk), view)

        return run

    def orjson_per_record() -> None:
        for v in json_values:
            orjson.loads(v)

    def batch_json() -> None:
        for chunk in batches(json_values, args.batch):
            _ = json_decoder.decode(chunk).columns

    def batch_json_frame() -> None:
        for chunk in batches(json_values, args.batch):
            _ = json_decoder.decode(chunk).frame

    def msgspec_json_frame() -> None:  # the path a build without the native module takes
        for chunk in batches(json_values, args.batch):
            _ = json_decoder._decode_clean(chunk).frame

    n, r = args.records, args.repeat
    with captured_native_stderr() as native_lines:
        damaged_rate = best_rate(batch_avro(damaged, "columns"), n, r)
    panics = sum("panicked" in line for line in native_lines)
    results = [
        ("avro-confluent: fastavro.schemaless_reader per record", best_rate(fastavro_per_record, n, r)),
        ("avro-confluent: batch decoder, polars frame", best_rate(batch_avro(avro_values, "frame"), n, r)),
        ("avro-confluent: batch decoder, Python lists", best_rate(batch_avro(avro_values, "columns"), n, r)),
        ("avro-confluent: batch decoder, 1 bad record per batch", damaged_rate),
        ("json: orjson.loads per record", best_rate(orjson_per_record, n, r)),
        ("json: batch decoder with schema checks, lists", best_rate(batch_json, n, r)),
        ("json: batch decoder with schema checks, polars frame", best_rate(batch_json_frame, n, r)),
        ("json: the same without the native decoder (msgspec)", best_rate(msgspec_json_frame, n, r)),
    ]
    baseline = results[0][1]
    print(f"{n:,} MonitoringStream records, batches of {args.batch}, best of {r}")
    for label, rate in results:
        print(f"  {label:<56} {rate:>12,.0f} records/s  {rate / baseline:5.2f}x")
    batches_run = r * len(batches(damaged, args.batch))
    print(f"  (with a bad record in every batch, polars panicked on {panics} of {batches_run} batches; caught)")


if __name__ == "__main__":
    main()
