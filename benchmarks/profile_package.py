"""Profile contender (c), the package in bounded mode with one worker, with
pyinstrument: where does the time of one run go?

    python benchmarks/profile_package.py [--events 500000] [--format avro-confluent] [--html out.html]

The dataflow runs in this process through `bytewax.testing.run_main` (one
worker on the calling thread, as `python -m bytewax.run` with one worker),
so the sampling profiler sees every Python frame the Rust runtime calls.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--format", choices=("avro-confluent", "json"), default="avro-confluent")
    p.add_argument("--html", help="also write pyinstrument's HTML report here")
    p.add_argument("--fetch-queue-backoff-ms", type=int, default=10, help="as in e2e.py; -1 for librdkafka's default")
    p.add_argument("--interval", type=float, default=0.001, help="sampling interval, seconds")
    args = p.parse_args()

    from pyinstrument import Profiler

    from benchmarks.throughput import Bench, Setup, package_env
    from benchmarks.pipeline_yaml import write_pipeline

    setup = Setup(args.bootstrap, args.events, args.partitions, (args.format,), frozenset(),
                  fetch_queue_backoff_ms=args.fetch_queue_backoff_ms)
    bench = Bench(setup)
    try:
        inputs, _data = bench.load()
        pipeline = write_pipeline(bench.tmp, inputs[args.format], bench.topic("out"), args.format, setup.consumer_properties)
        os.environ.update(package_env(pipeline, args.bootstrap))
        from bytewax.testing import run_main

        import dataflows.iot

        profiler = Profiler(interval=args.interval)
        started = time.perf_counter()
        with profiler:
            run_main(dataflows.iot.flow)
        seconds = time.perf_counter() - started
        from benchmarks.runner import engine_revision

        print(f"iot-monitoring at {engine_revision()}")
        print(f"{args.events:,} {args.format} events in {seconds:.2f} s = {args.events / seconds:,.0f} events/s (profiled)")
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        if args.html:
            Path(args.html).write_text(profiler.output_html())
    finally:
        bench.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
