"""Late records read back from the real broker: every one that exists comes
back unchanged, however many and wherever; one that retention deleted is
reported missing with the reason, and only such a one."""

from __future__ import annotations

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import pytest

from connectors.late_fetch import LateRecordFetcher
from engine.records import LateRecord

pytestmark = pytest.mark.broker


def produce(bootstrap: str, topic: str, n: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), headers=[("i", str(i).encode())])
    assert producer.flush(30) == 0


def late(topic: str, offset: int) -> LateRecord:
    return LateRecord(topic, 0, offset, 0, 60_000, 70_000)


def test_late_records_come_back_unchanged_far_apart_and_out_of_order(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic()
    produce(kafka_bootstrap, topic, 3_000)
    fetcher = LateRecordFetcher(kafka_bootstrap, "late")
    try:
        out = fetcher.fetch([late(topic, o) for o in (2_500, 3, 1_200, 3)])
    finally:
        fetcher.close()
    assert [(m.key, m.value) for m in out] == [(b"k2500", b"v2500"), (b"k3", b"v3"), (b"k1200", b"v1200"), (b"k3", b"v3")]
    assert all(dict(m.headers)["x-late-reason"] == b"window-already-fired" for m in out)
    assert all("x-late-missing" not in dict(m.headers) for m in out)


def test_a_record_retention_deleted_is_reported_missing_and_the_others_still_come(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic()
    produce(kafka_bootstrap, topic, 20)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.delete_records([TopicPartition(topic, 0, 10)])[TopicPartition(topic, 0, 10)].result(30)
    fetcher = LateRecordFetcher(kafka_bootstrap, "late")
    try:
        out = fetcher.fetch([late(topic, 4), late(topic, 15), late(topic, 9)])
    finally:
        fetcher.close()
    gone, kept, also_gone = out
    assert (kept.key, kept.value) == (b"k15", b"v15") and "x-late-missing" not in dict(kept.headers)
    for record, offset in ((gone, b"4"), (also_gone, b"9")):
        headers = dict(record.headers)
        assert (record.key, record.value) == (None, None)
        assert headers["x-source-offset"] == offset
        assert headers["x-late-missing"] == b"deleted by retention (offset below the partition's low watermark 10)"
