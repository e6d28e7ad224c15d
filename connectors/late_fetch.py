"""Late records, read back from Kafka by offset and routed unchanged.

The engine decides lateness on grouped rows that carry offsets, not bytes
(building a record object per event would cost more than the rest of the
stage). The few late ones are read again here, at their coordinates, and
written to the late topic with the original key, value and headers plus
headers saying which window they missed and the watermark at that moment.

A broker that is slow or away is waited for, for as long as it takes, with
a log line every `log_every_s`: the step holds its batch, so the dataflow
waits behind it (back-pressure) and no late record is ever replaced by a
stand-in. Only a record that is no longer in the partition is reported
missing: below the partition's low watermark (retention deleted it), or
skipped by the broker (compaction removed it). It goes to the late topic as
a record with no key and no value, the late headers, and `x-late-missing`
saying why; the error log names its coordinates.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Mapping, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from connectors.kafka_readers import raw_record
from engine.records import KafkaOut, LateRecord, RawRecord
from engine.serde import format_timestamp_ms

log = logging.getLogger(__name__)

OUT_OF_RANGE = frozenset({KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET})


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

    def __init__(self, bootstrap: str, late_topic: str, config: Mapping[str, str] | None = None,
                 log_every_s: float = 10.0):
        self.bootstrap = bootstrap
        self.late_topic = late_topic
        self.config = dict(config or {})
        self.log_every_s = log_every_s
        self._consumer: Consumer | None = None

    def _client(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer({
                "group.id": "iot-monitoring-late",  # nothing is committed
                **{k: v for k, v in self.config.items() if k != "group.id"},
                "bootstrap.servers": self.bootstrap,
                "enable.auto.commit": "false",
                "enable.partition.eof": "false",
                "auto.offset.reset": "error",  # an offset that is gone is an error to look into, not a jump
                "log_level": "3",
            })
        return self._consumer

    def read(self, topic: str, partition: int, offsets: Sequence[int]) -> tuple[dict[int, RawRecord], dict[int, str]]:
        """The records at `offsets` of one partition, and why each one that is gone is gone.
        Returns only when every offset is one or the other."""
        consumer = self._client()
        pending = set(offsets)
        found: dict[int, RawRecord] = {}
        gone: dict[int, str] = {}
        position: int | None = None  # the offset the consumer reads next
        started = last_log = time.monotonic()
        while pending:
            target = min(pending)
            if position is None or target < position or target - position > 1000:
                consumer.assign([TopicPartition(topic, partition, target)])
                position = target
            for msg in consumer.consume(500, timeout=0.5):
                error = msg.error()
                if error is not None:
                    if error.code() in OUT_OF_RANGE:
                        gone.update(self._below_low_watermark(consumer, topic, partition, pending))
                        pending -= gone.keys()
                        position = None
                        break
                    continue
                offset = msg.offset()
                for skipped in [o for o in pending if position <= o < offset]:  # the broker has nothing there
                    gone[skipped] = "not in the partition any more (removed by compaction)"
                    pending.discard(skipped)
                if offset in pending:
                    found[offset] = raw_record(msg)
                    pending.discard(offset)
                position = offset + 1
            now = time.monotonic()
            if pending and now - last_log >= self.log_every_s:
                last_log = now
                log.warning("still reading back %d late record(s) of %s/%s from Kafka at %s after %.0f s;"
                            " the late output waits", len(pending), topic, partition, self.bootstrap, now - started)
        return found, gone

    def _below_low_watermark(self, consumer: Consumer, topic: str, partition: int, pending: set[int]) -> dict[int, str]:
        """The pending offsets retention has deleted: below the partition's low watermark."""
        try:
            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
        except KafkaException:  # the broker is away: ask again at the next error
            return {}
        return {o: f"deleted by retention (offset below the partition's low watermark {low})" for o in pending if o < low}

    def fetch(self, late: Sequence[LateRecord]) -> list[KafkaOut]:
        by_partition: dict[tuple[str, int], list[LateRecord]] = defaultdict(list)
        for item in late:
            by_partition[(item.topic, item.partition)].append(item)
        out: list[KafkaOut] = []
        for (topic, partition), items in by_partition.items():
            records, gone = self.read(topic, partition, sorted({i.offset for i in items}))
            for item in items:
                record = records.get(item.offset)
                if record is None:
                    why = gone[item.offset]
                    log.error("late record %s/%s@%s cannot be read back: %s; the late topic gets its coordinates only",
                              topic, partition, item.offset, why)
                    out.append(KafkaOut(self.late_topic, None, None, late_headers(item) + [("x-late-missing", why.encode())]))
                    continue
                out.append(KafkaOut(self.late_topic, record.key, record.value, list(record.headers or []) + late_headers(item)))
        return out

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
