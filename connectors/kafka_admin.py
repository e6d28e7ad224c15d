"""Kafka administration the pipeline needs before it runs: a bounded
reachability check and topic creation.

Bytewax's own Kafka source lists partitions with no timeout and hangs forever
on an unreachable broker; every Kafka entry point of this package goes through
`wait_for_kafka` first, so a wrong address is a clear error, and a broker that
is still starting is waited for. A wrong password or a certificate that does
not verify is not waited out: librdkafka reports it at the first connection,
and it is raised at once, one line naming the listener and the cause.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from config.kafka_security import is_secret_key

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The broker did not answer within the allowed time."""


class KafkaSecurityError(BrokerUnavailable):
    """The broker answered but refused the client: authentication failed,
    its certificate did not verify, or the TLS settings are wrong."""


CONSUMER_ONLY_PREFIXES = ("group.", "auto.", "enable.")  # a Stream's consumer settings an admin client has no use for

@dataclass
class _Watched:
    """An admin client and the security failures librdkafka reported for it."""

    client: AdminClient
    failures: list[str] = field(default_factory=list)


_clients: dict[tuple[tuple[str, str], ...], _Watched] = {}


def admin_config(bootstrap: str, extra: Mapping[str, str] | None = None) -> dict[str, object]:
    """An admin client's settings: a Stream's Kafka properties minus the consumer-only ones."""
    config: dict[str, object] = {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000, "log_level": 0}
    config.update({k: v for k, v in (extra or {}).items() if not k.startswith(CONSUMER_ONLY_PREFIXES)})
    return config


def security_failure(code: int, text: str) -> str | None:
    """The cause, when a client error is the broker refusing this client
    (such an error does not go away by waiting); None for anything else."""
    if code == KafkaError._AUTHENTICATION:
        return "authentication failed"
    if code == KafkaError._SSL or (code == KafkaError._TRANSPORT and "SSL" in text):
        if "certificate verify failed" in text:
            return "certificate verify failed"
        if "alert bad certificate" in text or "certificate required" in text:
            return "the broker refused the client certificate (or none was given)"
        return "TLS handshake failed"
    return None


def _one_line(text: str, config: Mapping[str, object]) -> str:
    """librdkafka's text without its broker prefix and timing suffix, and
    without any secret value of the settings."""
    text = re.sub(r"^\S+://\S+/(?:bootstrap|\d+): ", "", text.strip())
    text = re.sub(r" \(after \d+ms in state [A-Z_]+(?:, \d+ identical error\(s\) suppressed)?\)", "", text)
    for key, value in config.items():
        if is_secret_key(str(key)) and str(value):
            text = text.replace(str(value), "***")
    return " ".join(text.split())


def _listener(bootstrap: str, config: Mapping[str, object]) -> str:
    """`Kafka at host:port (SASL_SSL, SCRAM-SHA-512, user 'u')`: which way in was refused."""
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    details = [protocol]
    if protocol.startswith("SASL"):
        details.append(str(config.get("sasl.mechanism") or config.get("sasl.mechanisms") or "GSSAPI").upper())
        if config.get("sasl.username"):
            details.append(f"user {config['sasl.username']!r}")
    return f"Kafka at {bootstrap} ({', '.join(details)})"


def _key(config: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in config.items()))  # settings an admin client ignores do not split it


def _watched(bootstrap: str, config: dict[str, object]) -> _Watched:
    watched = _clients.get(_key(config))
    if watched is not None:
        return watched
    failures: list[str] = []

    def on_error(error: KafkaError) -> None:
        cause = security_failure(error.code(), error.str())
        if cause is not None:
            failures.append(f"{_listener(bootstrap, config)}: {cause} ({_one_line(error.str(), config)})")

    try:
        client = AdminClient({**config, "error_cb": on_error})
    except KafkaException as exc:  # a file that cannot be read, a setting with a wrong value
        raise KafkaSecurityError(
            f"{_listener(bootstrap, config)}: the client settings are refused ({_one_line(exc.args[0].str(), config)})"
        ) from None
    return _Watched(client, failures)


def wait_for_kafka(bootstrap: str, timeout_s: float = 30.0, extra: Mapping[str, str] | None = None) -> AdminClient:
    """Return an admin client once the cluster answers; raise
    BrokerUnavailable naming the address after `timeout_s`, or
    KafkaSecurityError as soon as the broker refuses this client.

    The question is the cluster's description (its id and brokers), not the
    list of all topics, which on a large cluster costs far more of every
    start (docs/performance.md, "Start-up"). librdkafka asks it as
    a metadata request naming no topic, so it needs no permission beyond
    what listing topics needed, and it goes to a broker every time (no
    cached answer hides a broker that went away). One client per
    cluster and settings is kept for the process, since start-up asks
    several times.
    """
    config = admin_config(bootstrap, extra)
    watched = _watched(bootstrap, config)
    client = watched.client
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        attempt += 1
        try:
            future = client.describe_cluster(request_timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            while not future.done():  # serve librdkafka's error callback while the answer is awaited
                concurrent.futures.wait([future], timeout=0.02)  # poll(t) would sleep t even when the answer is in
                client.poll(0)
                if watched.failures:
                    raise KafkaSecurityError(watched.failures[0])
            future.result()
            _clients[_key(config)] = watched
            return client
        except KafkaException as exc:
            client.poll(0)
            if watched.failures:
                raise KafkaSecurityError(watched.failures[0]) from None
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(
                    f"Kafka at {bootstrap} did not answer within {timeout_s:.0f} s ({_one_line(str(exc.args[0]), config)}); "
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


def ensure_topics(client: AdminClient, topics: Mapping[str, int], timeout_s: float = 30.0,
                  configs: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Create the topics that do not exist yet (name -> partitions; `configs`:
    name -> topic settings to create it with), and wait until their metadata is visible."""
    existing = partition_counts(client, topics)
    settings = configs or {}
    missing = [NewTopic(name, num_partitions=parts, replication_factor=1, config=dict(settings.get(name, {})))
               for name, parts in topics.items() if name not in existing]
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
