"""How one Kafka partition is read: natively, or through confluent-kafka.

`KafkaBatchPartition` asks a reader for the next records; a read is a
`Read` whose `batch` is an `engine.records.RecordBatch`, whichever reader
made it. The native reader (`iot_native._native`, built from `native/` with
the package) keeps a read's values end to end in one Rust buffer, a
`MessageBatch`; confluent-kafka's reader gives a list of `Message` objects,
one Python object per record, made and freed at a cost that dominates
the package's time at high rates (docs/performance.md). `NativeBatch` and
`ConfluentBatch` put both behind the same interface, so nothing downstream
asks which reader it has.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Consumer, TopicPartition

from engine.records import RawRecord, RecordBatch, header_value
from engine.serde.batch import NativeValues

try:
    from iot_native._native import MessageBatch, PartitionReader
except ImportError:  # installed without a Rust toolchain
    MessageBatch = PartitionReader = None

log = logging.getLogger(__name__)


def native_available() -> bool:
    """Whether the native reader is built into this installation."""
    return PartitionReader is not None


@dataclass(frozen=True)
class Read:
    """One read of a partition: the records, the offset after them, and the
    errors the client reported instead of records, as (code, name, text)."""

    batch: RecordBatch
    next_offset: int | None
    errors: list[tuple[int, str, str]]

    @property
    def count(self) -> int:
        return len(self.batch)


class NativeBatch:
    """A `RecordBatch` over a native `MessageBatch`: values stay in its buffer
    (a decoder with a native path reads them in place); a record object is
    made only when one is asked for."""

    __slots__ = ("native", "values")

    def __init__(self, native: Any) -> None:
        self.native = native
        self.values = NativeValues(native)

    @property
    def first_offset(self) -> int:
        return self.native.first_offset or 0

    @property
    def offsets(self) -> list[int] | None:
        return None if self.native.contiguous() else self.native.offsets()

    def __len__(self) -> int:
        return len(self.native)

    def record(self, i: int) -> RawRecord:
        return RawRecord(*self.native.record(i))

    def records(self) -> list[RawRecord]:
        return [RawRecord(*self.native.record(i)) for i in range(len(self.native))]

    def timestamps(self) -> list[int]:
        return self.native.timestamps()

    def header_values(self, name: str) -> list[bytes | None]:
        """A record object per record: only streams with a header column pay it."""
        native = self.native
        return [header_value(native.record(i)[5], name) for i in range(len(native))]


def raw_record(msg: Any) -> RawRecord:
    """A confluent-kafka message as a plain, picklable record."""
    ts_type, ts = msg.timestamp()
    return RawRecord(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers(), ts if ts_type else None)


class ConfluentBatch:
    """A `RecordBatch` over confluent-kafka `Message` objects."""

    __slots__ = ("messages",)

    def __init__(self, messages: Sequence[Any]) -> None:
        self.messages = messages

    @property
    def values(self) -> list[bytes | None]:
        return [m.value() for m in self.messages]

    @property
    def first_offset(self) -> int:
        return self.messages[0].offset() if self.messages else 0

    @property
    def offsets(self) -> list[int] | None:
        messages = self.messages
        if not messages or messages[-1].offset() - messages[0].offset() == len(messages) - 1:
            return None
        return [m.offset() for m in messages]

    def __len__(self) -> int:
        return len(self.messages)

    def record(self, i: int) -> RawRecord:
        return raw_record(self.messages[i])

    def records(self) -> list[RawRecord]:
        return [raw_record(m) for m in self.messages]

    def timestamps(self) -> list[int]:
        return [m.timestamp()[1] for m in self.messages]

    def header_values(self, name: str) -> list[bytes | None]:
        return [header_value(m.headers(), name) for m in self.messages]


class PartitionReaderLike(Protocol):
    """What `KafkaBatchPartition` needs of a reader."""

    def watermarks(self, timeout_s: float) -> tuple[int, int]: ...

    def cached_high_watermark(self) -> int: ...

    def assign(self, offset: int) -> None: ...

    def seek(self, offset: int) -> None: ...

    def read(self, max_records: int, timeout_s: float) -> Read: ...

    def close(self) -> None: ...


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
        return Read(ConfluentBatch(good), good[-1].offset() + 1 if good else None, errors)

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
        return Read(NativeBatch(batch), None if last is None else last + 1, batch.errors())

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


def open_reader(config: dict[str, str], topic: str, partition: int, native: bool = True) -> ConfluentReader | NativeReader:
    """The native reader where it is built and `native` asks for it, else
    confluent-kafka's; confluent-kafka's too when the native build refuses a
    property. The native build has TLS and SASL PLAIN and SCRAM; it lacks
    OAUTHBEARER's OIDC token fetch (no libcurl), which confluent-kafka's
    has. Kerberos is in neither (config.kafka_security refuses it)."""
    if native and native_available():
        try:
            reader = NativeReader(config, topic, partition)
            log.debug("%s/%s is read by the native reader", topic, partition)
            return reader
        except ValueError as exc:
            log.info("%s/%s is read with confluent-kafka: the native reader refuses its settings (%s)", topic, partition, exc)
    return ConfluentReader(config, topic, partition)
