"""The benchmark's input: deterministic IoT monitoring events shaped like the
seed's, loaded into Kafka once, with the expected counts computed from the
generator itself (so every contender is checked against the same truth,
independently of any of them).

Shape: 14 error codes, 4 types drawn uniformly, `ts` rising at a fixed event
rate from 2022-02-16 with up to `JITTER_MS` of backward jitter. The jitter is
below the query's 3 s watermark delay, so no record is ever late, whatever
the read order of the partitions. The key is the error code and each code
lives in one partition (code index modulo the partition count), as a keyed
producer would place it; this lets engines that count per message key
(Quix Streams) do the query without a repartition.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import orjson
from confluent_kafka import Producer

from engine.serde import encode_confluent_avro

ERROR_CODES = (
    "C001_ABORTED", "C002_ALREADY_EXISTS", "C003_CANCELLED", "C004_DEADLINE_EXCEEDED",
    "C005_FAILED_PRECONDITION", "C006_INTERNAL", "C007_INVALID_ARGUMENT", "C008_NOT_FOUND",
    "C009_OUT_OF_RANGE", "C010_PERMISSION_DENIED", "C011_RESOURCE_EXHAUSTED", "C012_UNAVAILABLE",
    "C013_UNIMPLEMENTED", "C014_UNKNOWN",
)
TYPES = ("ERROR", "WARN", "INFO", "DEBUG")
APPLICATIONS = (
    "Hatity", "Mat Lam Tam", "Regrant", "Zontrax", "Vagram", "Cardguard", "Zaam-Dox", "Aerified",
    "Bitchip", "Fintone", "Keylex", "Lotstring", "Opela", "Sonair", "Stringtough", "Tresom",
)
DESCRIPTIONS = (
    "Chuck Norris can binary search unsorted data.",
    "Chuck Norris doesn't bug hunt, as that signifies a probability of failure. He goes bug killing.",
    "There is no Esc key on Chuck Norris' keyboard, because no one escapes Chuck Norris.",
    "Chuck Norris does not use exceptions when programming.",
    "All browsers support the hex definitions #chuck and #norris for the colors black and blue.",
    "Chuck Norris can use GOTO as much as he wants to. Telling him otherwise is considered harmful.",
    "Chuck Norris's first program was kill -9.",
    "Chuck Norris's keyboard doesn't have a Ctrl key because nothing controls Chuck Norris.",
)
START_MS = 1645020000000  # 2022-02-16 14:00:00 UTC
JITTER_MS = 1500
WINDOW_MS = 60_000
CHUNK = 50_000

Counts = dict[tuple[int, str], int]  # (window start ms, error code) -> count


def versions(rng: random.Random, n: int = 24) -> tuple[str, ...]:
    return tuple(f"{rng.randint(0, 9)}.{rng.randint(0, 19)}.{rng.randint(0, 19)}{rng.choice(('', ' ', '-SNAPSHOT'))}"
                 for _ in range(n))


@dataclass
class EventMaker:
    """Makes the i-th chunk of events; the same seed gives the same events."""

    events_per_s: float = 1000.0
    seed: int = 2022
    start_ms: int = START_MS
    rng: random.Random = field(init=False)
    made: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.versions = versions(self.rng)

    def chunk(self, n: int) -> list[dict]:
        rng = self.rng
        codes = rng.choices(ERROR_CODES, k=n)
        types = rng.choices(TYPES, k=n)
        apps = rng.choices(APPLICATIONS, k=n)
        vers = rng.choices(self.versions, k=n)
        descs = rng.choices(DESCRIPTIONS, k=n)
        step = 1000.0 / self.events_per_s
        base = self.start_ms + self.made * step
        out = [
            {"error_code": codes[i], "type": types[i], "application": apps[i], "version": vers[i],
             "description": descs[i], "ts": int(base + i * step) - rng.randrange(JITTER_MS)}
            for i in range(n)
        ]
        self.made += n
        return out


def expected_counts(records: list[dict], into: Counter) -> None:
    """The query's answer, straight from the generated records."""
    for r in records:
        if r["type"] == "ERROR":
            ts = r["ts"]
            into[(ts - ts % WINDOW_MS, r["error_code"])] += 1


def partition_of(code: str, partitions: int) -> int:
    return ERROR_CODES.index(code) % partitions


@dataclass
class LoadedData:
    events: int
    partitions: int
    expected: Counts
    max_ts_by_partition: dict[int, int]
    seconds: float

    def closed_before_ms(self, grace_ms: int) -> dict[str, int]:
        """Per code: the event time up to which an engine that closes windows
        only on new records of the code's partition has closed them."""
        return {code: self.max_ts_by_partition.get(partition_of(code, self.partitions), 0) - grace_ms for code in ERROR_CODES}


def bench_producer(bootstrap: str) -> Producer:
    return Producer({
        "bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000, "compression.type": "none",
        "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 1_048_576, "acks": 1,
        "log_level": 3,
    })


def send(producer: Producer, topic: str, value: bytes, key: bytes, partition: int, **extra: int) -> None:
    """Produce one record, waiting for deliveries while the producer's queue is full."""
    while True:
        try:
            producer.produce(topic, value, key, partition=partition, **extra)
            return
        except BufferError:
            producer.poll(0.05)


def load(bootstrap: str, topics: dict[str, str], events: int, partitions: int, schema_json: str,
         events_per_s: float = 1000.0, seed: int = 2022) -> LoadedData:
    """Produce the same `events` into every topic of `topics` (format -> topic)."""
    started = time.perf_counter()
    producer = bench_producer(bootstrap)
    maker = EventMaker(events_per_s, seed)
    counts: Counter = Counter()
    partition_index = {code: partition_of(code, partitions) for code in ERROR_CODES}
    keys = {code: code.encode() for code in ERROR_CODES}
    max_ts: dict[int, int] = {}
    left = events
    while left > 0:
        records = maker.chunk(min(CHUNK, left))
        left -= len(records)
        expected_counts(records, counts)
        for r in records:
            p = partition_index[r["error_code"]]
            if r["ts"] > max_ts.get(p, 0):
                max_ts[p] = r["ts"]
        for fmt, topic in topics.items():
            values = encode_values(fmt, schema_json, records)
            for record, value in zip(records, values):
                code = record["error_code"]
                send(producer, topic, value, keys[code], partition_index[code])
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("the benchmark data could not be written to Kafka")
    return LoadedData(events, partitions, dict(counts), max_ts, time.perf_counter() - started)


def encode_values(fmt: str, schema_json: str, records: list[dict]) -> list[bytes]:
    if fmt == "json":
        return [orjson.dumps(r) for r in records]
    if fmt == "avro-confluent":
        return encode_confluent_avro(schema_json, 1, records)
    raise ValueError(f"unknown benchmark format {fmt!r}")


def live_events(events_per_s: float, seed: int = 7) -> Iterator[dict]:
    """An endless stream of events stamped with the current time (for latency)."""
    rng = random.Random(seed)
    vers = versions(rng)
    while True:
        now = int(time.time() * 1000)
        yield {"error_code": rng.choice(ERROR_CODES), "type": rng.choice(TYPES), "application": rng.choice(APPLICATIONS),
               "version": rng.choice(vers), "description": rng.choice(DESCRIPTIONS), "ts": now}
