"""Records too large for Kafka against the real broker: a dead-letter or late
copy is cut to fit and says so; anything else too large is counted and
skipped; neither stops the sink."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import pytest

from connectors.kafka_sink import KafkaOutPartition, KafkaOutSink
from connectors.late_fetch import late_headers
from engine.dead_letters import dead_letter
from engine.records import KafkaOut, LateRecord, RawRecord

pytestmark = pytest.mark.broker


def read_all(bootstrap: str, topic: str, count: int) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "fetch.message.max.bytes": 2_000_000})
    consumer.subscribe([topic])
    got = []
    try:
        for _ in range(60):
            for msg in consumer.consume(10, timeout=0.5):
                assert msg.error() is None
                got.append(msg)
            if len(got) >= count:
                break
    finally:
        consumer.close()
    return got


def sink(bootstrap: str) -> KafkaOutPartition:
    return KafkaOutSink(bootstrap).build("test", 0, 1)


def test_an_oversized_dead_letter_and_late_record_are_cut_to_fit(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic()
    source = RawRecord("in", 3, 41, b"key", b"v" * 1_500_000, [("trace", b"t1")], 1_645_020_000_000)
    letter = dead_letter(source, "json-decode-error: too long", topic)
    late = KafkaOut(topic, source.key, source.value, [*source.headers, *late_headers(LateRecord("in", 3, 41, 0, 60_000, 70_000))])
    small = dead_letter(source._replace(value=b"small"), "json-decode-error: x", topic)
    part = sink(kafka_bootstrap)
    part.write_batch([letter, small, late])
    part.close()
    assert (part.truncated, part.unwritable) == (2, 0)
    got = read_all(kafka_bootstrap, topic, 3)
    assert [len(m.value()) for m in got][1] == 5
    for msg in (got[0], got[2]):
        headers = dict(msg.headers())
        assert msg.key() == b"key" and source.value.startswith(msg.value()) and 900_000 < len(msg.value()) < 1_000_000
        assert headers["x-value-truncated"] == b"true" and headers["x-value-original-size"] == b"1500000"
        assert (headers["x-source-topic"], headers["x-source-partition"], headers["x-source-offset"]) == (b"in", b"3", b"41")
        assert headers["trace"] == b"t1"
    assert dict(got[0].headers())["x-dlq-reason"] == b"json-decode-error: too long"
    assert dict(got[2].headers())["x-late-reason"] == b"window-already-fired"


def test_an_oversized_output_is_counted_and_skipped_and_the_rest_is_written(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic()
    part = sink(kafka_bootstrap)
    part.write_batch([KafkaOut(topic, b"a", b"x" * 1_200_000), KafkaOut(topic, b"b", b"fine")])
    part.close()
    assert part.unwritable == 1
    assert [(m.key(), m.value()) for m in read_all(kafka_bootstrap, topic, 1)] == [(b"b", b"fine")]


def test_a_topic_with_a_lower_limit_gets_copies_cut_further_and_the_rest_alone(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic() + "-small"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "100000"})])[topic].result(30)
    Producer({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10)
    part = sink(kafka_bootstrap)
    source = RawRecord("in", 0, 7, None, b"v" * 300_000, None, None)
    part.write_batch([dead_letter(source, "avro-decode-error: x", topic), KafkaOut(topic, None, b"x" * 200_000),
                      KafkaOut(topic, None, b"next")])
    part.close()
    assert (part.truncated, part.unwritable) == (1, 1)  # the copy cut further, the plain record not written
    first, second = read_all(kafka_bootstrap, topic, 2)
    assert source.value.startswith(first.value()) and len(first.value()) < 100_000
    assert dict(first.headers())["x-value-original-size"] == b"300000"
    assert second.value() == b"next"
