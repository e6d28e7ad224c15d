"""Kafka going away mid-run and coming back: the dataflow waits and resumes,
losing nothing. Runs against a Kafka of its own so the session's broker
stays up for the other tests."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from cli.local_stack import LocalKafka, StackConfig
from connectors.kafka_admin import ensure_topics, wait_for_kafka
from tests.integration.test_engine_kafka import avro, event, expected_counts, result_counts
from tests.support.kafka_io import produce, read_all
from tests.support.pipeline import seed_pipeline, start_dataflow
from tests.support.ports import free_port

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BASE = 1_645_020_000_000


def test_kafka_restart_mid_run_loses_nothing(tmp_path: Path, kafka_bootstrap: str) -> None:
    kafka = LocalKafka(StackConfig(home=tmp_path / "stack", kafka_port=free_port(), kafka_controller_port=free_port()))
    kafka.up()
    bootstrap = kafka.cfg.kafka_bootstrap
    proc = None
    try:
        ensure_topics(wait_for_kafka(bootstrap), {"events": 1, "counts": 1})
        first = [event(BASE + i * 1_000, f"C00{i % 3 + 1}") for i in range(90)]  # minute 0 and half of minute 1
        produce(bootstrap, "events", avro(first), partition=0)
        proc = start_dataflow(seed_pipeline(tmp_path, "events", "counts"), bootstrap)
        assert len(read_all(bootstrap, "counts", timeout_s=60, expect=3)) == 3  # minute 0 fired

        kafka.down()
        time.sleep(5)
        assert proc.poll() is None, "the dataflow died while Kafka was away"
        kafka.up()

        second = [event(BASE + 90_000 + i * 1_000, f"C00{i % 3 + 1}") for i in range(60)]
        produce(bootstrap, "events", avro(second), partition=0)
        records = read_all(bootstrap, "counts", timeout_s=90, expect=9)
        assert result_counts(records) == expected_counts(first + second)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
        kafka.down()
