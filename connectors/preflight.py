"""Start-up I/O, done once before the dataflow is built: wait for the brokers,
create the topics and declare the exchanges that `config.needs` lists.

A Kafka cluster that does not answer within the timeout is a
`BrokerUnavailable` error; a RabbitMQ that refuses the credentials, the
virtual host or the exchange's type, or whose TLS handshake fails, is a
`RabbitMQConfigError`; a RabbitMQ that is merely down is not an error (its
sink waits for it).
"""

from __future__ import annotations

import logging

from config.needs import Needs
from connectors.kafka_admin import ensure_topics, wait_for_kafka

log = logging.getLogger(__name__)

RABBITMQ_PREFLIGHT_TIMEOUT_S = 3.0


def prepare(needs: Needs, connect_timeout_s: float) -> None:
    """Make every topic and exchange of `needs` exist."""
    for group in needs.kafka:
        admin = wait_for_kafka(group.servers, connect_timeout_s, group.properties)
        ensure_topics(admin, group.topics)
    if needs.exchanges:
        from connectors.rabbitmq import RabbitPublisher  # pika loads only when an output is RabbitMQ

        for exchange in needs.exchanges:
            publisher = RabbitPublisher(exchange.url, exchange.name, connect_timeout_s=RABBITMQ_PREFLIGHT_TIMEOUT_S,
                                        tls=exchange.tls)
            try:
                publisher.connect()
            except ConnectionError as exc:
                log.warning("%s; the pipeline starts anyway and waits for it", exc)
            finally:
                publisher.close()
