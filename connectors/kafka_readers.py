"""How one Kafka partition is read: natively, or through confluent-kafka.

`KafkaBatchPartition` asks a reader for the next records and hands them to
its handler as they came. The native reader (`iot_native`, built from
`native/` with the package) keeps a read's values end to end in one Rust
buffer, a `MessageBatch`; confluent-kafka's reader gives a list of `Message`
objects, one Python object per record, made and freed at a cost that is a
third of the package's time at a million records a second. Everything that
looks inside a read goes through the functions here (`read_batch`,
`record_at`, `raw_records`), so handlers take either.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from engine.partition_stage import ReadBatch
from engine.records import RawRecord
from engine.serde.batch import NativeValues

try:
    from iot_native._native import MessageBatch, PartitionReader
except ImportError:  # installed without a Rust toolchain
    MessageBatch = PartitionReader = None

log = logging.getLogger(__name__)

NATIVE_SETTING = "IOT_NATIVE_KAFKA"  # "0": read with confluent-kafka even where the native reader is built


def native_reads() -> bool:
    """Whether partitions are read by the native reader."""
    return PartitionReader is not None and os.environ.get(NATIVE_SETTING, "1") != "0"


@dataclass(frozen=True)
class Read:
    """One read of a partition: the records (a list of confluent-kafka
    messages, or a MessageBatch), the offset after them, and the errors the
    client reported instead of records, as (code, name, text)."""

    records: Any
    count: int
    next_offset: int | None
    errors: list[tuple[int, str, str]]


class ConfluentReader:
    """A partition read with confluent-kafka's Consumer."""

    def __init__(self, config: dict[str, str], topic: str, partition: int, consumer: Any = None) -> None:
        self.consumer = Consumer(config) if consumer is None else consumer
        self.topic, self.partition = topic, partition

    @classmethod
    def around(cls, consumer: Any, topic: str, partition: int) -> "ConfluentReader":
        """A reader on an existing consumer (or anything with its methods)."""
        return cls({}, topic, partition, consumer)

    def watermarks(self, timeout_s: float) -> tuple[int, int]:
        return self.consumer.get_watermark_offsets(TopicPartition(self.topic, self.partition), timeout=timeout_s, cached=False)

    def cached_high_watermark(self) -> int:
        return self.consumer.get_watermark_offsets(TopicPartition(self.topic, self.partition), cached=True)[1]

    def assign(self, offset: int) -> None:
        self.consumer.assign([TopicPartition(self.topic, self.partition, offset)])

    def seek(self, offset: int) -> None:
        self.consumer.seek(TopicPartition(self.topic, self.partition, offset))

    def read(self, max_records: int, timeout_s: float) -> Read:
        messages = self.consumer.consume(max_records, timeout=timeout_s)
        good = [m for m in messages if m.error() is None]
        errors = [] if len(good) == len(messages) else [
            (e.code(), e.name(), e.str()) for e in (m.error() for m in messages) if e is not None
        ]
        return Read(good, len(good), good[-1].offset() + 1 if good else None, errors)

    def close(self) -> None:
        self.consumer.close()


class NativeReader:
    """A partition read with the native reader into MessageBatches. After a
    read that fills its batch, the next is taken ahead on a background
    thread while the worker decodes this one (a replay's backlog); a
    caught-up partition reads only when asked."""

    def __init__(self, config: dict[str, str], topic: str, partition: int) -> None:
        assert PartitionReader is not None
        self.reader = PartitionReader(list(native_config(config).items()), topic, partition, read_ahead=True)

    def watermarks(self, timeout_s: float) -> tuple[int, int]:
        return self.reader.watermarks(cached=False, timeout_ms=int(timeout_s * 1000))

    def cached_high_watermark(self) -> int:
        return self.reader.watermarks(cached=True)[1]

    def assign(self, offset: int) -> None:
        self.reader.assign(offset)

    def seek(self, offset: int) -> None:
        self.reader.seek(offset)

    def read(self, max_records: int, timeout_s: float) -> Read:
        batch = self.reader.consume(max_records, int(timeout_s * 1000))
        last = batch.last_offset
        return Read(batch, len(batch), None if last is None else last + 1, batch.errors())

    def close(self) -> None:
        self.reader.close()


def native_config(config: dict[str, str]) -> dict[str, str]:
    """The settings for the native reader. Its OpenSSL is compiled in, with
    its own idea of where the system's CA certificates are, which is not
    Debian's: over TLS with no CA given, librdkafka is told to look in the
    usual places (`probe`), as confluent-kafka's bundled build does."""
    tls = str(config.get("security.protocol", "")).upper() in ("SSL", "SASL_SSL")
    if tls and not (config.get("ssl.ca.location") or config.get("ssl.ca.pem")):
        return {**config, "ssl.ca.location": "probe"}
    return config


def open_reader(config: dict[str, str], topic: str, partition: int) -> ConfluentReader | NativeReader:
    """The native reader where it is built (and not turned off), else
    confluent-kafka's; confluent-kafka's too when the native build refuses a
    property. The native build has TLS and SASL PLAIN and SCRAM; it lacks
    OAUTHBEARER's OIDC token fetch (no libcurl), which confluent-kafka's
    has. Kerberos is in neither (config.kafka_security refuses it)."""
    if native_reads():
        try:
            reader = NativeReader(config, topic, partition)
            log.debug("%s/%s is read by the native reader", topic, partition)
            return reader
        except ValueError as exc:
            log.info("%s/%s is read with confluent-kafka: the native reader refuses its settings (%s)", topic, partition, exc)
    return ConfluentReader(config, topic, partition)


def is_native(records: Any) -> bool:
    return MessageBatch is not None and isinstance(records, MessageBatch)


def raw_record(msg: Any) -> RawRecord:
    """A confluent-kafka message as a plain, picklable record."""
    ts_type, ts = msg.timestamp()
    return RawRecord(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers(), ts if ts_type else None)


def record_at(records: Any, i: int) -> RawRecord:
    """Record i of a read, as a plain record."""
    return RawRecord(*records.record(i)) if is_native(records) else raw_record(records[i])


def raw_records(records: Any) -> list[RawRecord]:
    """Every record of a read, as plain records."""
    if is_native(records):
        return [RawRecord(*records.record(i)) for i in range(len(records))]
    return [raw_record(m) for m in records]


def read_batch(records: Any) -> ReadBatch:
    """A read's records as a ReadBatch, materialising records lazily."""
    if is_native(records):
        return ReadBatch(
            NativeValues(records),
            lambda i: record_at(records, i),
            records.first_offset or 0,
            None if records.contiguous() else records.offsets(),
            records.timestamps,
        )
    messages: Sequence[Any] = records  # confluent-kafka Message objects
    first = messages[0].offset() if messages else 0
    contiguous = not messages or messages[-1].offset() - first == len(messages) - 1
    return ReadBatch(
        [m.value() for m in messages],
        lambda i: raw_record(messages[i]),
        first,
        None if contiguous else [m.offset() for m in messages],
        lambda: [m.timestamp()[1] for m in messages],
    )
