"""Throughput of the query against its peers, on the same broker and data.

The data is loaded once per format into a fresh topic; then, one after
another, each contender reads it all, from process start to process exit:

  (a) transport limit   raw confluent-kafka consumer, no decoding
  (b) Python limit      one loop: consume, decode, filter, count
  (c) this package      bounded mode, 1 process, 1 worker
  (d) this package      bounded mode, 2 processes
  (e) Quix Streams      tumbling count, 3 s grace
  (f) naive Bytewax     KafkaSource -> decode -> filter -> count_window

With a secured listener of the same broker (`Setup.secure`), (c) also runs
over it, (s), on the same data, each run of (c) followed by one of (s), and
`s/c` is the cost of TLS and SASL.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.contenders.common import consumer_tuning
from benchmarks.dataset import LoadedData, load
from benchmarks.pipeline_yaml import seed_schema_json, write_pipeline
from benchmarks.results import Agreement, agree, read_output
from benchmarks.runner import Run, engine_revision, python_cmd, run, run_together
from config.kafka_security import as_environment
from connectors.kafka_admin import ensure_topics, wait_for_kafka

CONTENDERS = {
    "a": "raw consumer (transport limit)",
    "b": "plain Python loop",
    "c": "iot-monitoring, 1 process",
    "d": "iot-monitoring, 2 processes",
    "e": "Quix Streams",
    "f": "naive Bytewax",
}
SECURE = "iot-monitoring, 1 process, secured"  # (s): (c) over a TLS listener, when there is one
GRACE_MS = 3000
RATIOS = ("c/a", "c/b", "c/e", "c/f", "d/c")
# What a cluster process prints when its lower-numbered peer is not yet
# listening; it then sleeps a second before trying again.
CONNECT_RETRY = "error connecting to worker"


@dataclass
class Measured:
    letter: str
    seconds: float
    peak_rss_mb: float
    events: int
    cpu_seconds: float
    agreement: Agreement | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_rate(self) -> float:
        """Events per CPU second of the contender's own process(es): steadier than
        wall time on a machine shared with other work, but blind to parallelism
        and to the broker's share of the work."""
        return self.events / max(self.cpu_seconds, 1e-9)


@dataclass
class FormatReport:
    fmt: str
    results: dict[str, Measured] = field(default_factory=dict)

    def ratio(self, name: str) -> float | None:
        top, bottom = name.split("/")
        if top in self.results and bottom in self.results:
            return self.results[top].rate / self.results[bottom].rate
        return None

    def cpu_ratio(self, name: str) -> float | None:
        top, bottom = name.split("/")
        if top in self.results and bottom in self.results:
            return self.results[top].cpu_rate / self.results[bottom].cpu_rate
        return None

    def ratios_line(self) -> str:
        parts = []
        for name in RATIOS:
            value = self.ratio(name)
            parts.append(f"{name}={value:.2f}" if value is not None else f"{name}=n/a")
        return "ratios " + " ".join(parts)


@dataclass
class Setup:
    bootstrap: str
    events: int
    partitions: int
    formats: tuple[str, ...]
    skip: frozenset[str]
    events_per_s: float = 1000.0
    keep_topics: bool = False
    timeout_s: float = 1800.0
    repeat: int = 1  # runs per contender; the fastest counts (others on the machine only ever slow a run down)
    fetch_queue_backoff_ms: int = 10  # given to every contender alike; -1 leaves librdkafka's default (1000)
    secure: dict[str, str] | None = None  # client settings (bootstrap included) of a secured listener of the same broker
    say: Callable[[str], None] = print

    @property
    def consumer_properties(self) -> dict[str, str]:
        return consumer_tuning(self.fetch_queue_backoff_ms)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def package_env(pipeline: Path, bootstrap: str, security: dict[str, str] | None = None) -> dict[str, str]:
    """The package's environment; `security`: a secured listener's settings,
    given as a user gives them, in the KAFKA_* variables."""
    env = {"IOT_PIPELINE": str(pipeline), "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "IOT_BOUNDED": "1",
           "IOT_PROCESSORS": "sql", "PYTHONUNBUFFERED": "1"}
    return {**env, **as_environment(security)} if security else env


def run_package(pipeline: Path, bootstrap: str, processes: int, timeout_s: float,
                security: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Run:
    """`python -m bytewax.run dataflows.iot` with 1 or more processes (`args`:
    more of `bytewax.run`'s, for one process); for a cluster, the slowest
    process's time and the sum of their peak RSS."""
    env = package_env(pipeline, bootstrap, security)
    if processes == 1:
        return run(python_cmd("-m", "bytewax.run", "dataflows.iot", *args), env, timeout_s).check("iot-monitoring")
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))
    runs = run_together([python_cmd("-m", "bytewax.run", "dataflows.iot", "-i", str(i), "-a", addresses)
                         for i in range(processes)], env, timeout_s)
    for i, r in enumerate(runs):
        r.check(f"iot-monitoring process {i}")
    return Run(max(r.seconds for r in runs), sum(r.peak_rss_mb for r in runs), 0, "\n".join(r.output for r in runs),
               sum(r.cpu_seconds for r in runs))


class Bench:
    def __init__(self, setup: Setup):
        self.s = setup
        self.run_id = uuid.uuid4().hex[:6]
        self.admin: AdminClient = wait_for_kafka(setup.bootstrap, 30)
        self.topics: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))

    def topic(self, name: str, partitions: int = 1) -> str:
        """A fresh topic that keeps its records whatever their timestamps:
        Quix Streams stamps each result with its window's start (2022 in this
        data), which the broker's time retention would otherwise delete
        within minutes, under the reader's feet."""
        full = f"bench-{self.run_id}-{name}"
        new = NewTopic(full, num_partitions=partitions, replication_factor=1, config={"retention.ms": "-1"})
        for future in self.admin.create_topics([new], request_timeout=30).values():
            future.result()
        ensure_topics(self.admin, {full: partitions})  # waits until its metadata is visible
        self.topics.append(full)
        return full

    def cleanup(self) -> None:
        if self.topics and not self.s.keep_topics:
            prefix = f"bench-{self.run_id}-"
            every = [t for t in self.admin.list_topics(timeout=10).topics if t.startswith(prefix)]
            for future in self.admin.delete_topics(every, operation_timeout=30).values():
                try:
                    future.result()
                except Exception:  # a topic that is already gone is fine
                    pass

    # --- the steps ----------------------------------------------------------

    def load(self) -> tuple[dict[str, str], LoadedData]:
        s = self.s
        inputs = {fmt: self.topic(f"in-{fmt}", s.partitions) for fmt in s.formats}
        s.say(f"loading {s.events:,} events x {len(inputs)} formats into {s.partitions} partitions ...")
        data = load(s.bootstrap, inputs, s.events, s.partitions, seed_schema_json(), s.events_per_s)
        s.say(f"  loaded in {data.seconds:.1f} s; {sum(data.expected.values()):,} ERROR events in "
              f"{len(data.expected)} (window, code) counts")
        return inputs, data

    def startup_seconds(self) -> float:
        """The package's fixed cost: a bounded run over an empty topic."""
        empty = self.topic("empty", self.s.partitions)
        pipeline = write_pipeline(self.tmp, empty, self.topic("empty-out"), "avro-confluent", self.s.consumer_properties)
        return run_package(pipeline, self.s.bootstrap, 1, 300).seconds

    def contender(self, letter: str, fmt: str, input_topic: str, data: LoadedData) -> Measured:
        s = self.s
        out = self.topic(f"out-{fmt}-{letter}-{len(self.topics)}")  # unique across --repeat runs
        common = ["--bootstrap", s.bootstrap, "--input", input_topic, "--output", out, "--format", fmt,
                  "--events", str(data.events), "--fetch-queue-backoff-ms", str(s.fetch_queue_backoff_ms)]
        kind = "plain"
        closed_before = None
        if letter == "a":
            result = run(python_cmd("-m", "benchmarks.contenders.raw_consume", *common), None, s.timeout_s).check("raw consumer")
        elif letter == "b":
            result = run(python_cmd("-m", "benchmarks.contenders.plain_loop", *common), None, s.timeout_s).check("plain loop")
        elif letter in "cd":
            pipeline = write_pipeline(self.tmp, input_topic, out, fmt, s.consumer_properties)
            result = run_package(pipeline, s.bootstrap, 1 if letter == "c" else 2, s.timeout_s)
            kind = "package"
        elif letter == "s":
            assert s.secure is not None
            pipeline = write_pipeline(self.tmp, input_topic, out, fmt, s.consumer_properties)
            result = run_package(pipeline, s.secure["bootstrap.servers"], 1, s.timeout_s, s.secure)
            kind = "package"
        elif letter == "e":
            result = run(python_cmd("-m", "benchmarks.contenders.quix_count", *common), None, s.timeout_s).check("Quix Streams")
            kind = "quix"
            closed_before = data.closed_before_ms(GRACE_MS)
        elif letter == "f":
            env = {"BENCH_BOOTSTRAP": s.bootstrap, "BENCH_INPUT": input_topic, "BENCH_OUTPUT": out, "BENCH_FORMAT": fmt,
                   "BENCH_FETCH_QUEUE_BACKOFF_MS": str(s.fetch_queue_backoff_ms)}
            result = run(python_cmd("-m", "bytewax.run", "benchmarks.contenders.bytewax_naive"), env, s.timeout_s).check("naive Bytewax")
        else:
            raise ValueError(letter)
        measured = Measured(letter, result.seconds, result.peak_rss_mb, data.events, result.cpu_seconds)
        if letter == "d" and CONNECT_RETRY in result.output:
            measured.note = "a process found its peer not yet listening and retried after 1 s (Bytewax's cluster start)"
        if letter != "a":
            measured.agreement = agree(read_output(s.bootstrap, out, kind), data.expected, closed_before)
        return measured


def settle_writes() -> float:
    """Flushes the loaded data to disk, in seconds: otherwise the kernel
    writes it back about 30 s after the load (vm.dirty_expire_centisecs),
    inside whichever contender runs then, on the same two cores."""
    started = time.perf_counter()
    os.sync()
    return time.perf_counter() - started


def measure(setup: Setup) -> list[FormatReport]:
    bench = Bench(setup)
    say = setup.say
    say(f"iot-monitoring at {engine_revision()}")
    try:
        inputs, data = bench.load()
        say(f"  written to disk in {settle_writes():.1f} s")
        if "c" not in setup.skip:
            startup = bench.startup_seconds()
            say(f"iot-monitoring start-up and shut-down on an empty topic: {startup:.2f} s (included in (c) and (d) below)")
        reports = []
        for fmt in setup.formats:
            report = FormatReport(fmt)
            say(f"\n{fmt}: {data.events:,} events, {setup.partitions} partitions")
            say(f"  {'':3} {'contender':34} {'seconds':>8} {'events/s':>11} {'CPU s':>7} {'peak RSS':>10}  counts")
            for letter in CONTENDERS:
                if letter in setup.skip:
                    continue
                letters = ("c", "s") if letter == "c" and setup.secure else (letter,)
                runs: dict[str, list[Measured]] = {x: [] for x in letters}
                for _ in range(setup.repeat):  # (c) and (s) take turns, so a busy moment of the machine hits both
                    for x in letters:
                        runs[x].append(bench.contender(x, fmt, inputs[fmt], data))
                for x in letters:
                    m = min(runs[x], key=lambda run: run.seconds)
                    report.results[x] = m
                    check = m.agreement.describe() if m.agreement else "-"
                    say(f"  ({x}) {CONTENDERS.get(x, SECURE):34} {m.seconds:8.2f} {m.rate:11,.0f} {m.cpu_seconds:7.2f} "
                        f"{m.peak_rss_mb:7.0f} MB  {check}" + (f"; {m.note}" if m.note else ""))
                    if x == "s":
                        say(f"      (s) every run: " + ", ".join(f"{r.rate:,.0f}" for r in runs["s"])
                            + " events/s; (c): " + ", ".join(f"{r.rate:,.0f}" for r in runs["c"]))
            reports.append(report)
        return reports
    finally:
        bench.cleanup()
