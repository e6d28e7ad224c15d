"""Latency of window results under live traffic.

The package runs unbounded on a fresh topic; the project's generator
(`iot-monitoring generate`) writes events at a fixed rate with `ts` = the
wall clock. A window [start, end) fires once every partition has read an
event with ts >= end - 1 + 3 s (the watermark is ts - 3 s), and the first
such event is stamped at wall time end + 2.999 s; so each result's latency
is its arrival on the error-count topic (read by this process, as a
consumer would) minus (window end + 2.999 s). It includes the generator's
pacing (chunks every 50 ms), both Kafka hops and the engine.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import orjson
from confluent_kafka import Consumer, TopicPartition

from benchmarks.pipeline_yaml import write_pipeline
from benchmarks.results import parse_timestamp
from benchmarks.runner import engine_revision, finish, python_cmd, start
from benchmarks.throughput import Bench, Setup, package_env

WATERMARK_DELAY_MS = 3000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency(args: argparse.Namespace) -> int:
    fmt = "avro-confluent" if "avro-confluent" in args.formats else args.formats.split(",")[0]
    setup = Setup(args.bootstrap, 0, args.partitions, (fmt,), frozenset(), keep_topics=args.keep_topics,
                  fetch_queue_backoff_ms=args.fetch_queue_backoff_ms)
    bench = Bench(setup)
    samples: list[tuple[int, float]] = []  # (window end ms, latency ms)
    try:
        source = bench.topic(f"live-{fmt}", args.partitions)
        sink = bench.topic("live-out")
        pipeline = write_pipeline(bench.tmp, source, sink, fmt, setup.consumer_properties)
        env = dict(package_env(pipeline, args.bootstrap), IOT_BOUNDED="")
        flow, flow_log, flow_started = start(python_cmd("-m", "bytewax.run", "dataflows.iot"), env)
        reader = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                           "enable.auto.commit": False, "fetch.wait.max.ms": 5, "log_level": 3})
        reader.assign([TopicPartition(sink, 0, 0)])
        time.sleep(3.0)  # let the dataflow assign its partitions before traffic starts
        generator, gen_log, gen_started = start(python_cmd(
            "-m", "cli.main", "generate", "--bootstrap", args.bootstrap, "--topic", source, "--config", str(pipeline),
            "--rate", str(args.rate), "--duration", str(args.duration), "--no-progress"))
        print(f"iot-monitoring at {engine_revision()}")
        print(f"latency: {args.rate:,.0f} events/s for {args.duration:.0f} s into {args.partitions} partitions ({fmt}) ...")
        traffic_ended_ms = None
        while True:
            msg = reader.poll(0.05)
            now_ms = time.time() * 1000
            if msg is not None and msg.error() is None:
                row = orjson.loads(msg.value())
                end_ms = parse_timestamp(row["window_end"])
                samples.append((end_ms, now_ms - (end_ms - 1 + WATERMARK_DELAY_MS)))
            if traffic_ended_ms is None and generator.poll() is not None:
                traffic_ended_ms = now_ms
            if traffic_ended_ms is not None and now_ms > traffic_ended_ms + 2000:
                break
        reader.close()
        gen_log.seek(0)
        gen_output = gen_log.read().strip()
        flow.terminate()
        flow_run = finish(flow, flow_log, flow_started, 30)
    finally:
        bench.cleanup()

    if generator.returncode != 0:
        print(f"latency: the generator failed:\n{gen_output}")
        return 1
    print(f"  generator: {gen_output.splitlines()[-1] if gen_output else '(no output)'}")
    if not samples:
        print("latency: no window result arrived while the traffic ran (windows are 1 minute: give a --duration "
              "over 65 s); the dataflow said:\n" + "\n".join(flow_run.output.splitlines()[-20:]))
        return 1
    windows = sorted({end for end, _ in samples})
    values = [lat for _, lat in samples]
    for end in windows:
        these = [lat for e, lat in samples if e == end]
        print(f"  window ending {time.strftime('%H:%M:%S', time.gmtime(end / 1000))}: {len(these)} results, "
              f"{min(these):.0f}-{max(these):.0f} ms")
    p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
    verdict = "met" if p99 < 250 else f"missed by {p99 - 250:.0f} ms"
    print(f"latency kafka p50_ms={p50:.0f} p99_ms={p99:.0f} mean_ms={statistics.fmean(values):.0f} "
          f"samples={len(values)} windows={len(windows)} (target p99 < 250 ms: {verdict})")
    return 0
