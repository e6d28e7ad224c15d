"""Small Kafka helpers for tests: produce records, read a topic to its end."""

from __future__ import annotations

import time
from typing import Iterable, Mapping

from confluent_kafka import Consumer, Producer, TopicPartition


def produce(bootstrap: str, topic: str, values: Iterable[bytes | None], partition: int | None = None,
            key: bytes | None = None, headers: list | None = None, config: Mapping[str, str] | None = None,
            timestamps: Iterable[int] | None = None) -> int:
    """`timestamps`: each record's Kafka timestamp (epoch ms), else the producer's clock."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True, **(config or {})})
    n = 0
    stamps = iter(timestamps) if timestamps is not None else None
    for value in values:
        kwargs: dict = {"partition": partition} if partition is not None else {}
        if stamps is not None:
            kwargs["timestamp"] = next(stamps)
        producer.produce(topic, value=value, key=key, headers=headers, **kwargs)
        n += 1
        if n % 10000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    return n


def read_all(bootstrap: str, topic: str, timeout_s: float = 30.0, expect: int | None = None,
             config: Mapping[str, str] | None = None) -> list:
    """Every record of the topic as (key, value, headers, partition, offset), in
    partition then offset order; waits for `expect` records when given.
    `config`: more client settings (a secured listener's)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time_ns()}",
                         "enable.auto.commit": False, "log_level": 0, **(config or {})})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = sorted(meta.partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        deadline = time.monotonic() + timeout_s
        while expect is not None and sum(ends.values()) < expect and time.monotonic() < deadline:
            time.sleep(0.2)
            ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        got: dict[int, list] = {p: [] for p in parts}
        while any(len(got[p]) < ends[p] for p in parts) and time.monotonic() < deadline + 10:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error() is None:
                    got[msg.partition()].append((msg.key(), msg.value(), msg.headers() or [], msg.partition(), msg.offset()))
        return [r for p in parts for r in got[p]]
    finally:
        consumer.close()
