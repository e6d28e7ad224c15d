"""Where `iot-monitoring watch` gets its data: window results from Kafka,
alerts from RabbitMQ, record counts of the side topics, and the dataflow's
Prometheus metrics.

Each feed survives its broker being absent: it reports the problem (for the
view to show) and tries again later, so the view never dies of a restart.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from cli.watch_view import Alert, Counters
from config.pipeline import TlsSettings
from runtime.redact import redact_url

log = logging.getLogger(__name__)

RETRY_S = 2.0


def _consumer(bootstrap: str, extra: Mapping[str, str] | None = None) -> Consumer:
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": f"iot-monitoring-watch-{uuid.uuid4().hex[:8]}",  # never commits: a private, throw-away group
        "enable.auto.commit": False,
        "socket.connection.setup.timeout.ms": 2000,
        "log_level": 0,
    }
    config.update(extra or {})
    return Consumer(config)


def _partitions(consumer: Consumer, topic: str, timeout_s: float = 2.0) -> list[int] | None:
    """Partition ids of `topic`, None while it does not exist."""
    meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        return None
    return sorted(meta.partitions)


class ResultFeed:
    """Window results read from the results topic: from its beginning, or from
    its end as first seen (a topic that appears later is read from its start,
    as all of it is new)."""

    def __init__(self, bootstrap: str, topic: str, from_beginning: bool, extra: Mapping[str, str] | None = None) -> None:
        self.topic = topic
        self._from_beginning = from_beginning
        self._consumer = _consumer(bootstrap, extra)
        self._positions: dict[int, int] | None = None  # next offset to read, per partition
        self._first_look = True
        self._next_try = 0.0
        self.problem: str | None = None

    def start(self) -> None:
        """Fix where reading begins (call it before the pipeline writes); retried by `poll`."""
        if self._positions is not None or time.monotonic() < self._next_try:
            return
        self._next_try = time.monotonic() + RETRY_S
        first_look, self._first_look = self._first_look, False
        try:
            parts = _partitions(self._consumer, self.topic)
            if parts is None:
                self.problem = f"topic {self.topic} does not exist (yet)"
                return
            which = 1 if first_look and not self._from_beginning else 0
            positions = {p: self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5)[which]
                         for p in parts}
        except KafkaException as exc:
            self._first_look = first_look
            self.problem = f"Kafka unreachable: {exc.args[0]}"
            return
        self._consumer.assign([TopicPartition(self.topic, p, offset) for p, offset in positions.items()])
        self._positions = positions
        self.problem = None

    def poll(self, timeout_s: float) -> list[Any]:
        """Decoded result values that arrived within `timeout_s` (undecodable ones as raw bytes)."""
        self.start()
        if self._positions is None:
            time.sleep(timeout_s)
            return []
        values = []
        for message in self._consumer.consume(500, timeout=timeout_s):
            if message.error() is not None:
                continue  # partition EOF and transient errors: librdkafka retries by itself
            self._positions[message.partition()] = message.offset() + 1
            try:
                values.append(orjson.loads(message.value() or b""))
            except orjson.JSONDecodeError:
                values.append(message.value())
        return values

    def caught_up(self) -> bool:
        """Whether everything on the topic now has been read (true while it does not exist)."""
        self.start()
        if self._positions is None:
            return self.problem is not None and "does not exist" in self.problem
        try:
            for p, position in self._positions.items():
                if position < self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5, cached=False)[1]:
                    return False
        except KafkaException:
            return False
        return True

    def close(self) -> None:
        self._consumer.close()


class TopicCounter:
    """Records on some topics since a baseline, from offsets alone (nothing is consumed).

    The baseline is the topic's start (`from_beginning`) or its end when first
    seen; a topic created later counts from its start, as all of it is new.
    """

    def __init__(self, bootstrap: str, topics: list[str], from_beginning: bool, extra: Mapping[str, str] | None = None) -> None:
        self.topics = topics
        self._from_beginning = from_beginning
        self._consumer = _consumer(bootstrap, extra)
        self._baseline: dict[str, dict[int, int]] = {}
        self._first_look = True

    def _offsets(self, topic: str, which: int) -> dict[int, int] | None:
        parts = _partitions(self._consumer, topic)
        if parts is None:
            return None
        return {p: self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[which] for p in parts}

    def counts(self) -> dict[str, int] | None:
        """Records per topic since the baseline; None when Kafka does not answer."""
        try:
            result = {}
            for topic in self.topics:
                ends = self._offsets(topic, 1)
                if topic not in self._baseline:
                    if ends is None:
                        result[topic] = 0
                        continue
                    use_end = not self._from_beginning and self._first_look
                    self._baseline[topic] = dict(ends) if use_end else self._offsets(topic, 0) or {}
                base = self._baseline[topic]
                result[topic] = sum(end - base.get(p, 0) for p, end in (ends or {}).items())
            self._first_look = False
            return result
        except KafkaException as exc:
            log.debug("cannot count records: %s", exc)
            return None

    def close(self) -> None:
        self._consumer.close()


class AlertFeed:
    """Alerts from the UDF's output exchange, through an exclusive auto-delete
    queue bound with `#` (every routing key). Only alerts published while the
    queue exists are seen, so it is declared before anything runs."""

    def __init__(self, url: str, exchange: str, tls: TlsSettings | None = None) -> None:
        self.url = url
        self.exchange = exchange
        self.tls = tls
        self.problem: str | None = None
        self._connection = None
        self._received: list[Alert] = []
        self._next_try = 0.0

    def connect(self) -> bool:
        """Connect, declare and bind; False (with `problem` set) when RabbitMQ is unreachable."""
        import pika
        from pika.exceptions import AMQPError, ChannelClosedByBroker

        from connectors.rabbitmq import RabbitMQConfigError, connection_parameters
        from connectors.tls import tls_failure

        if self._connection is not None:
            return True
        if time.monotonic() < self._next_try:
            return False
        self._next_try = time.monotonic() + RETRY_S
        try:
            params = connection_parameters(self.url, self.tls)
        except RabbitMQConfigError as exc:
            self.problem = str(exc)
            return False
        params.connection_attempts, params.socket_timeout, params.blocked_connection_timeout = 1, 3, 5
        try:
            connection = pika.BlockingConnection(params)
            channel = connection.channel()
            try:
                channel.exchange_declare(self.exchange, passive=True)
            except ChannelClosedByBroker:  # not there yet: declare it as the pipeline does
                channel = connection.channel()
                channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            channel.queue_bind(queue, self.exchange, routing_key="#")
            channel.basic_consume(queue, self._on_message, auto_ack=True)
        except (AMQPError, OSError) as exc:
            failure = tls_failure(exc)
            self.problem = (f"RabbitMQ at {redact_url(self.url)}: {failure}" if failure else
                            f"RabbitMQ at {redact_url(self.url)} unreachable ({type(exc).__name__}); retrying")
            log.warning("%s", self.problem)
            return False
        self._connection = connection
        self.problem = None
        log.info("listening for alerts on exchange %s", self.exchange)
        return True

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        self._received.append(Alert.from_message(body, method.routing_key))

    def poll(self, timeout_s: float) -> list[Alert]:
        """Alerts that arrived within `timeout_s`."""
        from pika.exceptions import AMQPError

        if not self.connect():
            return []
        try:
            self._connection.process_data_events(time_limit=timeout_s)
        except (AMQPError, OSError) as exc:
            self.problem = f"lost RabbitMQ ({type(exc).__name__}); reconnecting (alerts meanwhile are missed)"
            log.warning("%s", self.problem)
            self._connection = None
        received, self._received = self._received, []
        return received

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            from pika.exceptions import AMQPError

            try:
                self._connection.close()
            except (AMQPError, OSError) as exc:  # closing a half-dead connection: nothing left to save
                log.debug("closing the RabbitMQ connection: %s", exc)
        self._connection = None


METRIC_SUMS = {
    "iot_records_late_total": "late_records",
    "iot_records_dead_lettered_total": "dead_letters",
    "iot_records_in_total": "records_in",
    "iot_open_windows": "open_windows",
}


def scrape_metrics(url: str, timeout_s: float = 1.0) -> Counters | None:
    """Counters from the dataflow's Prometheus endpoint (summed over processors;
    the largest watermark lag); None when it does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    sums: dict[str, float] = {}
    lags: list[float] = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in METRIC_SUMS:
                    field = METRIC_SUMS[sample.name]
                    sums[field] = sums.get(field, 0.0) + sample.value
                elif sample.name == "iot_watermark_lag_seconds":
                    lags.append(sample.value)
    except ValueError as exc:
        log.debug("unparsable metrics from %s: %s", url, exc)
        return None
    return Counters(
        late_records=int(sums.get("late_records", 0)),
        dead_letters=int(sums.get("dead_letters", 0)),
        records_in=int(sums["records_in"]) if "records_in" in sums else None,
        watermark_lag_s=max(lags) if lags else None,
        open_windows=int(sums["open_windows"]) if "open_windows" in sums else None,
        source="metrics",
    )
