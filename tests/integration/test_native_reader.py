"""The native partition reader (`iot_native`, built from native/)
against the real broker: it must give exactly the records confluent-kafka
gives (values, keys, headers, timestamps, offsets, null values), move where
it is told, and report what goes wrong instead of hiding it."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from connectors.kafka_readers import ConfluentReader, NativeReader, PartitionReader, Read
from engine.serde import make_decoder
from engine.serde.batch import NativeValues
from tests.unit.test_serde import framed, seed_records, stream

pytestmark = pytest.mark.broker

CONFIG = {"group.id": "native-reader-test", "enable.auto.commit": "false", "fetch.wait.max.ms": "50", "log_level": "3"}


def produce(bootstrap: str, topic: str, n: int) -> None:
    """n records with every shape a record can have: null values and keys, headers, empty values."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        value = None if i % 97 == 5 else (b"" if i % 89 == 3 else f'{{"i": {i}, "s": "\u00e9{i}"}}'.encode())
        key = None if i % 3 == 0 else f"k{i}".encode()
        headers = [("h", f"v{i}".encode()), ("empty", None)] if i % 50 == 7 else None
        producer.produce(topic, value=value, key=key, headers=headers, timestamp=1_700_000_000_000 + i, partition=0)
    assert producer.flush(30) == 0


def send(bootstrap: str, topic: str, values: list[bytes | None], **producer_config: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, **producer_config})
    for value in values:
        producer.produce(topic, value=value, partition=0)
    assert producer.flush(30) == 0


def read_all(reader: ConfluentReader | NativeReader, n: int, batch: int = 64) -> tuple[list[Read], list]:
    reads, records, deadline = [], [], time.monotonic() + 30
    while len(records) < n and time.monotonic() < deadline:
        read = reader.read(batch, 0.5)
        assert not read.errors
        reads.append(read)
        records += read.batch.records()
    return reads, records


def test_native_reads_give_what_confluent_kafka_gives(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic()
    produce(kafka_bootstrap, topic, 700)
    config = {**CONFIG, "bootstrap.servers": kafka_bootstrap}
    readers = [NativeReader(config, topic, 0), ConfluentReader(config, topic, 0)]
    try:
        for reader in readers:
            assert reader.watermarks(10) == (0, 700)
            reader.assign(0)
        (native_reads, native), (_, confluent) = read_all(readers[0], 700), read_all(readers[1], 700)
        assert len(native) == 700 and native == confluent
        assert readers[0].cached_high_watermark() == 700
    finally:
        for reader in readers:
            reader.close()
    first = native_reads[0].batch
    assert first.record(0) == native[0] and first.record(-1) == native[len(first) - 1]
    assert all(r.next_offset == r.batch.native.last_offset + 1 for r in native_reads if r.count)
    values = first.values
    assert isinstance(values, NativeValues)
    assert list(values) == [r.value for r in native[:len(first)]] and values[5] is None and values[3] == b""
    assert first.timestamps() == [r.timestamp_ms for r in native[:len(first)]]
    assert first.offsets is None and first.native.offsets() == list(range(len(first)))


def test_native_reader_seeks_and_closes(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic()
    produce(kafka_bootstrap, topic, 100)
    reader = NativeReader({**CONFIG, "bootstrap.servers": kafka_bootstrap}, topic, 0)
    reader.assign(40)
    _, records = read_all(reader, 60)
    assert [r.offset for r in records] == list(range(40, 100))
    reader.seek(10)
    read = reader.read(5, 5.0)
    assert read.count == 5 and read.batch.first_offset == 10 and read.next_offset == 15
    reader.close()
    reader.close()  # a second close does nothing
    with pytest.raises(RuntimeError, match="closed"):
        reader.read(1, 0.1)


def test_reading_ahead_keeps_every_record_once_and_in_order(kafka_bootstrap: str, new_topic) -> None:
    """After a full read the next one is taken on another thread; a smaller
    read splits it, a seek drops it, and no record is lost or repeated."""
    topic = new_topic()
    produce(kafka_bootstrap, topic, 700)
    config = {**CONFIG, "bootstrap.servers": kafka_bootstrap}
    reference = ConfluentReader(config, topic, 0)
    reference.assign(0)
    _, everything = read_all(reference, 700)
    reference.close()
    reader = NativeReader(config, topic, 0)
    reader.assign(0)
    assert not reader.reader.reading_ahead
    records = reader.read(64, 5.0).batch.records()
    assert len(records) == 64 and reader.reader.reading_ahead  # full: the next read has started
    sizes = [64, 20, 7, 100, 64, 64, 1]  # smaller than the read ahead: it is split
    for size in sizes:
        read = reader.read(size, 5.0)
        assert 0 < read.count <= size and not read.errors
        records += read.batch.records()
    assert records == everything[:len(records)]
    assert reader.reader.reading_ahead
    reader.seek(5)  # a read ahead of a seek is dropped
    assert not reader.reader.reading_ahead
    read = reader.read(3, 5.0)
    assert [r.offset for r in read.batch.records()] == [5, 6, 7] and read.next_offset == 8
    reader.read(50, 5.0)
    reader.close()  # with a read ahead pending
    with pytest.raises(RuntimeError, match="closed"):
        reader.read(1, 0.1)
    plain = PartitionReader([*config.items(), ("bootstrap.servers", kafka_bootstrap)], topic, 0)
    plain.assign(0)
    assert len(plain.consume(64, 5000)) == 64 and not plain.reading_ahead  # off unless asked for
    plain.close()


def test_native_reader_rejects_a_bad_property_by_name() -> None:
    with pytest.raises(ValueError, match="fetch.wait.max.ms"):
        NativeReader({**CONFIG, "bootstrap.servers": "127.0.0.1:1", "fetch.wait.max.ms": "soon"}, "t", 0)
    with pytest.raises(ValueError, match="no.such.property"):
        NativeReader({**CONFIG, "bootstrap.servers": "127.0.0.1:1", "no.such.property": "1"}, "t", 0)


def test_native_reader_reports_an_unreachable_broker() -> None:
    reader = NativeReader({**CONFIG, "bootstrap.servers": "127.0.0.1:1", "log_level": "0",
                           "socket.connection.setup.timeout.ms": "1000"}, "t", 0)
    try:
        with pytest.raises(RuntimeError, match="watermark offsets of t/0"):
            reader.watermarks(1.0)
    finally:
        reader.close()


def test_both_readers_report_a_consumer_error_alike(kafka_bootstrap: str, new_topic) -> None:
    """An offset past the end with no reset policy: an error in the read, not records, not silence."""
    topic = new_topic()
    produce(kafka_bootstrap, topic, 10)
    config = {**CONFIG, "bootstrap.servers": kafka_bootstrap, "auto.offset.reset": "error"}
    seen = []
    for reader in (NativeReader(config, topic, 0), ConfluentReader(config, topic, 0)):
        try:
            reader.assign(1000)
            errors, deadline = [], time.monotonic() + 15
            while not errors and time.monotonic() < deadline:
                read = reader.read(10, 0.5)
                assert read.count == 0
                errors = read.errors
            seen.append([(code, name) for code, name, _ in errors])
            assert errors and all("offset" in text.lower() for _, _, text in errors), errors
        finally:
            reader.close()
    assert seen[0] == seen[1] and seen[0][0][1] == "_AUTO_OFFSET_RESET"


def sent_and_read(bootstrap: str, topic: str, values: list[bytes | None]) -> list[Read]:
    """`values` sent to partition 0 of `topic`, then read back natively."""
    send(bootstrap, topic, values)
    reader = NativeReader({**CONFIG, "bootstrap.servers": bootstrap}, topic, 0)
    try:
        reader.assign(0)
        reads, _ = read_all(reader, len(values), batch=len(values))
    finally:
        reader.close()
    assert sum(r.count for r in reads) == len(values)
    return reads


def decoded_both_ways(decoder: Any, reads: list[Read], damaged_offset: int | None) -> list[str]:
    """Each read decoded from its buffer and from a list of its values: the
    two must agree, and a read stays in its buffer (no bytes object per
    record) unless it holds the damaged record. The reasons' codes."""
    reasons = []
    for read in reads:
        native_values = NativeValues(read.batch.native)
        from_native, from_list = decoder.decode(native_values), decoder.decode(list(read.batch.native.values()))
        assert list(from_native.index) == list(from_list.index) and from_native.errors == from_list.errors
        assert from_native.columns == from_list.columns
        reasons += [reason.split(":")[0] for _, reason in from_native.errors]
        first, last = read.batch.native.first_offset, read.batch.native.last_offset
        assert (native_values._list is None) == (damaged_offset is None or not first <= damaged_offset <= last)
    return reasons


@pytest.mark.parametrize("damage", ["none", "truncated", "null"])
def test_avro_from_a_native_read_decodes_as_from_a_list(kafka_bootstrap: str, new_topic, damage: str) -> None:
    """Clean blocks are laid end to end from the read's buffer; a damaged one
    falls back, with the same rows and reasons."""
    values: list[bytes | None] = list(framed(seed_records(5000)))
    damaged = {"none": None, "truncated": 4321, "null": 17}[damage]
    if damage == "truncated":
        values[4321] = values[4321][:-3]
    elif damage == "null":
        values[17] = None
    reads = sent_and_read(kafka_bootstrap, new_topic(), values)
    reasons = decoded_both_ways(make_decoder(stream("avro-confluent")), reads, damaged)
    assert reasons == {"none": [], "truncated": ["truncated"], "null": ["null-value"]}[damage]


@pytest.mark.parametrize("damage", ["none", "wrong-type", "null"])
def test_json_from_a_native_read_decodes_as_from_a_list(kafka_bootstrap: str, new_topic, damage: str) -> None:
    """A clean batch is decoded in place from the read's buffer; a damaged one
    falls back to the Python paths, with the same rows and reasons."""
    values: list[bytes | None] = [orjson.dumps(r) for r in seed_records(3000)]
    damaged = {"none": None, "wrong-type": 2999, "null": 0}[damage]
    if damage == "wrong-type":
        values[2999] = values[2999].replace(b'"ts":', b'"ts":"', 1).replace(b',"type"', b'","type"', 1)
    elif damage == "null":
        values[0] = None
    reads = sent_and_read(kafka_bootstrap, new_topic(), values)
    reasons = decoded_both_ways(make_decoder(stream("json"), ["ts", "type", "error_code"]), reads, damaged)
    assert reasons == {"none": [], "wrong-type": ["wrong-type"], "null": ["null-value"]}[damage]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_native_reader_reads_every_compression_codec(kafka_bootstrap: str, new_topic, codec: str) -> None:
    topic = new_topic()
    sent: list[bytes | None] = [f"value {i} ".encode() * (i % 7 + 1) for i in range(300)]
    send(kafka_bootstrap, topic, sent, **{"compression.type": codec})
    reader = NativeReader({**CONFIG, "bootstrap.servers": kafka_bootstrap}, topic, 0)
    try:
        reader.assign(0)
        _, records = read_all(reader, len(sent))
    finally:
        reader.close()
    assert [r.value for r in records] == sent


