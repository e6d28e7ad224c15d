"""A test's own view of a RabbitMQ exchange: an exclusive queue bound with `#`."""

from __future__ import annotations

import pika


def bound_queue(url: str, exchange: str) -> tuple[pika.BlockingConnection, object, str]:
    """(connection, channel, queue): the exchange declared as the sink declares it, a queue bound to all of it."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, routing_key="#")
    return connection, channel, queue
