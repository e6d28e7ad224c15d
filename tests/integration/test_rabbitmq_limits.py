"""The RabbitMQ publisher against the real broker: a message AMQP cannot
carry is skipped without touching the connection, and messages no queue is
bound for, which RabbitMQ confirms and drops, are counted."""

from __future__ import annotations

import threading

import pika
import pytest

from connectors.rabbitmq import AmqpMessage, RabbitPublisher, stable_message_id

pytestmark = pytest.mark.broker


def msg(key: str, i: int) -> AmqpMessage:
    return AmqpMessage(key, f'{{"i":{i}}}'.encode(), stable_message_id("limits", key, i))


def bound_queue(url: str, exchange: str, key: str) -> tuple[pika.BlockingConnection, str]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, routing_key=key)
    return connection, queue


def drain(connection: pika.BlockingConnection, queue: str) -> list[str]:
    channel = connection.channel()
    got = []
    for method, _, _ in channel.consume(queue, inactivity_timeout=2):
        if method is None:
            break
        got.append(method.routing_key)
        channel.basic_ack(method.delivery_tag)
    channel.cancel()
    return got


def test_a_routing_key_too_long_for_amqp_is_skipped_and_the_rest_delivered(rabbitmq_url: str, new_exchange) -> None:
    exchange = new_exchange()
    publisher = RabbitPublisher(rabbitmq_url, exchange)
    publisher.connect()
    connection, queue = bound_queue(rabbitmq_url, exchange, "#")
    connects = []
    real_open = publisher._open
    publisher._open = lambda: connects.append(1) or real_open()
    result: list = []
    worker = threading.Thread(target=lambda: result.append(
        publisher.publish_batch([msg("C001", 0), msg("C" * 300, 1), msg("C002", 2)])), daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "publish_batch is stuck reconnecting"
    (rejected,) = result
    assert [r.message.message_id for r in rejected] == [stable_message_id("limits", "C" * 300, 1)]
    assert connects == []  # the connection was never taken for lost
    assert drain(connection, queue) == ["C001", "C002"]
    connection.close()
    publisher.close()


def test_messages_no_queue_is_bound_for_are_counted(rabbitmq_url: str, new_exchange) -> None:
    exchange = new_exchange()
    publisher = RabbitPublisher(rabbitmq_url, exchange)
    publisher.connect()
    assert publisher.publish_batch([msg("C001", i) for i in range(5)]) == []
    assert (publisher.published, publisher.unroutable) == (5, 5)  # confirmed, and dropped by the exchange
    connection, queue = bound_queue(rabbitmq_url, exchange, "C001")
    publisher.publish_batch([msg("C001", 5), msg("C002", 6), msg("C001", 7)])
    assert (publisher.published, publisher.unroutable) == (8, 6)
    assert drain(connection, queue) == ["C001", "C001"]
    connection.close()
    publisher.close()
