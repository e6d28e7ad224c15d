"""Memory of the package over one long bounded run: its resident set after a
tenth of the input (1M of the default 10M events) and at the end of it.

The state of the query is bounded by open windows x keys, not by events, so
the two should be close. Progress is read from the dataflow's own Prometheus
counter (`iot_records_in_total`, served on Bytewax's API port), and the
resident set from /proc/<pid>/status, both sampled a few times a second.
"""

from __future__ import annotations

import argparse
import re
import time
import urllib.request
from dataclasses import dataclass

from benchmarks.pipeline_yaml import write_pipeline
from benchmarks.runner import engine_revision, finish, proc_status_kb, python_cmd, start
from benchmarks.throughput import Bench, Setup, free_ports, package_env

RECORDS_IN = re.compile(r"^iot_records_in_total\{[^}]*\}\s+([0-9.e+]+)$", re.M)
OPEN_WINDOWS = re.compile(r"^iot_open_windows\{[^}]*\}\s+([0-9.e+]+)$", re.M)


@dataclass
class Sample:
    seconds: float
    records_in: int
    rss_mb: float
    open_windows: int


def scrape(port: int) -> tuple[int, int] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    records = RECORDS_IN.search(text)
    windows = OPEN_WINDOWS.search(text)
    if records is None:
        return None
    return int(float(records.group(1))), int(float(windows.group(1))) if windows else 0


def first_at(samples: list[Sample], records: int) -> Sample | None:
    """The first sample taken once `records` had been read."""
    return next((s for s in samples if s.records_in >= records), None)


def memory(args: argparse.Namespace) -> int:
    events = args.events or 10_000_000
    fmt = "avro-confluent" if "avro-confluent" in args.formats else args.formats.split(",")[0]
    setup = Setup(args.bootstrap, events, args.partitions, (fmt,), frozenset(), args.event_rate,
                  args.keep_topics, args.timeout, args.fetch_queue_backoff_ms)
    bench = Bench(setup)
    try:
        print(f"iot-monitoring at {engine_revision()}")
        inputs, data = bench.load()
        pipeline = write_pipeline(bench.tmp, inputs[fmt], bench.topic("out"), fmt, setup.consumer_properties)
        port = free_ports(1)[0]
        env = dict(package_env(pipeline, args.bootstrap), BYTEWAX_DATAFLOW_API_ENABLED="true",
                   BYTEWAX_DATAFLOW_API_PORT=str(port))
        proc, log, started = start(python_cmd("-m", "bytewax.run", "dataflows.iot"), env)
        samples: list[Sample] = []
        next_sample = 0.0

        def sample(pid: int) -> None:
            nonlocal next_sample
            now = time.perf_counter()
            if now < next_sample:
                return
            next_sample = now + 0.25
            got = scrape(port)
            rss = proc_status_kb(pid, "VmRSS") / 1024
            if got is not None and rss:
                samples.append(Sample(now - started, got[0], rss, got[1]))

        result = finish(proc, log, started, args.timeout, sample).check("iot-monitoring")
    finally:
        bench.cleanup()

    tenth = events // 10
    early = first_at(samples, tenth)
    if early is None:
        print("memory: the run ended before the metrics showed progress (is BYTEWAX_DATAFLOW_API_ENABLED honoured?)")
        return 1
    # The highest resident set after the first tenth: growing state would show
    # here. (The last samples are lower: finished partitions close their consumers.)
    later = [x for x in samples if x.records_in >= early.records_in]
    highest = max(later, key=lambda x: x.rss_mb)
    print(f"\n{fmt}: {events:,} events, {args.partitions} partitions, {data.events / result.seconds:,.0f} events/s, "
          f"{len(samples)} samples")
    print(f"  {'records read':>14} {'RSS':>9} {'open windows':>13}")
    for x in samples[:: max(1, len(samples) // 20)]:
        print(f"  {x.records_in:>14,} {x.rss_mb:>6.0f} MB {x.open_windows:>13}")
    growth = highest.rss_mb / early.rss_mb - 1
    verdict = "met" if growth <= 0.10 else f"missed by {growth * 100 - 10:.0f} points"
    print(f"  RSS at {early.records_in:,} records: {early.rss_mb:.0f} MB; highest after that: {highest.rss_mb:.0f} MB "
          f"at {highest.records_in:,}; at the last sample ({samples[-1].records_in:,}): {samples[-1].rss_mb:.0f} MB; "
          f"peak of the run {result.peak_rss_mb:.0f} MB; open windows at most {max(x.open_windows for x in samples)}")
    print(f"memory rss_at_tenth_mb={early.rss_mb:.0f} highest_after_mb={highest.rss_mb:.0f} growth={growth * 100:+.1f}% "
          f"(target <= +10%: {verdict})")
    return 0
