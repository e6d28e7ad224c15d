"""Late records, read back from Kafka by offset and routed unchanged.

The engine decides lateness on grouped rows that carry offsets, not bytes
(building a record object per event would cost more than the rest of the
stage). The few late ones are read again here, at their coordinates, and
written to the late topic with the original key, value and headers plus
headers saying which window they missed and the watermark at that moment.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Mapping, Sequence

from confluent_kafka import Consumer, TopicPartition

from connectors.kafka_readers import raw_record
from engine.records import KafkaOut, LateRecord, RawRecord
from engine.serde import format_timestamp_ms

log = logging.getLogger(__name__)


def late_headers(late: LateRecord) -> list[tuple[str, bytes]]:
    return [
        ("x-late-reason", b"window-already-fired"),
        ("x-late-window-start", format_timestamp_ms(late.window_start_ms).encode()),
        ("x-late-window-end", format_timestamp_ms(late.window_end_ms).encode()),
        ("x-late-watermark", str(late.watermark_ms).encode()),
        ("x-source-topic", late.topic.encode()),
        ("x-source-partition", str(late.partition).encode()),
        ("x-source-offset", str(late.offset).encode()),
    ]


class LateRecordFetcher:
    """Reads records by (topic, partition, offset) and shapes them for the late topic."""

    def __init__(self, bootstrap: str, late_topic: str, config: Mapping[str, str] | None = None, timeout_s: float = 30.0):
        self.bootstrap = bootstrap
        self.late_topic = late_topic
        self.config = dict(config or {})
        self.timeout_s = timeout_s
        self._consumer: Consumer | None = None

    def _client(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer({
                "group.id": "iot-monitoring-late",  # nothing is committed
                **{k: v for k, v in self.config.items() if k != "group.id"},
                "bootstrap.servers": self.bootstrap,
                "enable.auto.commit": "false",
                "enable.partition.eof": "false",
                "log_level": "3",
            })
        return self._consumer

    def read(self, topic: str, partition: int, offsets: Sequence[int]) -> dict[int, RawRecord]:
        """The records at `offsets` (ascending) of one partition."""
        consumer = self._client()
        wanted = set(offsets)
        found: dict[int, RawRecord] = {}
        position = None
        deadline = time.monotonic() + self.timeout_s
        for offset in offsets:
            if offset in found:
                continue
            if position is None or offset < position or offset - position > 1000:
                consumer.assign([TopicPartition(topic, partition, offset)])
            while offset not in found and time.monotonic() < deadline:
                for msg in consumer.consume(500, timeout=0.5):
                    if msg.error() is not None:
                        continue
                    position = msg.offset() + 1
                    if msg.offset() in wanted:
                        found[msg.offset()] = raw_record(msg)
                if position is not None and position > offset and offset not in found:
                    break  # the offset is gone (compacted or past retention)
        return found

    def fetch(self, late: Sequence[LateRecord]) -> list[KafkaOut]:
        by_partition: dict[tuple[str, int], list[LateRecord]] = defaultdict(list)
        for item in late:
            by_partition[(item.topic, item.partition)].append(item)
        out: list[KafkaOut] = []
        for (topic, partition), items in by_partition.items():
            records = self.read(topic, partition, sorted(i.offset for i in items))
            for item in items:
                record = records.get(item.offset)
                if record is None:
                    log.error("late record %s/%s@%s could not be read back; routing its coordinates only",
                              topic, partition, item.offset)
                    out.append(KafkaOut(self.late_topic, None, None, late_headers(item) + [("x-late-missing", b"true")]))
                    continue
                out.append(KafkaOut(self.late_topic, record.key, record.value, list(record.headers or []) + late_headers(item)))
        return out

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
