"""Start-up I/O, done once before the dataflow is built: wait for the brokers,
create the topics and declare the exchanges that `config.needs` lists, and
try the UDF channels and the input streams' schema registries, so that
credentials or TLS settings they refuse stop the start in one line.

A Kafka cluster that does not answer within the timeout is a
`BrokerUnavailable` error; a RabbitMQ that refuses the credentials, the
virtual host or the exchange's type, or whose TLS handshake fails, is a
`RabbitMQConfigError`; a RabbitMQ that is merely down is not an error (its
sink waits for it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable

from config.needs import Needs
from connectors.kafka_admin import ensure_topics, wait_for_kafka

if TYPE_CHECKING:
    from config.pipeline import StreamSpec
    from connectors.udf_client import UdfSettings

log = logging.getLogger(__name__)

LOOPBACK = ("localhost", "127.0.0.1", "::1")

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


def check_udf_channels(channels: Iterable[UdfSettings]) -> None:
    """Try each UDF channel once (`connectors.udf_client.check_udf`): a TLS
    mismatch stops the start with a clear UdfConfigError; a UDF that is not up
    yet is waited for by its stage. Plaintext to another host is allowed,
    with a warning."""
    for settings in channels:
        from connectors.udf_client import check_udf  # gRPC loads only when a UDF stage runs

        host = settings.address.rpartition(":")[0].strip("[]")
        if settings.tls is None and host not in LOOPBACK:
            log.warning("%s: calling the UDF at %s in plaintext; set srp.grpc.tls.* (or IOT_UDF_TLS_*) to encrypt it",
                        settings.name, settings.address)
        if not check_udf(settings):
            log.info("%s: the UDF at %s does not answer yet; calls wait for it", settings.name, settings.address)


def check_schema_registries(sources: Iterable[StreamSpec]) -> None:
    """Ask each schema registry the Avro inputs use, once: refused credentials
    or a failed TLS handshake raise SchemaRegistryConfigError; a registry that
    does not answer is left to the lookups, which retry."""
    from engine.serde.registry import check_registry

    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for stream in sources:
        if stream.value_format != "avro-confluent" or not stream.schema_registry_url:
            continue
        key = (stream.schema_registry_url, tuple(sorted(stream.schema_registry_settings.items())))
        if key not in seen:
            seen.add(key)
            check_registry(stream.schema_registry_url, stream.schema_registry_settings)
