"""Start-up I/O, done once before the dataflow is built: wait for the brokers,
create the topics and declare the exchanges that `config.needs` lists, and
try the UDF channels and the input streams' schema registries, so that
credentials or TLS settings they refuse stop the start in one line.

Topics are made with the settings they need (an upsert-kafka Stream's is
compacted, so that a later row for a key replaces the earlier one); a topic
that exists without them is used as it is, with a warning that says what
to change. A Kafka cluster that does not answer within the timeout is a
`BrokerUnavailable` error; a RabbitMQ that refuses the credentials, the
virtual host or the exchange's type, or whose TLS handshake fails, is a
`RabbitMQConfigError`; a RabbitMQ that is merely down is not an error (its
sink waits for it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource, ResourceType

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
        ensure_topics(admin, group.topics, configs=group.configs)
        check_topic_configs(admin, group.configs, connect_timeout_s)
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


def check_topic_configs(admin: Any, configs: Mapping[str, Mapping[str, str]], timeout_s: float) -> None:
    """Warn about a topic that exists with other values of the settings it needs."""
    if not configs:
        return
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in configs]
    for resource, future in admin.describe_configs(resources, request_timeout=timeout_s).items():
        try:
            found = future.result()
        except KafkaException as exc:
            log.warning("cannot read the settings of topic %s (%s); it should have %s", resource.name, exc,
                        _settings(configs[resource.name]))
            continue
        wrong = {k: v for k, v in configs[resource.name].items() if k not in found or found[k].value != v}
        if wrong:
            have = ", ".join(f"{k}={found[k].value if k in found else '(unset)'}" for k in wrong)
            log.warning("topic %s has %s; an upsert-kafka Stream's topic needs %s, or a compacting consumer keeps every "
                        "row of a key (kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config %s)",
                        resource.name, have, _settings(wrong), resource.name, _settings(wrong))


def _settings(values: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items())
