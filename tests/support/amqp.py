"""RabbitMQ helpers for tests: a queue bound to an exchange, and what it received."""

from __future__ import annotations

from typing import Any

import pika

from config.pipeline import TlsSettings
from connectors.rabbitmq import connection_parameters


def bound_queue(url: str, exchange: str, tls: TlsSettings | None = None) -> tuple[pika.BlockingConnection, Any, str]:
    """(connection, channel, queue): an exclusive queue bound with `#` to the
    durable topic exchange, declared as the pipeline declares it."""
    connection = pika.BlockingConnection(connection_parameters(url, tls))
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, routing_key="#")
    return connection, channel, queue


def drain(channel: Any, queue: str, inactivity_s: float = 3.0) -> list[tuple[Any, Any, bytes]]:
    """Every (method, properties, body) the queue delivers until it is quiet for `inactivity_s`."""
    received = []
    for method, properties, body in channel.consume(queue, inactivity_timeout=inactivity_s):
        if method is None:
            break
        received.append((method, properties, body))
    return received
