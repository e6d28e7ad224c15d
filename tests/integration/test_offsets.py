"""Offsets against the real broker: a bounded run over a transactional topic
finishes (its last offset is a commit marker, never a record), aborted
records are not read, the offsets of snapshots are committed to the
Processor's consumer group, and a resume point lost to retention is said."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.integration.test_engine_kafka import avro, check_ok, expected_counts, result_counts, seed_events
from tests.support.kafka_io import read_all
from tests.support.pipeline import run_dataflow, seed_pipeline, start_dataflow

pytestmark = pytest.mark.broker


def produce_in_transactions(bootstrap: str, topic: str, committed: list[list[bytes]], aborted: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex[:8]}", "log_level": 0})
    producer.init_transactions(30)
    for values in committed:
        producer.begin_transaction()
        for v in values:
            producer.produce(topic, value=v, partition=0)
        producer.commit_transaction(30)
    producer.begin_transaction()
    for v in aborted:
        producer.produce(topic, value=v, partition=0)
    producer.flush(30)
    producer.abort_transaction(30)


@pytest.mark.parametrize("native", ["1", "0"])
def test_a_bounded_run_over_a_transactional_topic_finishes(tmp_path: Path, kafka_bootstrap: str, new_topic, native: str) -> None:
    source, sink = new_topic(), new_topic()
    events = seed_events(600, seed=3, minutes=3)
    noise = seed_events(50, seed=4, minutes=3)
    produce_in_transactions(kafka_bootstrap, source, [avro(events[:300]), avro(events[300:])], avro(noise))
    started = time.monotonic()
    check_ok(run_dataflow(seed_pipeline(tmp_path, source, sink), kafka_bootstrap, env={"IOT_NATIVE_KAFKA": native}, timeout=90))
    assert time.monotonic() - started < 60
    assert result_counts(read_all(kafka_bootstrap, sink)) == expected_counts(events)


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})
    try:
        return [tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)]
    finally:
        consumer.close()


def test_snapshots_commit_their_offsets_to_the_processors_group(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    from tests.support.kafka_io import produce

    source, sink = new_topic(partitions=2), new_topic()
    for p in range(2):
        produce(kafka_bootstrap, source, avro(seed_events(200, seed=p)), partition=p)
    store = tmp_path / "recovery"
    store.mkdir()
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(store), "1"], check=True)
    proc = start_dataflow(seed_pipeline(tmp_path, source, sink), kafka_bootstrap, args=("-r", str(store), "-s", "1", "-b", "0"))
    try:
        deadline = time.monotonic() + 60
        offsets = [-1001, -1001]
        while time.monotonic() < deadline and offsets != [200, 200]:
            time.sleep(1)
            offsets = committed(kafka_bootstrap, "iot-monitoring-processor", source, 2)
        assert offsets == [200, 200]
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_resume_point_lost_to_retention_is_said_and_the_rest_is_read(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    import subprocess
    import sys

    from confluent_kafka.admin import AdminClient

    from tests.support.kafka_io import produce

    source, sink = new_topic(), new_topic()
    first = seed_events(100, seed=1, minutes=1)
    produce(kafka_bootstrap, source, avro(first), partition=0)
    store = tmp_path / "recovery"
    store.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(store), "1"], check=True)
    pipeline = seed_pipeline(tmp_path, source, sink)
    recovery = ("-r", str(store), "-s", "1", "-b", "0")
    check_ok(run_dataflow(pipeline, kafka_bootstrap, args=recovery))
    later = [dict(e, ts=e["ts"] + 3_600_000) for e in seed_events(100, seed=2, minutes=1)]
    produce(kafka_bootstrap, source, avro(later), partition=0)
    # retention takes the first 150 records, 50 of which this dataflow never read
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.delete_records([TopicPartition(source, 0, 150)]).values():
        future.result(30)
    result = run_dataflow(pipeline, kafka_bootstrap, args=recovery)
    check_ok(result)
    assert "offset 100, where this dataflow stopped, is gone (the log now starts at 150)" in result.stderr
    assert "50 record(s) were deleted by retention" in result.stderr
    counts = result_counts([r for r in read_all(kafka_bootstrap, sink) if b'"window_start":"2022-02-16 15:' in r[1]])
    assert counts == expected_counts(later[50:])
