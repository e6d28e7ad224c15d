"""A live run of the whole pipeline for the fault matrix, and what it wrote.

The input (`make_input`) is the seed's kind of traffic on four partitions of
uneven speed, fed tick by tick in real time (`Feeder`): records a little out
of order (always within the 3 s the watermark allows), a few records far
behind their partition (late under any order in which the partitions could
be read: more than a window, the alignment drift and a read batch behind),
and some that cannot be decoded or carry an impossible event time (dead
letters). Every expected outcome is computed here from the input alone.

`Outputs` reads back everything a run wrote (window results, late and
dead-letter records, the UDF's messages on RabbitMQ), checks that a repeat is
identical, and keeps one copy of each, in a form that does not depend on the
run's topic names, so that two runs compare with `==`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pika
from confluent_kafka import Producer

from config import load_pipeline
from engine.serde import encode_confluent_avro
from tests.support.kafka_io import read_all
from tests.support.pipeline import REPO, seed_pipeline

BASE = 1_645_020_000_000  # 2022-02-16 14:00:00 UTC, the seed's day
PARTITIONS = 4
RATES = (200, 60, 16, 4)  # records per second of event time, per partition: uneven speeds
TICK_EVENT_MS = 6_000  # event time one tick covers
TICK_WALL_S = 0.25  # wall time between ticks: 24x real time, a 1-minute window every 2.5 s
MINUTES = 6
CODES = [f"E{i:03d}_FAULT" for i in range(60)]
LATE_BEHIND_MS = 240_000  # late records are 4 minutes behind their partition
IDLE_TIMEOUT_S = 2.0
BATCH_SIZE = 2_000  # records per read of a partition: 10 s of event time of the fastest one
PROCESSOR = "iot-monitoring-processor"
SCHEMA = load_pipeline(REPO / "config" / "iot-monitoring.yaml", env={}).streams["iot-monitoring-stream"].avro_schema_json


@dataclass(frozen=True)
class Input:
    """What is fed, tick by tick, and what the pipeline must make of it."""

    ticks: tuple[tuple[tuple[int, bytes], ...], ...]  # each tick: (partition, value) in production order
    counts: Counter  # (window start ms, error code) -> count
    late: frozenset[tuple[int, int]]  # (partition, offset)
    dead: frozenset[tuple[int, int]]

    def records_until(self, tick: int) -> int:
        return sum(len(t) for t in self.ticks[:tick])


def _event(ts: int, code: str, type_: str) -> dict:
    return {"error_code": code, "type": type_, "application": "Zontrax", "version": "1.2.3 ", "description": "d", "ts": ts}


def make_input(seed: int = 11) -> Input:
    rng = random.Random(seed)
    offsets = [0] * PARTITIONS
    counts: Counter = Counter()
    late: set[tuple[int, int]] = set()
    dead: set[tuple[int, int]] = set()
    ticks = []
    n_ticks = MINUTES * 60_000 // TICK_EVENT_MS
    for t in range(n_ticks + 1):
        start = BASE + t * TICK_EVENT_MS
        tick: list[tuple[int, bytes]] = []

        def add(p: int, value: bytes, outcome: set | None = None) -> None:
            tick.append((p, value))
            if outcome is not None:
                outcome.add((p, offsets[p]))
            offsets[p] += 1

        if t == n_ticks:  # one filtered record per partition an hour later: every window above fires
            for p in range(PARTITIONS):
                add(p, encode_confluent_avro(SCHEMA, 1, [_event(start + 60_000, "END", "INFO")])[0])
            ticks.append(tuple(tick))
            break
        for p, rate in enumerate(RATES):
            n = rate * TICK_EVENT_MS // 1000
            events = []
            for i in range(n):
                ts = max(BASE, start + i * TICK_EVENT_MS // n - rng.randint(0, 2_000))
                events.append(_event(ts, rng.choice(CODES), rng.choice(("ERROR", "ERROR", "INFO", "WARN"))))
            for e, value in zip(events, encode_confluent_avro(SCHEMA, 1, events)):
                add(p, value)
                if e["type"] == "ERROR":
                    counts[(e["ts"] - e["ts"] % 60_000, e["error_code"])] += 1
            if p < 2 and start - BASE >= LATE_BEHIND_MS + 30_000 and t % 4 == p:
                behind = _event(start - LATE_BEHIND_MS, rng.choice(CODES), "ERROR")
                add(p, encode_confluent_avro(SCHEMA, 1, [behind])[0], late)
        if t % 5 == 2:  # one dead letter of each kind, on a partition that changes
            p = t % PARTITIONS
            whole = encode_confluent_avro(SCHEMA, 1, [_event(start, "C001", "ERROR")])[0]
            add(p, b"not avro: no magic byte", dead)
            add(p, whole[:-3], dead)  # cut short
            add(p, encode_confluent_avro(SCHEMA, 1, [_event(2**62, "C001", "ERROR")])[0], dead)  # year > 9999
        ticks.append(tuple(tick))
    return Input(tuple(ticks), counts, frozenset(late), frozenset(dead))


class Feeder(threading.Thread):
    """Produces the input's ticks at their pace, from `first` on; a tick is on
    the broker (flushed) before the next begins. Goes on through a broker
    outage: the producer holds the records until it is back."""

    def __init__(self, bootstrap: str, topic: str, data: Input, first: int = 0, last: int | None = None):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.data = bootstrap, topic, data
        self.first, self.last = first, len(data.ticks) if last is None else last
        self.produced = first  # ticks on the broker
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            produce_ticks(self.bootstrap, self.topic, self.data, self.first, self.last, pace_s=TICK_WALL_S, progress=self)
        except BaseException as exc:  # reported by the test through `failure`
            self.failure = exc

    def finish(self, timeout_s: float = 180) -> None:
        self.join(timeout_s)
        assert not self.is_alive(), "the feed did not finish"
        assert self.failure is None, self.failure


def produce_ticks(bootstrap: str, topic: str, data: Input, first: int, last: int, pace_s: float = 0.0,
                  progress: Feeder | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                         "message.timeout.ms": 300_000, "log_level": 0})
    began = time.monotonic()
    for i in range(first, last):
        for partition, value in data.ticks[i]:
            while True:
                try:
                    producer.produce(topic, value=value, partition=partition)
                    break
                except BufferError:
                    producer.poll(0.1)
        while producer.flush(5) > 0:
            pass
        if progress is not None:
            progress.produced = i + 1
        if pace_s:
            time.sleep(max(0.0, began + (i - first + 1) * pace_s - time.monotonic()))


def fault_pipeline(tmp_path: Path, input_topic: str, output_topic: str, exchange: str) -> Path:
    """The seed's pipeline on this run's topics, with a short idle timeout and reads of a bounded size."""
    attributes = (f"  attributes:\n    table.exec.source.idle-timeout: \"{IDLE_TIMEOUT_S:g} s\"\n"
                  f"    input.batchSize: \"{BATCH_SIZE}\"\n")
    return seed_pipeline(tmp_path, input_topic, output_topic, exchange, extra=attributes)


def durable_queue(url: str, exchange: str, queue: str) -> None:
    """A durable queue bound to all of the exchange: it keeps what the sink published across a broker restart."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange, routing_key="#")
    finally:
        connection.close()


def _headers(headers: list) -> dict[str, bytes]:
    return {k: v for k, v in headers}


@dataclass
class Outputs:
    """One copy of everything a run wrote; repeats checked identical as they are read."""

    results: dict[tuple, tuple] = field(default_factory=dict)  # (start, end, code) -> (key, value, headers)
    late: dict[tuple[int, int], tuple] = field(default_factory=dict)  # (partition, offset) -> the record
    dead: dict[tuple[int, int], tuple] = field(default_factory=dict)
    udf_dead: list = field(default_factory=list)
    messages: dict[str, tuple] = field(default_factory=dict)  # message id -> (routing key, body, headers)
    repeats: Counter = field(default_factory=Counter)

    @classmethod
    def read(cls, bootstrap: str, input_topic: str, output_topic: str, rabbitmq_url: str, queue: str) -> "Outputs":
        out = cls()
        for key, value, headers, _, _ in read_all(bootstrap, output_topic):
            row = orjson.loads(value)
            out._keep("results", out.results, (row["window_start"], row["window_end"], row["error_code"]),
                      (key, value, tuple(headers)))
        for key, value, headers, _, _ in read_all(bootstrap, f"{input_topic}-late"):
            h = _headers(headers)
            ident = (int(h["x-source-partition"]), int(h["x-source-offset"]))
            # the watermark it was judged against is information, not identity: a replay reads partitions in another order
            kept = (key, value, h["x-late-window-start"], h["x-late-window-end"])
            out._keep("late", out.late, ident, kept)
        for key, value, headers, _, _ in read_all(bootstrap, f"{input_topic}-dlq"):
            h = _headers(headers)
            ident = (int(h["x-source-partition"]), int(h["x-source-offset"]))
            out._keep("dead", out.dead, ident, (key, value, h["x-dlq-reason"].split(b":")[0]))
        out.udf_dead = read_all(bootstrap, f"{output_topic}-dlq")
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
        try:
            channel = connection.channel()
            for method, props, body in channel.consume(queue, inactivity_timeout=2):
                if method is None:
                    break
                assert props.delivery_mode == 2, "a message was not persistent"
                out._keep("messages", out.messages, props.message_id, (method.routing_key, body, props.headers or {}))
                channel.basic_ack(method.delivery_tag)
            channel.cancel()
        finally:
            connection.close()
        return out

    def _keep(self, kind: str, into: dict, ident, record) -> None:
        if ident in into:
            assert into[ident] == record, f"a repeated {kind} record differs:\n{into[ident]}\n{record}"
            self.repeats[kind] += 1
        into[ident] = record

    def comparable(self) -> tuple:
        """What must be equal between two runs of the same input (topic names aside)."""
        return (set(self.results.values()), self.late, self.dead, len(self.udf_dead),
                {(rk, body, tuple(sorted(h.items()))) for rk, body, h in self.messages.values()})

    def check_against(self, data: Input) -> None:
        """The outputs the input alone says there must be."""
        got = Counter()
        for (start, _, code), (_, value, _) in self.results.items():
            got[(_epoch_ms(start), code)] = orjson.loads(value)["error_count"]
        assert got == data.counts
        assert set(self.late) == data.late
        assert set(self.dead) == data.dead
        assert self.udf_dead == []
        assert {(rk, body) for rk, body, _ in self.messages.values()} == {
            (orjson.loads(value)["error_code"], value.decode().upper().encode()) for _, value, _ in self.results.values()
        }


def _epoch_ms(flink_time: bytes | str) -> int:
    text = flink_time.decode() if isinstance(flink_time, bytes) else flink_time
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000)
