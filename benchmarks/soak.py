"""Soak: the whole demo pipeline (generator -> Kafka -> query -> error-count
-> UDF over gRPC -> RabbitMQ) for a fixed time at a fixed high rate, sampling
what would grow if something leaked or fell behind.

    python benchmarks/soak.py                 # 10 minutes at 20,000 events/s
    python benchmarks/soak.py --minutes 3 --rate 5000

Needs the local stack (`make stack-up`). Every few seconds it samples the
dataflow's and the UDF's resident memory, the consumer lag (records on the
input topic not yet read by the dataflow), the watermark lag and the open
windows (the dataflow's own metrics), and the messages that reached a queue
bound to the output exchange. The report compares the last minute with the
second (the first is warm-up), so the figures are ratios against a baseline
measured in the same run; it ends with the accounting identity and whether
every window result reached RabbitMQ.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pika  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from benchmarks.pipeline_yaml import write_pipeline  # noqa: E402
from benchmarks.runner import proc_status_kb  # noqa: E402
from benchmarks.throughput import free_ports  # noqa: E402
from connectors.kafka_admin import ensure_topics, wait_for_kafka  # noqa: E402

PARTITIONS = 4


@dataclass
class Sample:
    t: float  # seconds since the generator started
    rss_mb: float
    udf_rss_mb: float
    produced: int
    read: int
    watermark_lag_s: float
    open_windows: int
    results: int
    delivered: int

    @property
    def lag(self) -> int:
        return max(0, self.produced - self.read)


@dataclass
class Drain:
    """Consumes the queue bound to the output exchange, as a user's consumer would."""

    url: str
    queue: str
    received: int = 0
    ids: set = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        channel = connection.channel()
        for method, props, _ in channel.consume(self.queue, inactivity_timeout=1):
            if method is not None:
                self.received += 1
                self.ids.add(props.message_id)
                channel.basic_ack(method.delivery_tag)
            if self.stop.is_set() and method is None:
                break
        channel.cancel()
        connection.close()


def rss_mb(pid: int) -> float:
    return proc_status_kb(pid, "VmRSS") / 1024


def scrape(url: str) -> dict[str, float]:
    """Sums of the dataflow's metrics by name (over their labels)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def end_offsets(consumer: Consumer, topic: str) -> int:
    meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
    if meta is None or meta.error is not None:
        return 0
    return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in meta.partitions)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="how long the generator runs (default %(default)s)")
    p.add_argument("--rate", type=int, default=20_000, help="events per second (default %(default)s)")
    p.add_argument("--jitter-ms", type=int, default=2_000, help="events up to this much out of order (default %(default)s)")
    p.add_argument("--late-fraction", type=float, default=0.0001, help="events sent 2 minutes late (default %(default)s)")
    p.add_argument("--malformed-fraction", type=float, default=0.0001, help="values that cannot be decoded (default %(default)s)")
    p.add_argument("--every", type=float, default=5.0, help="seconds between samples (default %(default)s)")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--rabbitmq", default=os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tag = uuid.uuid4().hex[:8]
    topic, output, exchange, queue = f"soak-in-{tag}", f"soak-out-{tag}", f"soak-x-{tag}", f"soak-q-{tag}"
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    ensure_topics(wait_for_kafka(args.bootstrap, timeout_s=30), {topic: PARTITIONS})
    connection = pika.BlockingConnection(pika.URLParameters(args.rabbitmq))
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, exchange, routing_key="#")
    connection.close()

    pipeline = write_pipeline(work, topic, output, "avro-confluent", exchange=exchange)
    store = work / "recovery"
    store.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(store), "1"], check=True, cwd=REPO)
    udf_port, metrics_port = free_ports(2)
    logs = {name: open(work / f"{name}.log", "wb") for name in ("udf", "dataflow", "generator")}
    udf = subprocess.Popen([sys.executable, "-m", "cli.main", "udf", "serve", "uppercase", "--host", "127.0.0.1",
                            "--port", str(udf_port)], cwd=REPO, stdout=logs["udf"], stderr=subprocess.STDOUT)
    env = dict(os.environ, IOT_PIPELINE=str(pipeline), KAFKA_BOOTSTRAP_SERVERS=args.bootstrap, RABBITMQ_URL=args.rabbitmq,
               IOT_UDF_ADDRESS=f"127.0.0.1:{udf_port}", BYTEWAX_DATAFLOW_API_ENABLED="true",
               BYTEWAX_DATAFLOW_API_PORT=str(metrics_port))
    dataflow = subprocess.Popen([sys.executable, "-m", "bytewax.run", "dataflows.iot", "-r", str(store), "-s", "10", "-b", "0"],
                                cwd=REPO, env=env, stdout=logs["dataflow"], stderr=subprocess.STDOUT)
    drain = Drain(args.rabbitmq, queue)
    drainer = threading.Thread(target=drain.run, daemon=True)
    drainer.start()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    deadline = time.monotonic() + 60
    while not scrape(metrics_url):
        if dataflow.poll() is not None or time.monotonic() > deadline:
            print((work / "dataflow.log").read_text()[-3000:])
            return 1
        time.sleep(0.5)

    duration_s = args.minutes * 60
    generator = subprocess.Popen([sys.executable, "-m", "cli.main", "generate", "--bootstrap", args.bootstrap, "--topic", topic,
                                  "--rate", str(args.rate), "--duration", str(duration_s), "--no-progress",
                                  "--jitter-ms", str(args.jitter_ms), "--late-fraction", str(args.late_fraction),
                                  "--malformed-fraction", str(args.malformed_fraction)],
                                 cwd=REPO, stdout=logs["generator"], stderr=subprocess.STDOUT)
    began = time.monotonic()
    probe = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"soak-probe-{tag}", "log_level": 0})
    samples: list[Sample] = []
    print(f"soak: {args.minutes:g} min at {args.rate} events/s over {PARTITIONS} partitions; work files in {work}")
    print(f"{'t s':>6} {'RSS MB':>7} {'UDF MB':>7} {'lag':>8} {'wm lag s':>8} {'open':>5} {'results':>8} {'at rmq':>8}")
    try:
        while True:
            time.sleep(args.every)
            m = scrape(metrics_url)
            s = Sample(time.monotonic() - began, rss_mb(dataflow.pid), rss_mb(udf.pid), end_offsets(probe, topic),
                       int(m.get("iot_records_in_total", 0)), m.get("iot_watermark_lag_seconds", float("nan")),
                       int(m.get("iot_open_windows", 0)), int(m.get("iot_results_out_total", 0)), drain.received)
            samples.append(s)
            if len(samples) % max(1, int(30 / args.every)) == 0:
                print(f"{s.t:6.0f} {s.rss_mb:7.1f} {s.udf_rss_mb:7.1f} {s.lag:8d} {s.watermark_lag_s:8.2f} "
                      f"{s.open_windows:5d} {s.results:8d} {s.delivered:8d}", flush=True)
            if dataflow.poll() is not None:
                print("the dataflow ended:\n" + (work / "dataflow.log").read_text()[-3000:])
                return 1
            if generator.poll() is not None and s.lag == 0:
                break
            if time.monotonic() - began > duration_s + 120:
                print("the dataflow did not catch up within 2 minutes of the generator's end")
                break
        final = scrape(metrics_url)
    finally:
        generator.send_signal(signal.SIGTERM)
        dataflow.send_signal(signal.SIGTERM)
        stopped = dataflow.wait(60)
        udf.send_signal(signal.SIGTERM)
        udf.wait(30)
        drain.stop.set()
        drainer.join(30)
        probe.close()
    return report(samples, final, drain, stopped, args)


def report(samples: list[Sample], final: dict[str, float], drain: Drain, stopped: int, args: argparse.Namespace) -> int:
    def window(lo: float, hi: float) -> list[Sample]:
        return [s for s in samples if lo <= s.t < hi]

    end = max(s.t for s in samples)
    second, last = window(60, 120), window(end - 60, end + 1)
    if not second or not last:
        print("too short for a report: run at least 3 minutes")
        return 1
    print("\nfigure                       2nd minute   last minute   ratio")
    failures = []
    for name, get in (("dataflow RSS MB (median)", lambda s: s.rss_mb), ("UDF RSS MB (median)", lambda s: s.udf_rss_mb),
                      ("consumer lag (median)", lambda s: s.lag), ("watermark lag s (median)", lambda s: s.watermark_lag_s),
                      ("open windows (max)", lambda s: s.open_windows)):
        agg = max if "max" in name else statistics.median
        a, b = agg(get(s) for s in second), agg(get(s) for s in last)
        ratio = b / a if a else float("nan")
        print(f"{name:28} {a:11.1f} {b:13.1f} {ratio:7.2f}")
    rss_growth = statistics.median(s.rss_mb for s in last) / statistics.median(s.rss_mb for s in second)
    if rss_growth > 1.25:
        failures.append(f"dataflow RSS grew by {rss_growth:.2f}x")
    lags = [s.lag for s in samples if s.t >= 60]
    print(f"\nconsumer lag over the run: median {statistics.median(lags):.0f}, max {max(lags)} records "
          f"({max(lags) / args.rate:.2f} s of input)")
    wm = [s.watermark_lag_s for s in samples if s.t >= 60]
    print(f"watermark lag over the run: median {statistics.median(wm):.2f} s, max {max(wm):.2f} s")
    print(f"peak dataflow RSS {max(s.rss_mb for s in samples):.1f} MB, peak UDF RSS {max(s.udf_rss_mb for s in samples):.1f} MB")
    if max(s.lag for s in last) > max(lags[: len(lags) // 2] or [0]) * 2 + args.rate:
        failures.append("the consumer lag built up")
    counters = {k: int(final.get(f"iot_records_{k}_total", 0)) for k in ("in", "filtered", "counted", "late", "dead_lettered")}
    results = int(final.get("iot_results_out_total", 0))
    identity = counters["filtered"] + counters["counted"] + counters["late"] + counters["dead_lettered"]
    print(f"\naccounting: in={counters['in']} filtered={counters['filtered']} counted={counters['counted']} "
          f"late={counters['late']} dead_lettered={counters['dead_lettered']} -> "
          f"{'holds' if identity == counters['in'] else 'BROKEN'}")
    print(f"window results: {results}; distinct messages at RabbitMQ: {len(drain.ids)} (received {drain.received})")
    print(f"dataflow's exit status on SIGTERM: {stopped}")
    if identity != counters["in"]:
        failures.append("the accounting identity does not hold")
    if counters["in"] < samples[-1].produced:
        failures.append("records were left unread")
    if len(drain.ids) < results:
        failures.append("window results did not all reach RabbitMQ")
    if stopped != 0:
        failures.append(f"the dataflow exited {stopped} on SIGTERM")
    print("\n" + ("FAILED: " + "; ".join(failures) if failures else "no growth beyond the open windows, no lag build-up"))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
