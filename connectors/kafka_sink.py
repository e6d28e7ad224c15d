"""A Kafka sink for Bytewax that writes `KafkaOut` records to their topics.

A batch counts as written only when the broker confirmed every record of it
(`flush` until nothing is pending), so what Bytewax snapshots after a batch
is never ahead of what Kafka holds. A broker that goes away is waited for:
librdkafka keeps retrying, and the wait is logged, never silent.
"""

from __future__ import annotations

import logging
from typing import Mapping

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaException, Producer

from engine.records import KafkaOut

log = logging.getLogger(__name__)


class DeliveryFailed(RuntimeError):
    """Kafka refused a record for good (not a passing outage)."""


class KafkaOutPartition(StatelessSinkPartition[KafkaOut]):
    def __init__(self, producer: Producer, flush_log_every_s: float = 10.0):
        self.producer = producer
        self.flush_log_every_s = flush_log_every_s
        self.failures: list[str] = []

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self.failures.append(f"{msg.topic()}: {err}")

    def write_batch(self, items: list[KafkaOut]) -> None:
        for item in items:
            while True:
                try:
                    self.producer.produce(item.topic, value=item.value, key=item.key, headers=item.headers or None, on_delivery=self._on_delivery)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    self.producer.poll(0.5)
        waited = 0.0
        while self.producer.flush(self.flush_log_every_s) > 0:
            waited += self.flush_log_every_s
            log.warning("Kafka has not confirmed %d records after %.0f s; waiting for the broker", len(self.producer), waited)
        if self.failures:
            failures, self.failures = self.failures, []
            raise DeliveryFailed(f"Kafka refused {len(failures)} records, e.g. {failures[0]}")

    def close(self) -> None:
        self.producer.flush()


class KafkaOutSink(DynamicSink[KafkaOut]):
    """One idempotent producer per worker; records carry their own topic."""

    def __init__(self, bootstrap: str, config: Mapping[str, str] | None = None):
        self.bootstrap = bootstrap
        self.config = dict(config or {})

    def build(self, step_id: str, worker_index: int, worker_count: int) -> KafkaOutPartition:
        config = {
            "bootstrap.servers": self.bootstrap,
            "enable.idempotence": "true",
            "linger.ms": "5",
            "message.timeout.ms": "0",  # never give up on a record while the broker is away
            "log_level": "3",
            **self.config,
        }
        try:
            return KafkaOutPartition(Producer(config))
        except KafkaException as exc:
            raise DeliveryFailed(f"cannot create a Kafka producer for {self.bootstrap}: {exc}") from None
