"""Real round trips through the brokers the tests run against."""

from __future__ import annotations

import pika
from confluent_kafka import Consumer, Producer

import pytest

pytestmark = pytest.mark.broker


def test_kafka_round_trip_keeps_order_per_partition(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    for i in range(1000):
        partition = i % 3
        value = f"record-{i}".encode()
        producer.produce(topic, value=value, partition=partition)
        sent[partition].append(value)
    assert producer.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    received: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    try:
        for _ in range(200):
            for msg in consumer.consume(500, timeout=0.5):
                assert msg.error() is None
                received[msg.partition()].append(msg.value())
            if sum(map(len, received.values())) >= 1000:
                break
    finally:
        consumer.close()
    assert received == sent


def test_rabbitmq_round_trip_with_confirms(rabbitmq_url: str, new_exchange) -> None:
    exchange = new_exchange()
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, exchange, routing_key="#")
        channel.confirm_delivery()
        bodies = [f"message-{i}".encode() for i in range(50)]
        for i, body in enumerate(bodies):
            channel.basic_publish(
                exchange, routing_key=f"code.{i % 5}", body=body,
                properties=pika.BasicProperties(delivery_mode=2, message_id=str(i)), mandatory=True,
            )
        got = []
        for method, properties, body in channel.consume(queue, inactivity_timeout=5):
            if method is None:
                break
            got.append((properties.message_id, method.routing_key, body))
            channel.basic_ack(method.delivery_tag)
            if len(got) == len(bodies):
                break
        channel.cancel()
    finally:
        connection.close()
    assert got == [(str(i), f"code.{i % 5}", bodies[i]) for i in range(50)]
