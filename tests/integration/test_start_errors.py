"""Mistakes in where the brokers are stop the dataflow at start with one
clear line, not a traceback; a RabbitMQ that is merely down is waited for."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.support.pipeline import run_dataflow, seed_pipeline, start_dataflow
from tests.support.ports import free_port

pytestmark = pytest.mark.broker


def test_wrong_rabbitmq_credentials_are_a_clear_error(tmp_path: Path, kafka_bootstrap: str, rabbitmq_url: str, new_topic) -> None:
    source, sink = new_topic(), new_topic()
    wrong = rabbitmq_url.replace("guest:guest@", "guest:not-the-password@")
    result = run_dataflow(seed_pipeline(tmp_path, source, sink), kafka_bootstrap, processors="all",
                          env={"RABBITMQ_URL": wrong}, timeout=90)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "refused the credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_rabbitmq_down_at_start_is_waited_for(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    source, sink = new_topic(), new_topic()
    down = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    proc = start_dataflow(seed_pipeline(tmp_path, source, sink), kafka_bootstrap, processors="all", env={"RABBITMQ_URL": down})
    try:
        time.sleep(12)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert "unreachable" in out
