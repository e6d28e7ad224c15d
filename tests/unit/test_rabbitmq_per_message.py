"""What AMQP cannot carry is a problem of one message: the UDF stage
dead-letters its record, and the publisher never mistakes it for a lost
connection. A connection that keeps breaking is retried with growing,
jittered pauses, never in a tight loop. (No broker: see
tests/integration/test_rabbitmq_limits.py for the real one.)"""

from __future__ import annotations

import logging

import orjson
import pika.exceptions as px

import connectors.rabbitmq as rabbitmq
from connectors.rabbitmq import RabbitPublisher
from engine.amqp_checks import encoding_problem
from engine.records import AmqpMessage, RawRecord
from engine.udf_stage import UdfStage


def message(routing_key: str = "C001", headers: dict | None = None) -> AmqpMessage:
    return AmqpMessage(routing_key, b"{}", "id-1", headers or {})


def test_encoding_problems_are_named() -> None:
    assert encoding_problem(message()) is None
    assert encoding_problem(message("é" * 127)) is None  # 254 bytes
    assert encoding_problem(message("x" * 300)) == "amqp-encoding-error: the routing key is 300 bytes, AMQP allows 255"
    assert encoding_problem(message("é" * 128)) == "amqp-encoding-error: the routing key is 256 bytes, AMQP allows 255"
    assert encoding_problem(message(headers={"h" * 256: "v"})) == (
        "amqp-encoding-error: header name 'hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh' is 256 bytes, AMQP allows 255")
    assert encoding_problem(message("bad \udcff")) == "amqp-encoding-error: the routing key is not valid UTF-8 text"
    assert encoding_problem(message(headers={"h": "\ud800"})).startswith("amqp-encoding-error: the value of header")


def test_what_the_check_accepts_pika_can_encode() -> None:
    from connectors.rabbitmq import properties_of
    import pika

    for m in (message("é" * 127, {"h" * 255: "v" * 10_000}), message("", {})):
        assert encoding_problem(m) is None
        pika.spec.Basic.Publish(exchange="", routing_key=m.routing_key, mandatory=True).encode()
        properties_of(m).encode()


def test_the_udf_stage_dead_letters_a_record_whose_message_amqp_cannot_carry() -> None:
    stage = UdfStage(client=None, output_protocol="rabbitmq", output_topic="", dlq_topic="error-count-dlq",
                     key_fields=("error_code",))
    records = [RawRecord("error-count", 0, i, orjson.dumps({"error_code": code}), b'{"n": 1}', None, 1)
               for i, code in enumerate(["C001", "C" * 300, "C002"])]
    out = stage.process(records)
    assert [m.routing_key for m in out.messages] == ["C001", "C002"]
    (letter,) = out.dead
    headers = dict(letter.headers)
    assert letter.topic == "error-count-dlq" and letter.key == records[1].key and letter.value == records[1].value
    assert headers["x-dlq-reason"] == b"amqp-encoding-error: the routing key is 300 bytes, AMQP allows 255"
    assert headers["x-source-offset"] == b"1"


class FlakyChannel:
    """Breaks the connection on the first `breaks` publishes, refuses what pika cannot encode, else takes it."""

    def __init__(self, breaks: int) -> None:
        self.breaks = breaks
        self.taken: list[str] = []

    def basic_publish(self, exchange, routing_key, body, properties, mandatory=False):
        if len(routing_key.encode()) > 255:
            raise px.ShortStringTooLong(routing_key)
        if self.breaks:
            self.breaks -= 1
            raise px.StreamLostError("Stream connection lost")
        self.taken.append(routing_key)


class Connection:
    is_open = True

    def process_data_events(self, time_limit=0):
        pass

    def close(self):
        pass


def publisher_with(channel: FlakyChannel, monkeypatch) -> tuple[RabbitPublisher, list[float], list[int]]:
    publisher = RabbitPublisher("amqp://guest:guest@127.0.0.1:1/%2F", "x", initial_backoff_s=0.5, max_backoff_s=8)
    opened: list[int] = []

    def open_() -> None:
        opened.append(1)
        publisher._connection, publisher._channel = Connection(), channel

    monkeypatch.setattr(publisher, "_open", open_)
    pauses: list[float] = []
    monkeypatch.setattr(rabbitmq.time, "sleep", pauses.append)
    return publisher, pauses, opened


def test_a_message_pika_cannot_encode_is_skipped_without_a_reconnect(monkeypatch) -> None:
    channel = FlakyChannel(breaks=0)
    publisher, pauses, opened = publisher_with(channel, monkeypatch)
    rejected = publisher.publish_batch([message("a"), message("x" * 300), message("b")])
    assert channel.taken == ["a", "b"] and len(opened) == 1 and pauses == []
    assert [r.reason for r in rejected] == ["amqp-encoding-error: the routing key is 300 bytes, AMQP allows 255"]


def test_repeated_losses_back_off_exponentially_with_jitter_and_say_so(monkeypatch, caplog) -> None:
    channel = FlakyChannel(breaks=8)
    publisher, pauses, opened = publisher_with(channel, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="connectors.rabbitmq"):
        assert publisher.publish_batch([message("a"), message("b")]) == []
    assert channel.taken == ["a", "b"] and len(opened) == 9
    nominal = [0.5, 1, 2, 4, 8, 8, 8, 8]
    assert len(pauses) == len(nominal)
    assert all(0.8 * n <= p <= 1.2 * n for p, n in zip(pauses, nominal))
    assert len(set(pauses)) > 1
    assert sum("reconnecting in" in r.getMessage() for r in caplog.records) == 8
