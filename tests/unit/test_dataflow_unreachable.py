"""Starting the dataflow against a Kafka that is not there is a clear error
within the configured time, not a hang (Bytewax's own source waits forever)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.support.pipeline import run_dataflow, seed_pipeline


def test_unreachable_kafka_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    result = run_dataflow(seed_pipeline(tmp_path, "in", "out"), f"127.0.0.1:{port}", env={"IOT_CONNECT_TIMEOUT": "3"}, timeout=60)
    assert result.returncode == 2
    assert f"Kafka at 127.0.0.1:{port} did not answer within 3 s" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30

