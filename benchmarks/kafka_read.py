"""Read a topic from the beginning to the end it had at start, in batches.

Shared by the transport-limit and plain-loop contenders, and by the harness
to collect each contender's results."""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterator, Mapping

from confluent_kafka import Consumer, TopicPartition


def consumer(bootstrap: str, extra: Mapping[str, str] | None = None) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "enable.partition.eof": False, "log_level": 3, **(extra or {}),
    })


def batches(bootstrap: str, topic: str, batch_size: int = 10_000, timeout_s: float = 600.0,
            extra: Mapping[str, str] | None = None) -> Iterator[list[Any]]:
    """Every message of every partition, as lists of confluent-kafka messages."""
    c = consumer(bootstrap, extra)
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {}
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            if high > low:
                ends[p] = high
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + timeout_s
        last_error = None
        while ends:
            if time.monotonic() > deadline:
                positions = c.position([TopicPartition(topic, p) for p in ends])
                raise TimeoutError(f"{topic}: partitions not read to their end (ends {ends}, positions "
                                   f"{[(tp.partition, tp.offset) for tp in positions]}, last error {last_error})")
            msgs = c.consume(batch_size, timeout=0.5)
            good = [m for m in msgs if m.error() is None]
            if len(good) < len(msgs):
                last_error = next(m.error() for m in msgs if m.error() is not None)
            for m in good:
                p = m.partition()
                if p in ends and m.offset() >= ends[p] - 1:
                    del ends[p]
            if not good and ends:  # the end may be a transaction marker, which is never delivered
                for tp in c.position([TopicPartition(topic, p) for p in ends]):
                    if tp.offset >= ends[tp.partition]:
                        del ends[tp.partition]
            if good:
                yield good
    finally:
        c.close()


def read_values(bootstrap: str, topic: str, attempts: int = 3) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of a (small) topic. A fresh consumer now
    and then stalls before the end of a topic another client just wrote;
    a new one reads it, so a stalled read is retried."""
    for attempt in range(attempts):
        try:
            return [(m.key(), m.value()) for batch in batches(bootstrap, topic, 1000, 20) for m in batch]
        except TimeoutError as exc:
            if attempt == attempts - 1:
                raise
            print(f"  (re-reading {topic}: {exc})")
    return []
