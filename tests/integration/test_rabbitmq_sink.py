"""The RabbitMQ sink against a real broker: confirms, durability, routing, restarts."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pika
import pika.exceptions as px
import pytest

from connectors.rabbitmq import AmqpMessage, RabbitMQConfigError, RabbitMQSink, RabbitPublisher, stable_message_id
from tests.support.ports import free_port

pytestmark = pytest.mark.broker

CODES = ["C001_ABORTED", "C002_ALREADY_EXISTS", "C003_CANCELLED"]


def messages(n: int, start: int = 0) -> list[AmqpMessage]:
    return [
        AmqpMessage(
            routing_key=CODES[i % len(CODES)],
            body=f'{{"seq":{i}}}'.encode(),
            message_id=stable_message_id("test", i),
            headers={"windowStartTime": str(60_000 * i), "x-seq": str(i)},
            content_type="application/json",
        )
        for i in range(start, start + n)
    ]


def drain(channel, queue: str, idle_s: float = 2.0) -> list[tuple]:
    got = []
    for method, props, body in channel.consume(queue, inactivity_timeout=idle_s):
        if method is None:
            break
        got.append((method.routing_key, props.message_id, props.headers or {}, props.delivery_mode, props.content_type, body))
        channel.basic_ack(method.delivery_tag)
    channel.cancel()
    return got


def test_publish_with_confirms_to_a_durable_topic_exchange(rabbitmq_url: str, new_exchange) -> None:
    exchange = new_exchange()
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    publisher = RabbitPublisher(rabbitmq_url, exchange)
    publisher.connect()  # declares the exchange, so queues can bind before anything is published
    everything = channel.queue_declare("", exclusive=True).method.queue
    only_c001 = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(everything, exchange, routing_key="#")
    channel.queue_bind(only_c001, exchange, routing_key="C001_ABORTED")

    sent = messages(300)
    publisher.publish_batch(sent)
    assert publisher.published == len(sent)  # returned only after every confirm
    publisher.close()

    got = drain(channel, everything)
    assert [g[1] for g in got] == [m.message_id for m in sent]  # one queue, one publisher: order kept
    for (rk, message_id, headers, mode, content_type, body), m in zip(got, sent):
        assert (rk, body, content_type) == (m.routing_key, m.body, m.content_type)
        assert headers == dict(m.headers)
        assert mode == 2
    routed = drain(channel, only_c001)
    assert [g[1] for g in routed] == [m.message_id for m in sent if m.routing_key == "C001_ABORTED"]

    # the exchange is a durable topic exchange: declaring it otherwise is refused by the broker
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    with pytest.raises(px.ChannelClosedByBroker) as caught:
        channel.exchange_declare(exchange, exchange_type="topic", durable=False)
    assert caught.value.reply_code == 406
    channel = connection.channel()
    channel.exchange_delete(exchange)
    connection.close()


def test_bytewax_sink_with_a_required_queue(rabbitmq_url: str, new_exchange) -> None:
    from bytewax import operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSource, run_main

    exchange = new_exchange()
    queue = f"{exchange}.audit"
    sent = messages(120)
    flow = Dataflow("rabbit-sink-test")
    items = op.input("in", flow, TestingSource(sent, batch_size=25))
    op.output("out", items, RabbitMQSink(rabbitmq_url, exchange, required_queues=[queue]))
    run_main(flow)

    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    got = drain(channel, queue)
    assert sorted(g[1] for g in got) == sorted(m.message_id for m in sent)
    channel.queue_delete(queue)
    channel.exchange_delete(exchange)
    connection.close()


def test_configuration_errors_are_reported_not_retried(rabbitmq_url: str, new_exchange) -> None:
    params = pika.URLParameters(rabbitmq_url)
    wrong_password = f"amqp://guest:not-the-password@{params.host}:{params.port}/%2F"
    began = time.monotonic()
    with pytest.raises(RabbitMQConfigError, match="credentials"):
        RabbitPublisher(wrong_password, new_exchange()).connect()
    missing_vhost = f"amqp://guest:guest@{params.host}:{params.port}/no-such-vhost-{uuid.uuid4().hex[:6]}"
    with pytest.raises(RabbitMQConfigError, match="no-such-vhost"):
        RabbitPublisher(missing_vhost, new_exchange()).connect()
    assert time.monotonic() - began < 15

    exchange = new_exchange()
    connection = pika.BlockingConnection(params)
    connection.channel().exchange_declare(exchange, exchange_type="direct", durable=True)
    with pytest.raises(RabbitMQConfigError, match=exchange):
        RabbitPublisher(rabbitmq_url, exchange).connect()
    connection.channel().exchange_delete(exchange)
    connection.close()


# --- a private broker that the test can stop and restart (the shared one serves other tests) -----


@pytest.fixture
def private_rabbitmq(tmp_path: Path, rabbitmq_url: str):
    """A RabbitMQ node of its own (started by the stack's code on free ports), not started yet.
    Depends on `rabbitmq_url` so that the shared stack, and its epmd, are up first."""
    from cli.local_stack import LocalRabbitMQ, StackConfig

    node = LocalRabbitMQ(StackConfig(home=tmp_path / "stack", rabbitmq_port=free_port(), rabbitmq_dist_port=free_port()))
    try:
        yield node
    finally:
        node.down()


@pytest.mark.slow
def test_broker_down_at_start_and_restarted_mid_stream_loses_nothing(private_rabbitmq, caplog) -> None:
    url = private_rabbitmq.cfg.rabbitmq_url
    exchange, queue = f"x-restart-{uuid.uuid4().hex[:8]}", "restart.audit"
    publisher = RabbitPublisher(url, exchange, required_queues=[queue], initial_backoff_s=0.2, max_backoff_s=1.0,
                                log_every_s=2.0)
    batches = [messages(25, start=b * 25) for b in range(40)]
    failure: list[BaseException] = []

    def publish_all() -> None:
        try:
            for batch in batches:
                publisher.publish_batch(batch)
                time.sleep(0.1)
        except BaseException as exc:  # surfaced by the assertion below
            failure.append(exc)

    caplog.set_level(logging.INFO, logger="connectors.rabbitmq")
    worker = threading.Thread(target=publish_all)
    worker.start()  # the broker is not running yet
    time.sleep(1.0)
    assert publisher.published == 0
    private_rabbitmq.up()
    deadline = time.monotonic() + 60
    while publisher.published < 10 * 25 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.is_alive(), "the stream ended before the broker restart; make it longer"
    private_rabbitmq.down()
    private_rabbitmq.up()
    worker.join(180)
    assert not worker.is_alive() and not failure, failure
    publisher.close()

    log_text = "\n".join(r.getMessage() for r in caplog.records)
    assert "is unreachable" in log_text  # down at start
    assert "lost the RabbitMQ connection" in log_text or "still waiting" in log_text  # the restart was noticed

    connection = pika.BlockingConnection(pika.URLParameters(url))
    got = drain(connection.channel(), queue, idle_s=3.0)
    connection.close()
    sent = {m.message_id: m.body for batch in batches for m in batch}
    received = Counter(g[1] for g in got)
    assert set(received) == set(sent)  # nothing lost
    for _, message_id, _, mode, _, body in got:  # a repeat is the same message under the same id
        assert body == sent[message_id] and mode == 2
