"""Kafka administration the pipeline needs before it runs: a bounded
reachability check and topic creation.

Bytewax's own Kafka source lists partitions with no timeout and hangs forever
on an unreachable broker; every Kafka entry point of this package goes through
`wait_for_kafka` first, so a wrong address is a clear error, and a broker that
is still starting is waited for.
"""

from __future__ import annotations

import logging
import time
from typing import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The broker did not answer within the allowed time."""


CONSUMER_ONLY_PREFIXES = ("group.", "auto.", "enable.")  # a Stream's consumer settings an admin client has no use for

_clients: dict[tuple[tuple[str, str], ...], AdminClient] = {}


def admin_config(bootstrap: str, extra: Mapping[str, str] | None = None) -> dict[str, object]:
    """An admin client's settings: a Stream's Kafka properties minus the consumer-only ones."""
    config: dict[str, object] = {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000, "log_level": 0}
    config.update({k: v for k, v in (extra or {}).items() if not k.startswith(CONSUMER_ONLY_PREFIXES)})
    return config


def wait_for_kafka(bootstrap: str, timeout_s: float = 30.0, extra: Mapping[str, str] | None = None) -> AdminClient:
    """Return an admin client once the cluster answers; raise
    BrokerUnavailable naming the address after `timeout_s`.

    The question is the cluster's description (its id and brokers), not the
    list of all topics: on a cluster of a thousand topics, listing them took
    60 ms of every start, describing the cluster 4 ms. librdkafka asks it as
    a metadata request naming no topic, so it needs no permission beyond
    what listing topics needed, and it goes to a broker every time (no
    cached answer hides a broker that went away). One client per
    cluster and settings is kept for the process, since start-up asks
    several times.
    """
    config = admin_config(bootstrap, extra)
    key = tuple(sorted((str(k), str(v)) for k, v in config.items()))  # settings an admin client ignores do not split it
    client = _clients.get(key)
    if client is None:  # (a client's truth value is its queue length: test for None)
        client = AdminClient(config)
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        attempt += 1
        try:
            client.describe_cluster(request_timeout=min(5.0, max(0.5, deadline - time.monotonic()))).result()
            _clients[key] = client
            return client
        except KafkaException as exc:
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(
                    f"Kafka at {bootstrap} did not answer within {timeout_s:.0f} s ({exc.args[0]}); "
                    f"is the broker running? (`iot-monitoring stack up` starts a local one)"
                ) from None
            if attempt == 1:
                log.warning("waiting for Kafka at %s ...", bootstrap)
            time.sleep(0.5)


def partition_counts(client: AdminClient, topics: Iterable[str], timeout_s: float = 10.0) -> dict[str, int]:
    """Partitions per existing topic (missing topics are left out).

    One request names the topics: it neither lists the cluster's other
    topics nor, unlike a metadata request for one topic by name
    (`list_topics(topic)`), makes the broker auto-create a missing one."""
    names = list(dict.fromkeys(topics))
    if not names:
        return {}
    counts: dict[str, int] = {}
    for name, future in client.describe_topics(TopicCollection(names), request_timeout=timeout_s).items():
        try:
            counts[name] = len(future.result().partitions)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not isinstance(error, KafkaError) or error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
    return counts


def ensure_topics(client: AdminClient, topics: Mapping[str, int], timeout_s: float = 30.0) -> None:
    """Create the topics that do not exist yet (name -> partitions), and wait
    until their metadata is visible."""
    existing = partition_counts(client, topics)
    missing = [NewTopic(name, num_partitions=parts, replication_factor=1) for name, parts in topics.items() if name not in existing]
    if not missing:
        return  # all there: no second metadata request at every start
    for name, future in client.create_topics(missing, request_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        log.info("created topic %s", name)
    deadline = time.monotonic() + timeout_s
    while set(partition_counts(client, topics)) != set(topics):
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"topics {sorted(topics)} did not appear within {timeout_s:.0f} s")
        time.sleep(0.1)
