"""How long one partition batch takes in the partition stage, without Kafka:
the stage as it is, the same work keeping only per-group counts, and
decoding alone.

    python benchmarks/stage_micro.py [--batch 2000] [--format avro-confluent] [--rounds 200]

The second variant decodes with the package's own decoder, then filters,
assigns tumbling windows, computes the per-row watermark (running maximum of
ts - delay, as it stood before each row) and, per (window, key), the count
and how many rows came before the partition's own watermark passed the
window's end, all in one polars expression: no Python value per row. It is
a measure of what that could gain, not a replacement: it handles COUNT(*)
over a TUMBLE window only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--format", choices=("avro-confluent", "json"), default="avro-confluent")
    p.add_argument("--rounds", type=int, default=200)
    args = p.parse_args()

    import tempfile

    import polars as pl

    from benchmarks.dataset import EventMaker, encode_values
    from benchmarks.pipeline_yaml import INPUT_STREAM, seed_schema_json, write_pipeline
    from config import load_pipeline
    from config.sql import compile_query
    from engine.partition_stage import PartitionStage
    from engine.records import PartitionId, RawRecord, RecordList
    from engine.serde import make_decoder

    with tempfile.TemporaryDirectory() as tmp:
        pipeline = load_pipeline(str(write_pipeline(Path(tmp), "in", "out", args.format)), env={})
    stream = pipeline.streams[INPUT_STREAM]
    plan = compile_query(pipeline.query_processors[0], pipeline)
    columns = tuple(c for c in plan.columns_needed if (f := stream.field_named(c)) is None or f.in_record)
    assert plan.window is not None and stream.time_attribute is not None
    size, delay = plan.window.size_ms, stream.time_attribute.watermark_delay_ms

    maker = EventMaker()
    batches = []
    for _ in range(args.rounds):
        values = encode_values(args.format, seed_schema_json(), maker.chunk(args.batch))
        batches.append([RawRecord("in", 0, i, None, v, None, 0) for i, v in enumerate(values)])

    stage = PartitionStage(plan, stream, pipeline.settings, make_decoder(stream, columns), PartitionId("in", 0), (PartitionId("in", 0),), "dlq")
    started = time.perf_counter()
    for records in batches:
        stage.process(RecordList(records))
    as_is = (time.perf_counter() - started) / args.rounds

    decoder = make_decoder(stream, columns)
    key = plan.group_by[0]
    watermark = -(2**62)
    started = time.perf_counter()
    for records in batches:
        frame = decoder.decode([r.value for r in records]).frame
        ts = pl.col(stream.time_attribute.column)
        before = (ts - delay).cum_max().shift(1, fill_value=watermark).clip(lower_bound=watermark)
        groups = (
            frame.with_columns(window=ts - ts % size, local=before)
            .filter(plan.predicate.polars().fill_null(False))
            .group_by("window", key)
            .agg(pl.len().alias("n"), (pl.col("local") < pl.col("window") + size - 1).sum().alias("on_time"))
        )
        watermark = max(watermark, int(frame.get_column(stream.time_attribute.column).max()) - delay)
        groups.rows()
    vectorised = (time.perf_counter() - started) / args.rounds

    decode_only = time.perf_counter()
    for records in batches:
        decoder.decode([r.value for r in records]).frame
    decode = (time.perf_counter() - decode_only) / args.rounds

    def per_record(seconds: float) -> str:
        return f"{seconds * 1e3:.2f} ms ({seconds / args.batch * 1e9:,.0f} ns/record)"

    print(f"{args.format}, batches of {args.batch}: stage as it is {per_record(as_is)}; "
          f"per-group counts only {per_record(vectorised)}; decoding alone {per_record(decode)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
