"""`iot-monitoring generate` against a real broker: every event arrives and decodes."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from cli.datagen import EventGenerator, GeneratorSettings, event_times
from cli.main import main
from config import load_pipeline
from engine.serde import make_decoder

pytestmark = pytest.mark.broker


def read_all(bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 30.0) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for m in consumer.consume(1000, timeout=0.5):
                assert m.error() is None, m.error()
                messages.append(m)
        # anything beyond the expected count would be a duplicate: look a little longer
        messages.extend(m for m in consumer.consume(1000, timeout=1.0) if m.error() is None)
    finally:
        consumer.close()
    return messages


def test_generated_events_arrive_and_decode(kafka_bootstrap, new_topic):
    topic = new_topic(partitions=3)
    n, seed, start = 3000, 17, 1_645_020_000_000
    code = main(
        ["generate", "--bootstrap", kafka_bootstrap, "--topic", topic, "--count", str(n), "--rate", "0",
         "--seed", str(seed), "--start-ms", str(start), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    messages = read_all(kafka_bootstrap, topic, 3, n)
    assert len(messages) == n
    assert {m.partition() for m in messages} == {0, 1, 2}  # unkeyed events spread over the partitions
    assert all(m.key() is None for m in messages)

    stream = load_pipeline().stream("iot-monitoring-stream")
    batch = make_decoder(stream).decode([m.value() for m in messages])
    assert batch.errors == []
    # The same seed and start time give the same records: compare with a local run.
    expected = EventGenerator(GeneratorSettings(schema_json=stream.avro_schema_json), seed).messages(event_times(start, 0, 0, n))
    assert sorted(m.value() for m in messages) == sorted(e.value for e in expected)
    assert sorted(batch.columns["ts"]) == [start + i for i in range(n)]


def test_malformed_and_keyed_events_arrive_as_written(kafka_bootstrap, new_topic):
    topic = new_topic(partitions=2)
    n = 1000
    assert main(
        ["generate", "--bootstrap", kafka_bootstrap, "--topic", topic, "--count", str(n), "--rate", "0", "--keyed",
         "--malformed-fraction", "0.1", "--seed", "3", "--start-ms", "0", "--no-progress"]
    ) == 0  # fmt: skip
    messages = read_all(kafka_bootstrap, topic, 2, n)
    assert len(messages) == n
    batch = make_decoder(load_pipeline().stream("iot-monitoring-stream")).decode([m.value() for m in messages])
    assert 50 < len(batch.errors) < 150
    good = [messages[i] for i in batch.index]
    assert [m.key().decode() for m in good] == batch.columns["error_code"]
