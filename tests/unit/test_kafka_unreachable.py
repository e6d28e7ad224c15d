"""An unreachable Kafka is a clear error within a bounded time, not a hang."""

from __future__ import annotations

import socket
import time

import pytest

from connectors.kafka_admin import BrokerUnavailable, wait_for_kafka


def test_nothing_listening_gives_clear_error_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing answers there
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=f"Kafka at 127.0.0.1:{port} did not answer within 2 s"):
        wait_for_kafka(f"127.0.0.1:{port}", timeout_s=2)
    assert time.monotonic() - started < 10

