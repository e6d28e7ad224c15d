"""Garbage that looks like framed Avro (a zero byte and four random ones)
must not turn into one registry call per record nor into an unbounded
cache; a registry that is down is a retry, one that says 404 a dead letter."""

from __future__ import annotations

import os
import random

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from engine.serde import SchemaRegistryUnavailable, make_decoder
from engine.serde.registry import WriterSchemas
from tests.unit.test_serde import SEED_JSON, framed, seed_records, stream


class CountingRegistry:
    """The in-process registry, counting the lookups it is asked; it can be switched off."""

    def __init__(self, name: str) -> None:
        self.client = SchemaRegistryClient.new_client({"url": f"mock://{name}"})
        self.calls: list[int] = []
        self.down = False

    def register(self) -> int:
        return self.client.register_schema("iot-monitoring-value", Schema(SEED_JSON, "AVRO"))

    def get_schema(self, schema_id: int, *args, **kwargs):
        self.calls.append(schema_id)
        if self.down:
            raise ConnectionError("connection refused")
        return self.client.get_schema(schema_id, *args, **kwargs)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def decoder_with(registry: CountingRegistry, clock: Clock):
    """The stream's decoder, its lookups timed by `clock`."""
    decoder = make_decoder(stream("avro-confluent"), registry=registry)
    decoder._writers = WriterSchemas(decoder._prepare_writer, inline_schema_json=SEED_JSON, client=registry, clock=clock)
    return decoder


def garbage(n: int, rng: random.Random) -> list[bytes]:
    return [b"\x00" + rng.randbytes(4) + os.urandom(rng.randint(0, 20)) for _ in range(n)]


def test_a_flood_of_garbage_ids_costs_a_bounded_number_of_lookups_and_is_dead_lettered() -> None:
    registry, clock, rng = CountingRegistry("flood"), Clock(), random.Random(1)
    decoder = decoder_with(registry, clock)
    batch = garbage(2_000, rng)
    decoded = decoder.decode(batch)
    assert len(decoded) == 0 and len(decoded.errors) == len(batch)
    assert all(reason.startswith("unknown-schema-id:") for _, reason in decoded.errors)
    limits = decoder._writers._limits
    assert len(registry.calls) == limits.burst == len(set(registry.calls))
    for _ in range(30):  # a second later: at most the refill
        clock.now += 1
        before = len(registry.calls)
        decoder.decode(garbage(500, rng))
        assert len(registry.calls) - before <= limits.per_second
    assert len(decoder._writers._missing) <= limits.missing and len(decoder._writers._found) <= limits.found


def test_each_distinct_id_is_asked_once_and_remembered() -> None:
    registry, clock = CountingRegistry("once"), Clock()
    good = registry.register()
    decoder = decoder_with(registry, clock)
    values = framed(seed_records(50), schema_id=good) + framed(seed_records(50), schema_id=good + 1)
    for _ in range(3):
        decoded = decoder.decode(values)
        assert len(decoded) == 50 and {r for _, r in decoded.errors} == {
            f"unknown-schema-id: {good + 1} (not in the schema registry)"}
    assert sorted(registry.calls) == [good, good + 1]


def test_the_ids_most_records_carry_are_looked_up_first() -> None:
    registry, clock, rng = CountingRegistry("first"), Clock(), random.Random(2)
    good = registry.register()
    decoder = decoder_with(registry, clock)
    values = garbage(300, rng) + framed(seed_records(5), schema_id=good)
    rng.shuffle(values)
    values.insert(0, garbage(1, rng)[0])
    decoded = decoder.decode(values)
    assert len(decoded) == 5
    assert registry.calls[1] == good  # right after the first record's id, which the batch path tries first


def test_an_unknown_id_is_asked_again_after_a_while() -> None:
    registry, clock = CountingRegistry("later"), Clock()
    decoder = decoder_with(registry, clock)
    early = registry.client.register_schema("other-value", Schema('{"type":"record","name":"X","fields":[]}', "AVRO"))
    values = framed(seed_records(3), schema_id=early + 1)
    assert len(decoder.decode(values).errors) == 3
    registry.register()  # the id is registered now
    assert len(decoder.decode(values).errors) == 3  # still remembered as unknown
    clock.now += decoder._writers._limits.missing_ttl_s + 1
    assert len(decoder.decode(values)) == 3
    assert registry.calls == [early + 1, early + 1]


def test_a_registry_that_is_down_is_a_retry_not_a_dead_letter() -> None:
    registry, clock = CountingRegistry("down"), Clock()
    good = registry.register()
    decoder = decoder_with(registry, clock)
    registry.down = True
    values = framed(seed_records(20), schema_id=good) + framed(seed_records(20), schema_id=good + 7)
    for _ in range(3):
        with pytest.raises(SchemaRegistryUnavailable):
            decoder.decode(values)
        clock.now += 1
    assert len(registry.calls) == 3  # one call per attempt, not per record
    registry.down = False
    decoded = decoder.decode(values)
    assert len(decoded) == 20 and [pos for pos, _ in decoded.errors] == list(range(20, 40))
