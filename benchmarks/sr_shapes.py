"""Throughput and peak memory of the Streaming Runtime sample shapes, against
the seed query measured in the same run on the same broker:

  (seed)     the seed's filtered windowed count (benchmarks.throughput's (c))
  (anomaly)  anomaly-detection: COUNT(*) per card in 5 s tumbling windows of the
             Kafka record timestamp, HAVING COUNT(*) > 5, over many distinct cards
  (join)     clickstream: clicks INNER JOIN users ON user_id WHERE level = 'PLATINUM',
             every row kept in the join's state (no TTL), the pairs written as JSON

Each is one bounded run of `python -m bytewax.run dataflows.iot` (1 process,
1 worker) from spawn to exit, without a recovery store; the join runs once
more with one (snapshots every second: the join's whole state is pickled at
each). The rate is input records per second, and each ratio is against the
seed query's rate. Every run's output is checked
against the answer computed from the generated data.

    .venv/bin/python -m benchmarks.sr_shapes --events 1000000 --cards 1000000
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from math import gcd
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.dataset import bench_producer, send
from benchmarks.kafka_read import read_values
from benchmarks.runner import REPO, engine_revision
from benchmarks.throughput import Bench, Setup, run_package, settle_writes
from benchmarks.pipeline_yaml import write_pipeline
from config import load_pipeline
from engine.serde import encode_confluent_avro

START_MS = 1_645_020_000_000
WINDOW_MS = 5_000
CARDS_YAML = """
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Stream
metadata: {{name: authorizations}}
spec:
  name: {source}
  protocol: kafka
  dataSchemaContext:
    schema:
      namespace: bench.cards
      name: AuthorizationAttempts
      fields:
        - {{name: card_number, type: string}}
        - {{name: card_type, type: string}}
        - {{name: name, type: string}}
        - name: event_time
          type: long_timestamp-millis
          metadata: {{from: timestamp, readonly: true}}
          watermark: "`event_time` - INTERVAL '3' SECONDS"
    options: {{ddl.scan.startup.mode: earliest-offset}}
---
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Processor
metadata: {{name: possible-fraud}}
spec:
  type: FSQL
  inlineQuery:
    - "INSERT INTO [[STREAM:fraud]] SELECT window_start, window_end, card_number, COUNT(*) AS attempts
       FROM TABLE(TUMBLE(TABLE [[STREAM:authorizations]], DESCRIPTOR(event_time), INTERVAL '5' SECONDS))
       GROUP BY window_start, window_end, card_number HAVING COUNT(*) > 5"
---
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Stream
metadata: {{name: fraud}}
spec:
  name: {sink}
  protocol: kafka
  dataSchemaContext:
    schema:
      namespace: bench.cards
      name: PossibleFraud
      fields:
        - {{name: window_start, type: long_timestamp-millis}}
        - {{name: window_end, type: long_timestamp-millis}}
        - {{name: card_number, type: string}}
        - {{name: attempts, type: long}}
    options: {{ddl.key.fields: card_number, ddl.value.format: json}}
"""
CLICKS_YAML = """
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Stream
metadata: {{name: users}}
spec:
  name: {users}
  protocol: kafka
  dataSchemaContext:
    inline:
      type: avro
      schema: |
        {{"type": "record", "name": "Users", "namespace": "bench.clicks",
          "fields": [{{"name": "user_id", "type": "string"}}, {{"name": "name", "type": "string"}}, {{"name": "level", "type": "string"}}]}}
    timeAttributes: [{{name: proctime}}]
    options: {{ddl.scan.startup.mode: earliest-offset}}
---
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Stream
metadata: {{name: clicks}}
spec:
  name: {clicks}
  protocol: kafka
  dataSchemaContext:
    schema:
      namespace: bench.clicks
      name: Clicks
      fields:
        - {{name: user_id, type: string}}
        - {{name: page, type: int}}
        - {{name: action, type: string}}
        - name: event_time
          type: long_timestamp-millis
          metadata: {{from: timestamp, readonly: true}}
          watermark: "`event_time` - INTERVAL '30' SECONDS"
    options: {{ddl.scan.startup.mode: earliest-offset}}
---
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Processor
metadata: {{name: vip-actions}}
spec:
  type: FSQL
  inlineQuery:
    - "INSERT INTO [[STREAM:vip]] SELECT Users.user_id, Users.name, Clicks.page, Clicks.action, Clicks.event_time
       FROM [[STREAM:clicks]] INNER JOIN [[STREAM:users]] ON Clicks.user_id = Users.user_id
       WHERE Users.level = 'PLATINUM'"
---
apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Stream
metadata: {{name: vip}}
spec:
  name: {sink}
  protocol: kafka
  dataSchemaContext:
    schema:
      namespace: bench.clicks
      name: VipActions
      fields:
        - {{name: user_id, type: string}}
        - {{name: name, type: string}}
        - {{name: page, type: int}}
        - {{name: action, type: string}}
        - {{name: event_time, type: long_timestamp-millis}}
    options: {{ddl.key.fields: user_id, ddl.value.format: json}}
"""


@dataclass
class Line:
    name: str
    events: int
    seconds: float
    peak_rss_mb: float
    check: str
    key: str = ""  # its name in the ratios line

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def produce_rows(bootstrap: str, topic: str, partitions: int, schema: str, rows: list[dict],
                 keys: list[str], stamps: list[int] | None = None) -> None:
    producer = bench_producer(bootstrap)
    for start in range(0, len(rows), 50_000):
        chunk = rows[start:start + 50_000]
        for i, value in enumerate(encode_confluent_avro(schema, 1, chunk)):
            key = keys[start + i]
            extra = {"timestamp": stamps[start + i]} if stamps else {}
            send(producer, topic, value, key.encode(), hash(key) % partitions, **extra)
        producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("the benchmark data could not be written to Kafka")


def schema_of(path: Path, stream: str) -> str:
    schema = load_pipeline(str(path), env={}).streams[stream].avro_schema_json
    assert schema
    return schema


class ShapesBench(Bench):
    def best(self, name: str, events: int, pipeline: Path, out: str, expected: Counter, recovery: bool = False) -> Line:
        """The fastest of `repeat` runs; each run's output (appended to `out`) must be `expected`.
        `recovery`: each run on a fresh recovery store, snapshotting every second."""
        before = Counter(value for _, value in read_values(self.s.bootstrap, out))
        runs = [run_package(pipeline, self.s.bootstrap, 1, self.s.timeout_s, args=self.recovery_args() if recovery else ())
                for _ in range(self.s.repeat)]
        fastest = min(runs, key=lambda r: r.seconds)
        got = Counter(value for _, value in read_values(self.s.bootstrap, out)) - before
        want = Counter({row: n * len(runs) for row, n in expected.items()})
        check = f"{sum(expected.values()):,} rows as expected" if got == want else f"OUTPUT DIFFERS: {sum(got.values()):,} rows"
        return Line(name, events, fastest.seconds, max(r.peak_rss_mb for r in runs), check)

    def recovery_args(self) -> tuple[str, ...]:
        store = Path(tempfile.mkdtemp(prefix="recovery-", dir=self.tmp))
        subprocess.run([sys.executable, "-m", "bytewax.recovery", str(store), "1"], check=True, cwd=REPO, capture_output=True)
        return ("-r", str(store), "-s", "1", "-b", "0")

    def seed(self) -> Line:
        inputs, data = self.load()
        out = self.topic("seed-out")
        pipeline = write_pipeline(self.tmp, inputs["avro-confluent"], out, "avro-confluent", self.s.consumer_properties)
        runs = [run_package(pipeline, self.s.bootstrap, 1, self.s.timeout_s) for _ in range(self.s.repeat)]
        fastest = min(runs, key=lambda r: r.seconds)
        return Line("seed query", data.events, fastest.seconds, max(r.peak_rss_mb for r in runs), "")

    def anomaly(self, events: int, cards: int, windows: int) -> Line:
        source, sink = self.topic("cards", self.s.partitions), self.topic("fraud")
        pipeline = self.tmp / "cards.yaml"
        pipeline.write_text(CARDS_YAML.format(source=source, sink=sink))
        rng = random.Random(5)
        hot = [f"4{n:015d}" for n in range(100)]  # cards under attack: many attempts in every window
        spread = rng.randrange(1, cards) | 1
        while gcd(spread, cards) != 1:  # a step that visits every card once in `cards` records
            spread += 2
        numbers = [hot[i % 100] if i % 50 == 0 else f"5{(i * spread) % cards:015d}" for i in range(events)]
        step = windows * WINDOW_MS / events  # the data spans `windows` windows of 5 s
        stamps = [START_MS + int(i * step) for i in range(events)]
        rows = [{"card_number": n, "card_type": "visa", "name": "A. Holder"} for n in numbers]
        self.s.say(f"loading {events:,} authorization attempts over {len(set(numbers)):,} cards ...")
        produce_rows(self.s.bootstrap, source, self.s.partitions, schema_of(pipeline, "authorizations"), rows, numbers, stamps)
        counts = Counter((ts - ts % WINDOW_MS, n) for n, ts in zip(numbers, stamps))
        expected = Counter(orjson.dumps({"window_start": _text(s), "window_end": _text(s + WINDOW_MS), "card_number": n,
                                         "attempts": c}) for (s, n), c in counts.items() if c > 5)
        settle_writes()
        line = self.best(f"anomaly-detection, {len(set(numbers)):,} cards", events, pipeline, sink, expected)
        line.key = "anomaly"
        return line

    snapshots = True

    def join(self, events: int, users: int) -> list[Line]:
        users_topic, clicks_topic, sink = self.topic("users", self.s.partitions), self.topic("clicks", self.s.partitions), self.topic("vip")
        pipeline = self.tmp / "clicks.yaml"
        pipeline.write_text(CLICKS_YAML.format(users=users_topic, clicks=clicks_topic, sink=sink))
        rng = random.Random(6)
        people = [{"user_id": f"u{i}", "name": f"User {i}", "level": ("PLATINUM", "GOLD", "SILVER")[i % 3]} for i in range(users)]
        clicks = [{"user_id": f"u{rng.randrange(users)}", "page": rng.randrange(100), "action": "click"} for _ in range(events)]
        stamps = [START_MS + i for i in range(events)]
        self.s.say(f"loading {users:,} users and {events:,} clicks ...")
        produce_rows(self.s.bootstrap, users_topic, self.s.partitions, schema_of(pipeline, "users"), people, [p["user_id"] for p in people])
        produce_rows(self.s.bootstrap, clicks_topic, self.s.partitions, schema_of(pipeline, "clicks"), clicks,
                     [c["user_id"] for c in clicks], stamps)
        by_id = {p["user_id"]: p for p in people}
        expected = Counter(orjson.dumps({"user_id": c["user_id"], "name": by_id[c["user_id"]]["name"], "page": c["page"],
                                         "action": "click", "event_time": _text(ts)})
                           for c, ts in zip(clicks, stamps) if by_id[c["user_id"]]["level"] == "PLATINUM")
        settle_writes()
        lines = [self.best(f"clickstream join, {users:,} users", events + users, pipeline, sink, expected)]
        lines[0].key = "join"
        if self.snapshots:
            self.s.say("the join again, with a recovery store ...")
            lines.append(self.best("  the same, snapshots every 1 s", events + users, pipeline, sink, expected, recovery=True))
            lines[1].key = "join-snapshots"
        return lines


def _text(ms: int) -> str:
    from engine.serde import format_timestamp_ms

    return format_timestamp_ms(ms)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--events", type=int, default=1_000_000, help="records of each shape's input (and of the seed query's)")
    parser.add_argument("--cards", type=int, default=1_000_000, help="distinct card numbers of the anomaly-detection input")
    parser.add_argument("--windows", type=int, default=4, help="5 s windows the anomaly-detection input spans")
    parser.add_argument("--users", type=int, default=100_000, help="users of the join's right input")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the fastest counts")
    parser.add_argument("--only", choices=("anomaly", "join"), action="append", help="run only these shapes (and the seed query)")
    parser.add_argument("--no-snapshots", action="store_true", help="skip the join's run with a recovery store")
    args = parser.parse_args(argv)
    setup = Setup(args.bootstrap, args.events, args.partitions, ("avro-confluent",), frozenset(), repeat=args.repeat)
    bench = ShapesBench(setup)
    print(f"iot-monitoring at {engine_revision()}")
    try:
        baseline = bench.seed()
        lines = [baseline]
        shapes = args.only or ["anomaly", "join"]
        if "anomaly" in shapes:
            lines.append(bench.anomaly(args.events, args.cards, args.windows))
        if "join" in shapes:
            bench.snapshots = not args.no_snapshots
            lines += bench.join(args.events, args.users)
    finally:
        bench.cleanup()
    print(f"\n{'shape':<40} {'records':>10} {'seconds':>8} {'records/s':>11} {'/seed':>6} {'peak RSS':>9}")
    for line in lines:
        print(f"{line.name:<40} {line.events:>10,} {line.seconds:>8.1f} {line.rate:>11,.0f} {line.rate / baseline.rate:>6.2f} "
              f"{line.peak_rss_mb:>7.0f} MB  {line.check}")
    print("sr-shapes ratios " + " ".join(f"{line.key}/seed={line.rate / baseline.rate:.2f}" for line in lines[1:]))


if __name__ == "__main__":
    main()
