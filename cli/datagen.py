"""MonitoringStream events as the Streaming Runtime's IoT generator made them.

Pure: no clock and no I/O. The caller gives the event times and a seed, so
the same seed and times give byte-identical messages. Fields follow the
original generator: 14 error codes and 4 types drawn uniformly, a random
application name, a `<0-9>.<0-19>.<0-19>` version ending in a space (7 in 8)
or `-SNAPSHOT` (1 in 8), and a Chuck Norris-style fact as description.
On top of that, for testing the pipeline: event-time jitter (out-of-order
records), late records, and malformed values of the kinds a broker sees.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from engine.serde import encode_confluent_avro

ERROR_CODES = (
    "C001_ABORTED",
    "C002_ALREADY_EXISTS",
    "C003_CANCELLED",
    "C004_DEADLINE_EXCEEDED",
    "C005_FAILED_PRECONDITION",
    "C006_INTERNAL",
    "C007_INVALID_ARGUMENT",
    "C008_NOT_FOUND",
    "C009_OUT_OF_RANGE",
    "C010_PERMISSION_DENIED",
    "C011_RESOURCE_EXHAUSTED",
    "C012_UNAVAILABLE",
    "C013_UNIMPLEMENTED",
    "C014_UNKNOWN",
)
EVENT_TYPES = ("ERROR", "DEBUG", "INFO", "WARN")
APPLICATIONS = (
    "Aquaduct", "Beaconly", "Coldchain", "Flowmeter", "Gridwatch", "Humidex", "Lumenary", "Pressurio",
    "Pumpkeeper", "Quakewatch", "Railsense", "Sensorium", "Tempwise", "Thermostat Pro", "Voltana", "Windvane",
)  # fmt: skip
FACTS = (
    "Chuck Norris writes code that optimizes itself out of respect.",
    "Chuck Norris's sensors never drift; the physical world recalibrates.",
    "Chuck Norris can read an Avro record without its schema.",
    "When Chuck Norris pings a device, it answers before the packet leaves.",
    "Chuck Norris's watermark never goes down. Nothing is late to Chuck Norris.",
    "Chuck Norris counts to infinity in one tumbling window.",
    "Chuck Norris does not retry. Requests succeed the first time out of fear.",
    "Chuck Norris's unit tests pass before he writes the code.",
    "Chuck Norris can divide by zero, but only in event time.",
    "Kafka partitions rebalance themselves when Chuck Norris joins the group.",
    "Chuck Norris once closed a window that had not opened yet.",
    "Chuck Norris's firmware updates are downloaded by the devices voluntarily.",
    "Chuck Norris never gets out-of-order events. Events line up for him.",
    "A dead-letter queue is where messages go after meeting Chuck Norris.",
    "Chuck Norris's thermometers report the temperature they think he prefers.",
    "Chuck Norris can exactly-once deliver a message twice.",
)
MONITORING_FIELDS = ("error_code", "ts", "type", "application", "version", "description")

# The seed's Avro schema of the events, in the seed's field order.
MONITORING_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "MonitoringStream",
    "namespace": "com.tanzu.streaming.runtime.iot.log",
    "fields": [
        {"name": "error_code", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "type", "type": "string"},
        {"name": "application", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "description", "type": "string"},
    ],
}

GeneratedFormat = Literal["avro-confluent", "json"]
MALFORMED_KINDS: dict[str, tuple[str, ...]] = {
    "avro-confluent": ("garbage", "truncated", "bad-magic"),
    "json": ("garbage", "truncated", "missing-ts", "wrong-type-ts"),
}


@dataclass(frozen=True)
class GeneratorSettings:
    """How events are written and which kinds of trouble are mixed in.

    `schema_json` decides the Avro field order, so it must be the reader's
    schema when no registry tells the reader the writer's.
    """

    value_format: GeneratedFormat = "avro-confluent"
    schema_json: str = json.dumps(MONITORING_SCHEMA)
    schema_id: int = 1
    keyed: bool = False
    jitter_ms: int = 0
    late_fraction: float = 0.0
    late_by_ms: int = 120_000
    malformed_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("late_fraction", "malformed_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be between 0 and 1")
        if self.jitter_ms < 0 or self.late_by_ms < 0:
            raise ValueError("jitter and lateness must not be negative")
        if self.value_format not in MALFORMED_KINDS:
            raise ValueError(f"the generator writes avro-confluent or json, not {self.value_format}")
        names = [f["name"] for f in json.loads(self.schema_json)["fields"]]
        if sorted(names) != sorted(MONITORING_FIELDS):
            raise ValueError(f"the generator writes MonitoringStream events {MONITORING_FIELDS}, the schema has {names}")


@dataclass(frozen=True)
class Message:
    """One Kafka message to produce. `kind`: `event`, `late`, or `malformed:<how>`."""

    key: bytes | None
    value: bytes
    event_time_ms: int
    kind: str


class EventGenerator:
    """Deterministic MonitoringStream messages: same seed + same times = same bytes."""

    def __init__(self, settings: GeneratorSettings = GeneratorSettings(), seed: int | None = None) -> None:
        self.settings = settings
        self._rng = random.Random(seed)
        self._field_order = [f["name"] for f in json.loads(settings.schema_json)["fields"]]

    def event(self, ts_ms: int) -> dict[str, Any]:
        """One well-formed record with event time `ts_ms`."""
        rng = self._rng
        version = f"{rng.randint(0, 9)}.{rng.randint(0, 19)}.{rng.randint(0, 19)}"
        record = {
            "error_code": rng.choice(ERROR_CODES),
            "ts": ts_ms,
            "type": rng.choice(EVENT_TYPES),
            "application": rng.choice(APPLICATIONS),
            "version": version + ("-SNAPSHOT" if rng.randrange(8) == 0 else " "),
            "description": rng.choice(FACTS),
        }
        return {name: record[name] for name in self._field_order}

    def messages(self, times_ms: Sequence[int]) -> list[Message]:
        """One message per event time, with jitter, lateness and damage mixed in."""
        s, rng = self.settings, self._rng
        records: list[dict[str, Any]] = []
        kinds: list[str] = []
        damage_seeds: list[int | None] = []
        for ts in times_ms:  # every random draw happens here, in record order, so batching does not matter
            kind, damage_seed = "event", None
            if s.jitter_ms:
                ts -= rng.randint(0, s.jitter_ms)
            if s.late_fraction and rng.random() < s.late_fraction:
                ts -= s.late_by_ms
                kind = "late"
            if s.malformed_fraction and rng.random() < s.malformed_fraction:
                kind = "malformed:" + rng.choice(MALFORMED_KINDS[s.value_format])
                damage_seed = rng.getrandbits(64)
            records.append(self.event(ts))
            kinds.append(kind)
            damage_seeds.append(damage_seed)
        values = self._encode(records)
        return [
            Message(self._key(r), _damage(v, k, random.Random(d)) if d is not None else v, r["ts"], k)
            for r, v, k, d in zip(records, values, kinds, damage_seeds)
        ]

    def _encode(self, records: list[dict[str, Any]]) -> list[bytes]:
        if self.settings.value_format == "json":
            return [orjson.dumps(r) for r in records]
        return encode_confluent_avro(self.settings.schema_json, self.settings.schema_id, records)

    def _key(self, record: dict[str, Any]) -> bytes | None:
        if not self.settings.keyed:
            return None
        if self.settings.value_format == "json":
            return orjson.dumps({"error_code": record["error_code"]})
        return record["error_code"].encode()


def _damage(value: bytes, kind: str, rng: random.Random) -> bytes:
    """A value that the pipeline must dead-letter."""
    how = kind.split(":", 1)[1]
    if how == "garbage":
        return b"\x7f" + rng.randbytes(rng.randint(0, 40))  # neither a 0 magic byte nor a JSON value
    if how == "truncated":
        return value[: rng.randint(1, len(value) - 1)]
    if how == "bad-magic":
        return bytes([rng.randint(1, 255)]) + value[1:]
    record = orjson.loads(value)
    if how == "missing-ts":
        del record["ts"]
    else:  # wrong-type-ts
        record["ts"] = str(record["ts"])
    return orjson.dumps(record)


def event_times(start_ms: int, rate: float, first: int, count: int) -> list[int]:
    """Evenly spaced event times for records first..first+count-1 at `rate`
    per second (1 ms apart when the rate is unbounded), for repeatable runs."""
    step_rate = rate if rate > 0 else 1000.0
    return [start_ms + int(i * 1000 / step_rate) for i in range(first, first + count)]
