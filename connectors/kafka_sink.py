"""A Kafka sink for Bytewax that writes `KafkaOut` records to their topics.

A batch counts as written only when the broker confirmed every record of it
(`flush` until nothing is pending), so what Bytewax snapshots after a batch
is never ahead of what Kafka holds. A broker that goes away is waited for:
librdkafka keeps retrying, and the wait is logged, never silent.

Records too large to write. The producer refuses a record larger than its
`message.max.bytes` (1,000,000 by default; the broker's own limit is about
1 MiB). A dead letter or a late record is a copy of an input record plus
headers, so an input near the limit makes a copy over it. Such a copy (it
carries `x-dlq-reason` or `x-late-reason`, the first header the pipeline
adds) is cut to fit, never refused:

- the input record's own headers are dropped if they alone do not fit
  (`x-headers-dropped: <count>`), then its key is cut if it alone does not fit
  (`x-key-truncated: true`, `x-key-original-size: <bytes>`), then its value
  (`x-value-truncated: true`, `x-value-original-size: <bytes>`); the headers
  the pipeline added (reason, window, watermark, source topic, partition and
  offset) always stay, so the whole record can be read again at its source.

A topic with a lower `max.message.bytes` refuses, with its request, every
record produced with the too large one: those are written again one by one,
and a copy the topic still refuses is halved until it takes it. Any other
record too large for the producer or the topic (a UDF's output, say) is
counted (`iot_kafka_records_unwritable`) and logged with its topic and size,
and the pipeline goes on: one record must not stop it. Every copy cut to fit
is counted too (`iot_kafka_records_truncated`).
"""

from __future__ import annotations

import logging
from typing import Mapping

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, KafkaException, Producer

from engine.records import Headers, KafkaOut
from runtime.metrics import KAFKA_TRUNCATED, KAFKA_UNWRITABLE

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1_000_000  # librdkafka's message.max.bytes
RECORD_OVERHEAD = 512  # librdkafka counts at most ~40 bytes of framing per record: a safe margin
HEADER_OVERHEAD = 10  # two varint lengths per header
PIPELINE_REASONS = ("x-dlq-reason", "x-late-reason")  # the first header the pipeline adds to a copy
TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, getattr(KafkaError, "RECORD_LIST_TOO_LARGE", -1)})


class DeliveryFailed(RuntimeError):
    """Kafka refused a record for good (not a passing outage)."""


def headers_size(headers: Headers) -> int:
    return sum(len(name.encode(errors="surrogatepass")) + len(value or b"") + HEADER_OVERHEAD for name, value in headers)


def writable_headers(headers: Headers) -> Headers:
    """`headers` with every name valid UTF-8: a name read from bytes that were
    not (kept as surrogates) gets U+FFFD in their place. confluent-kafka's
    producer crashes the process on such a name rather than raising."""
    try:
        for name, _ in headers:
            name.encode()
        return headers
    except UnicodeEncodeError:
        return [(_replaced(name), value) for name, value in headers]


def _replaced(name: str) -> str:
    try:  # bytes kept as surrogates by 'surrogateescape' come back as they were, then get U+FFFD
        raw = name.encode(errors="surrogateescape")
    except UnicodeEncodeError:
        raw = name.encode(errors="surrogatepass")
    return raw.decode(errors="replace")


def record_size(item: KafkaOut) -> int:
    """What librdkafka compares with `message.max.bytes`, give or take its framing."""
    return len(item.key or b"") + len(item.value or b"") + headers_size(item.headers or []) + RECORD_OVERHEAD


def _split_copy(headers: Headers) -> tuple[Headers, Headers] | None:
    """(the input's headers, the pipeline's) of a dead letter or late copy, else None."""
    starts = [i for i, (name, _) in enumerate(headers) if name in PIPELINE_REASONS]
    if not starts:
        return None
    return headers[:starts[-1]], headers[starts[-1]:]


def fit(item: KafkaOut, max_bytes: int) -> KafkaOut | None:
    """`item` if it fits; a dead letter or late copy cut to fit (see the module);
    None when nothing can make it fit."""
    if record_size(item) <= max_bytes:
        return item
    parts = _split_copy(list(item.headers or []))
    if parts is None:
        return None
    own, added = parts
    key, value = item.key or b"", item.value or b""
    value_notes = [("x-value-truncated", b"true"), ("x-value-original-size", str(len(value)).encode())]
    key_notes = [("x-key-truncated", b"true"), ("x-key-original-size", str(len(key)).encode())]
    dropped_notes = [("x-headers-dropped", str(len(own)).encode())]
    notes: Headers = []
    room = max_bytes - RECORD_OVERHEAD - headers_size(added + value_notes + key_notes + dropped_notes)
    if room < 0:
        return None
    if headers_size(own) > room:
        own, notes = [], notes + dropped_notes
    room -= headers_size(own)
    if len(key) > room:
        key, notes = key[:room], notes + key_notes
    room -= len(key)
    if len(value) > room:
        value, notes = value[:room], notes + value_notes
    return KafkaOut(item.topic, None if item.key is None else key, value, own + added + notes)


def _source_of(item: KafkaOut) -> str:
    """` (from topic/partition@offset)` for a copy of an input record, else nothing."""
    found = {name: (value or b"").decode(errors="replace") for name, value in item.headers or []}
    if "x-source-offset" not in found:
        return ""
    return f" (from {found.get('x-source-topic', '?')}/{found.get('x-source-partition', '?')}@{found['x-source-offset']})"


class KafkaOutPartition(StatelessSinkPartition[KafkaOut]):
    def __init__(self, producer: Producer, flush_log_every_s: float = 10.0, max_bytes: int = DEFAULT_MAX_BYTES,
                 close_timeout_s: float = 30.0):
        self.producer = producer
        self.flush_log_every_s = flush_log_every_s
        self.max_bytes = max_bytes
        self.close_timeout_s = close_timeout_s
        self.failures: list[str] = []
        self.refused: list[KafkaOut] = []  # refused by the broker as too large, in the last flush
        self.truncated = 0  # copies cut to fit, since start
        self.unwritable = 0  # records no size could make Kafka take, since start

    def write_batch(self, items: list[KafkaOut]) -> None:
        for item in items:
            sized = fit(item, self.max_bytes)
            if sized is None:
                self._give_up(item, f"it is larger than the producer's message.max.bytes ({self.max_bytes})")
                continue
            self._produce(sized, item)
        self._flush()
        refused, self.refused = self.refused, []
        for item in refused:  # the broker refused their request: one by one, smaller if need be
            self._write_alone(item)
        if self.failures:
            failures, self.failures = self.failures, []
            raise DeliveryFailed(f"Kafka refused {len(failures)} records, e.g. {failures[0]}")

    def _write_alone(self, original: KafkaOut) -> None:
        """Write a record the broker refused in a request with others as too large:
        alone it may fit; a copy is cut to half its size until the topic takes it."""
        item = fit(original, self.max_bytes)
        while item is not None:
            self._produce(item, original)
            self._flush()
            if not self.refused:
                return
            self.refused = []
            smaller = fit(original, record_size(item) // 2)
            item = smaller if smaller is not None and len(smaller.value or b"") < len(item.value or b"") else None
        self._give_up(original, "the topic refused it as too large")

    def _on_delivery_of(self, item: KafkaOut, original: KafkaOut):
        def on_delivery(err, msg) -> None:
            if err is None:
                if item is not original:
                    self._cut(original, item)
            elif err.code() in TOO_LARGE:
                self.refused.append(original)
            else:
                self.failures.append(f"{msg.topic()}: {err}")
        return on_delivery

    def _cut(self, item: KafkaOut, sized: KafkaOut) -> None:
        self.truncated += 1
        KAFKA_TRUNCATED.labels(item.topic).inc()
        log.warning("a record of %d bytes for %s was cut to %d bytes to fit Kafka's size limit%s",
                    record_size(item) - RECORD_OVERHEAD, item.topic, record_size(sized) - RECORD_OVERHEAD, _source_of(item))

    def _give_up(self, item: KafkaOut, why: str) -> None:
        self.unwritable += 1
        KAFKA_UNWRITABLE.labels(item.topic).inc()
        log.error("a record of %d bytes for %s is not written: %s%s", record_size(item) - RECORD_OVERHEAD, item.topic,
                  why, _source_of(item))

    def _produce(self, item: KafkaOut, original: KafkaOut) -> None:
        while True:
            try:
                self.producer.produce(item.topic, value=item.value, key=item.key,
                                      headers=writable_headers(item.headers) if item.headers else None,
                                      on_delivery=self._on_delivery_of(item, original))
                return
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.5)
            except KafkaException as exc:
                if exc.args and exc.args[0].code() in TOO_LARGE:  # larger than our estimate allowed for
                    self._give_up(original, str(exc.args[0].str()))
                    return
                raise

    def _flush(self) -> None:
        waited = 0.0
        while self.producer.flush(self.flush_log_every_s) > 0:
            waited += self.flush_log_every_s
            log.warning("Kafka has not confirmed %d records after %.0f s; waiting for the broker", len(self.producer), waited)

    def close(self) -> None:
        """Flush for at most `close_timeout_s`: a broker that is down must not hang the shutdown.
        What is still unconfirmed belongs to a batch Bytewax has not snapshotted, so
        a restart from the recovery store writes it again; nothing is lost."""
        left = self.producer.flush(self.close_timeout_s)
        if left:
            log.warning("Kafka has not confirmed %d record(s) at shutdown after %.0f s; they are written again"
                        " after the restart, from the last snapshot", left, self.close_timeout_s)


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
            producer = Producer(config)
        except KafkaException as exc:
            raise DeliveryFailed(f"cannot create a Kafka producer for {self.bootstrap}: {exc}") from None
        return KafkaOutPartition(producer, max_bytes=int(config.get("message.max.bytes", DEFAULT_MAX_BYTES)))
