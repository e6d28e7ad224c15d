"""Latency of window results under live traffic.

The package runs unbounded on a fresh topic, its SQL stage and its UDF stage
(the seed's upper-casing UDF, `iot-monitoring udf serve uppercase`, publishing
to a fresh RabbitMQ exchange); the project's generator (`iot-monitoring
generate`) writes events at a fixed rate with `ts` = the wall clock. A window
[start, end) fires once every partition has read an event with
ts >= end - 1 + 3 s (the watermark is ts - 3 s), and the first such event is
stamped at wall time end + 2.999 s; so a result's latency is its arrival at
a consumer of the error-count topic, or of a queue bound to the exchange,
minus (window end + 2.999 s). It includes the generator's pacing (chunks
every 50 ms), the Kafka hops, the engine, the UDF call and RabbitMQ.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import threading
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from benchmarks.pipeline_yaml import write_pipeline
from benchmarks.results import parse_timestamp
from benchmarks.runner import engine_revision, finish, python_cmd, start
from benchmarks.throughput import Bench, Setup, free_ports, package_env
from config.pipeline import LOCAL_RABBITMQ

WATERMARK_DELAY_MS = 3000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class RabbitArrivals(threading.Thread):
    """Binds a queue to the output exchange and notes when each message arrives."""

    def __init__(self, url: str, exchange: str):
        super().__init__(daemon=True)
        self.url, self.exchange = url, exchange
        self.arrivals: list[tuple[float, bytes]] = []
        self.ready, self.stop = threading.Event(), threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        import pika

        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.url))
            channel = connection.channel()
            channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            queue = channel.queue_declare("", exclusive=True).method.queue
            channel.queue_bind(queue, self.exchange, routing_key="#")
        except Exception as exc:  # noqa: BLE001 - reported, and the Kafka figures still stand
            self.error = f"RabbitMQ at {self.url}: {exc!r}"
            self.ready.set()
            return
        self.ready.set()
        for method, _props, body in channel.consume(queue, auto_ack=True, inactivity_timeout=0.05):
            if method is not None:
                self.arrivals.append((time.time() * 1000, body))
            if self.stop.is_set():
                break
        channel.cancel()
        channel.exchange_delete(self.exchange)
        connection.close()


def window_end_of(body: bytes) -> int:
    """The upper-casing UDF upper-cases the keys too: WINDOW_END."""
    row: dict[str, Any] = orjson.loads(body)
    return parse_timestamp(next(v for k, v in row.items() if k.lower() == "window_end"))


def wait_for_port(port: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def report(name: str, samples: list[tuple[int, float]], target_ms: float) -> None:
    windows = sorted({end for end, _ in samples})
    values = [lat for _, lat in samples]
    for end in windows:
        these = [lat for e, lat in samples if e == end]
        print(f"  {name}, window ending {time.strftime('%H:%M:%S', time.gmtime(end / 1000))}: {len(these)} results, "
              f"{min(these):.0f}-{max(these):.0f} ms")
    p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
    verdict = "met" if p99 < target_ms else f"missed by {p99 - target_ms:.0f} ms"
    print(f"latency {name} p50_ms={p50:.0f} p99_ms={p99:.0f} mean_ms={statistics.fmean(values):.0f} "
          f"samples={len(values)} windows={len(windows)} (target p99 < {target_ms:.0f} ms: {verdict})")


def latency(args: argparse.Namespace) -> int:
    fmt = "avro-confluent" if "avro-confluent" in args.formats else args.formats.split(",")[0]
    setup = Setup(args.bootstrap, 0, args.partitions, (fmt,), frozenset(), keep_topics=args.keep_topics,
                  fetch_queue_backoff_ms=args.fetch_queue_backoff_ms)
    bench = Bench(setup)
    rabbitmq_url = os.environ.get("RABBITMQ_URL", LOCAL_RABBITMQ)
    kafka_samples: list[tuple[int, float]] = []
    udf = None
    try:
        source = bench.topic(f"live-{fmt}", args.partitions)
        sink = bench.topic("live-out")
        exchange = f"bench-{bench.run_id}-udf-out"
        pipeline = write_pipeline(bench.tmp, source, sink, fmt, setup.consumer_properties, exchange)
        rabbit = RabbitArrivals(rabbitmq_url, exchange)
        rabbit.start()
        rabbit.ready.wait(15)
        env = dict(package_env(pipeline, args.bootstrap), IOT_BOUNDED="")
        if rabbit.error is None:
            udf_port = free_ports(1)[0]
            udf = start(python_cmd("-m", "cli.main", "udf", "serve", "uppercase", "--port", str(udf_port)))
            if not wait_for_port(udf_port):
                raise RuntimeError("the uppercase UDF did not start listening")
            env.update(IOT_PROCESSORS="all", IOT_UDF_ADDRESS=f"127.0.0.1:{udf_port}", RABBITMQ_URL=rabbitmq_url)
        flow, flow_log, flow_started = start(python_cmd("-m", "bytewax.run", "dataflows.iot"), env)
        reader = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                           "enable.auto.commit": False, "fetch.wait.max.ms": 5, "log_level": 3})
        reader.assign([TopicPartition(sink, 0, 0)])
        time.sleep(3.0)  # let the dataflow assign its partitions before traffic starts
        generator, gen_log, _ = start(python_cmd(
            "-m", "cli.main", "generate", "--bootstrap", args.bootstrap, "--topic", source, "--config", str(pipeline),
            "--rate", str(args.rate), "--duration", str(args.duration), "--no-progress"))
        print(f"iot-monitoring at {engine_revision()}")
        print(f"latency: {args.rate:,.0f} events/s for {args.duration:.0f} s into {args.partitions} partitions ({fmt}) ...")
        traffic_ended_ms = None
        while True:
            msg = reader.poll(0.05)
            now_ms = time.time() * 1000
            if msg is not None and msg.error() is None:
                end_ms = parse_timestamp(orjson.loads(msg.value())["window_end"])
                kafka_samples.append((end_ms, now_ms - (end_ms - 1 + WATERMARK_DELAY_MS)))
            if traffic_ended_ms is None and generator.poll() is not None:
                traffic_ended_ms = now_ms
            if traffic_ended_ms is not None and now_ms > traffic_ended_ms + 2000:
                break
        reader.close()
        rabbit.stop.set()
        rabbit.join(10)
        gen_log.seek(0)
        gen_output = gen_log.read().strip()
        flow.terminate()
        flow_run = finish(flow, flow_log, flow_started, 30)
    finally:
        if udf is not None:
            udf[0].terminate()
            finish(*udf, 10)
        bench.cleanup()

    if generator.returncode != 0:
        print(f"latency: the generator failed:\n{gen_output}")
        return 1
    print(f"  generator: {gen_output.splitlines()[-1] if gen_output else '(no output)'}")
    if not kafka_samples:
        print("latency: no window result arrived while the traffic ran (windows are 1 minute: give a --duration "
              "over 65 s); the dataflow said:\n" + "\n".join(flow_run.output.splitlines()[-20:]))
        return 1
    report("kafka", kafka_samples, 250)
    if rabbit.error is not None:
        print(f"latency rabbitmq: not measured ({rabbit.error})")
    elif not rabbit.arrivals:
        print("latency rabbitmq: no message reached the exchange; the dataflow said:\n"
              + "\n".join(flow_run.output.splitlines()[-20:]))
    else:
        rabbit_samples = []
        for arrived, body in rabbit.arrivals:
            end_ms = window_end_of(body)
            rabbit_samples.append((end_ms, arrived - (end_ms - 1 + WATERMARK_DELAY_MS)))
        report("rabbitmq", rabbit_samples, 500)
    return 0
