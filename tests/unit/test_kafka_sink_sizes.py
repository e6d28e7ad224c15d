"""The Kafka sink's rules for records too large to write, as pure functions,
and a shutdown that cannot hang on a broker that is away (no broker here)."""

from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.kafka_sink import KafkaOutSink, fit, record_size
from engine.dead_letters import dead_letter
from engine.records import KafkaOut, RawRecord

LIMIT = 1_000_000


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 3_000_000), st.integers(0, 1_500_000), st.lists(st.integers(0, 800_000), max_size=3),
       st.booleans())
def test_a_copy_of_any_size_is_cut_to_fit_keeping_the_pipelines_headers(value_size, key_size, header_sizes, keyless):
    own = [(f"h{i}", b"h" * n) for i, n in enumerate(header_sizes)]
    source = RawRecord("in", 2, 99, None if keyless else b"k" * key_size, b"v" * value_size, own, 5)
    letter = dead_letter(source, "json-decode-error: x", "in-dlq")
    cut = fit(letter, LIMIT)
    assert cut is not None and record_size(cut) <= LIMIT
    headers = dict(cut.headers)
    assert headers["x-dlq-reason"] == b"json-decode-error: x"
    assert (headers["x-source-topic"], headers["x-source-partition"], headers["x-source-offset"]) == (b"in", b"2", b"99")
    assert letter.value.startswith(cut.value)
    assert ("x-value-truncated" in headers) == (len(cut.value) < value_size)
    if len(cut.value) < value_size:
        assert headers["x-value-original-size"] == str(value_size).encode()
    if not keyless:
        assert source.key.startswith(cut.key)
        assert ("x-key-truncated" in headers) == (len(cut.key) < key_size)
    assert ("x-headers-dropped" in headers) == (not set(dict(own)) <= set(headers))
    if record_size(letter) <= LIMIT:
        assert cut is letter


def test_a_record_that_is_not_a_copy_is_never_cut() -> None:
    assert fit(KafkaOut("out", None, b"x" * 2_000_000), LIMIT) is None
    small = KafkaOut("out", None, b"x")
    assert fit(small, LIMIT) is small


def test_closing_with_the_broker_away_returns_within_its_timeout() -> None:
    part = KafkaOutSink("127.0.0.1:9", {"socket.connection.setup.timeout.ms": "1000"}).build("test", 0, 1)
    part.close_timeout_s = 1.0
    part.producer.produce("t", value=b"never confirmed")
    closer = threading.Thread(target=part.close, daemon=True)
    started = time.monotonic()
    closer.start()
    closer.join(15)
    assert not closer.is_alive(), "close() hung on a broker that is away"
    assert time.monotonic() - started < 10


def test_a_header_name_that_was_not_utf8_is_written_with_a_replacement_character() -> None:
    from connectors.kafka_sink import writable_headers

    names = [name for name, _ in writable_headers([("ok", b"1"), ("h\udcff", b"2"), ("x\ud800", None)])]
    assert names[:2] == ["ok", "h\ufffd"] and all(n.encode() for n in names)
    clean = [("ok", b"1")]
    assert writable_headers(clean) is clean
    part = KafkaOutSink("127.0.0.1:9").build("test", 0, 1)  # produce() is local: no broker needed
    part._produce(KafkaOut("t", None, b"v", [("h\udcff", b"2")]), KafkaOut("t", None, b"v"))
    # queued, not crashed (the length also counts the refused connection's error events, hence >=)
    assert len(part.producer) >= 1
