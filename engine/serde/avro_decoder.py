"""Avro value decoding, plain or with the Confluent framing, a batch at a time.

Fast path: the bodies of a batch are laid end to end as ONE block of an Avro
object container and read by `polars.read_avro` (millions of rows/s, in
Rust). Concatenation hides record boundaries, so a corrupt record could
shift every record after it and still decode. The path therefore proves
alignment: after each body it places an alignment marker, a random 16-byte
value (96 bits, secret to this process) read as one extra `bytes` field. Row i's
marker can only come out right if row i started at its body and ended
exactly where the body ends: n rows need n markers and there are exactly n
in the block (a body containing the secret marker is about as likely as a
forged Avro sync marker). Zero padding after the last marker lets a
short overrun fail the marker check instead of polars' bounds check.

If polars fails or any marker is off, the batch is split in halves and each
half tried again, down to small ranges that fastavro decodes one record at a
time, which isolates the bad records at a cost close to the fast path's. A
range on which polars panicked goes straight to fastavro (each panic prints a
line on stderr, from Rust). On either path a record is good only if it
decodes and uses exactly all of its bytes.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fastavro
import polars as pl

from engine.serde.avro_schema import AvroField, RecordSchema, parse_record_schema
from engine.serde.batch import (
    DecodedBatch,
    DecodeError,
    NativeValues,
    concat_batches,
    merge_batches,
)
from engine.serde.registry import WriterSchemas

CONFLUENT_HEADER = 5
MAGIC_BYTE = 0


def zigzag_varint(n: int) -> bytes:
    """Avro's `long` encoding."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def container_header(schema_json: str, sync: bytes) -> bytes:
    """The header of an Avro object container file: magic, metadata, sync marker."""
    meta = {b"avro.schema": schema_json.encode(), b"avro.codec": b"null"}
    parts = [b"Obj\x01", zigzag_varint(len(meta))]
    for key, value in meta.items():
        parts += [zigzag_varint(len(key)), key, zigzag_varint(len(value)), value]
    parts += [zigzag_varint(0), sync]
    return b"".join(parts)


@dataclass(frozen=True)
class TimeCheck:
    """The event-time field: it must be present (not null)."""

    name: str


class BodyDecoder:
    """Decodes Avro bodies written with one writer schema into the reader's columns."""

    PADDING = bytes(1024)
    SMALLEST_SPLIT = 64  # ranges this small are decoded record by record
    BLOCK_ROWS = 4096  # rows per container block handed to polars

    def __init__(self, writer: RecordSchema, reader: RecordSchema, names: Sequence[str], time: TimeCheck | None):
        self.names = tuple(names)
        self.time = time
        self._fast = writer.flat and reader.flat and all(
            _readable_as(writer.field(n), reader.field(n)) for n in reader.field_names
        )
        self._fa_writer = fastavro.parse_schema(writer.stripped)
        self._fa_reader = None if writer.stripped == reader.stripped else fastavro.parse_schema(reader.stripped)
        self._marker_field = _unused_name("alignment_marker", writer.field_names)
        self._marker = secrets.token_urlsafe(12).encode()  # 16 ASCII bytes: misread as lengths, they stay small
        self._marker_bytes = zigzag_varint(len(self._marker)) + self._marker
        self._marker_series = pl.Series([self._marker], dtype=pl.Binary)
        self._sync = os.urandom(16)
        block_schema = dict(writer.stripped, fields=[*writer.stripped["fields"], {"name": self._marker_field, "type": "bytes"}])
        self._header = container_header(json.dumps(block_schema, separators=(",", ":")), self._sync)
        # The same block with the Confluent header read as a leading fixed(5) field:
        # framed values go in as they are, with no copy to strip their header.
        self._frame_field = _unused_name("confluent_header", writer.field_names)
        framed_schema = dict(block_schema, fields=[
            {"name": self._frame_field, "type": {"type": "fixed", "name": _unused_name("ConfluentHeader", [writer.stripped.get("name", "")]), "size": CONFLUENT_HEADER}},
            *block_schema["fields"],
        ])
        self._framed_header = container_header(json.dumps(framed_schema, separators=(",", ":")), self._sync)

    def decode(self, bodies: Sequence[bytes], positions: Sequence[int]) -> DecodedBatch:
        """Decode `bodies` (found at `positions` of the input)."""
        if not bodies:
            return DecodedBatch(self.names, [], [], columns={n: [] for n in self.names})
        if not self._fast:
            return self._one_by_one(bodies, positions)
        block = self.BLOCK_ROWS  # polars reads small blocks faster per row than one large one
        parts = [self._split_until_clean(bodies[i:i + block], positions[i:i + block]) for i in range(0, len(bodies), block)]
        return concat_batches(self.names, *parts)

    def decode_framed(self, values: Sequence[bytes], header: bytes) -> DecodedBatch | None:
        """Values that should all carry the 5-byte Confluent `header`, decoded
        without stripping it; None unless every block is aligned and every
        header is `header` (the caller then checks record by record)."""
        if not self._fast or not values:
            return None
        block = self.BLOCK_ROWS
        expected = pl.Series([header], dtype=pl.Binary)
        parts = []
        for start in range(0, len(values), block):
            stop = min(start + block, len(values))
            if isinstance(values, NativeValues):  # laid end to end from the native reader's buffer
                frame, _ = self._read_container(self._native_block(values.batch, start, stop), stop - start)
            else:
                frame, _ = self._read_block(values[start:stop], framed=True)
            if frame is None or not (frame.get_column(self._frame_field) == expected).all():
                return None
            parts.append(self._from_frame(frame, range(start, stop)))
        return concat_batches(self.names, *parts)

    def _native_block(self, batch: Any, start: int, stop: int) -> bytes | None:
        """Records start..stop of a native MessageBatch as one framed container
        block (None when a value is null), made in one copy."""
        prefix = self._block_prefix(self._framed_header, stop - start, batch.value_bytes(start, stop))
        return batch.joined(start, stop, self._marker_bytes, prefix, self.PADDING + self._sync)

    def _block_prefix(self, head: bytes, count: int, body_bytes: int) -> bytes:
        """The container header and a block's record count and byte size, for
        `count` bodies of `body_bytes` in all, each followed by the marker,
        then the padding."""
        size = body_bytes + count * len(self._marker_bytes) + len(self.PADDING)
        return b"".join([head, zigzag_varint(count), zigzag_varint(size)])

    def _split_until_clean(self, bodies: Sequence[bytes], positions: Sequence[int]) -> DecodedBatch:
        frame, panicked = self._read_block(bodies)
        if frame is not None:
            return self._from_frame(frame, positions)
        if panicked or len(bodies) <= self.SMALLEST_SPLIT:
            return self._one_by_one(bodies, positions)
        mid = len(bodies) // 2
        first = self._split_until_clean(bodies[:mid], positions[:mid])
        second = self._split_until_clean(bodies[mid:], positions[mid:])
        return concat_batches(self.names, first, second)

    def _read_block(self, bodies: Sequence[bytes], framed: bool = False) -> tuple[pl.DataFrame | None, bool]:
        """All bodies as one container block through polars: the frame, or None
        unless proven aligned; and whether polars panicked. `framed`: the
        bodies still start with their Confluent header."""
        head = self._framed_header if framed else self._header
        try:  # (a None among the bodies fails len(): not this way either)
            prefix = self._block_prefix(head, len(bodies), sum(map(len, bodies)))
        except TypeError:
            return None, False
        parts = [prefix, *_interleave(bodies, self._marker_bytes), self.PADDING, self._sync]
        return self._read_container(b"".join(parts), len(bodies))

    def _read_container(self, data: bytes | None, count: int) -> tuple[pl.DataFrame | None, bool]:
        """A container block of `count` records through polars: the frame, or
        None unless every record ended at its marker; and whether polars panicked."""
        if data is None:
            return None, False
        try:
            frame = pl.read_avro(io.BytesIO(data))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:  # noqa: BLE001 - any polars error means: not this way
            return None, False
        except BaseException:  # noqa: BLE001 - a Rust panic arrives as pyo3's PanicException, a BaseException
            return None, True
        if frame.height != count or not (frame.get_column(self._marker_field) == self._marker_series).all():
            return None, False
        return frame, False

    def _from_frame(self, frame: pl.DataFrame, positions: Sequence[int]) -> DecodedBatch:
        errors: list[DecodeError] = []
        if self.time is not None and frame.get_column(self.time.name).null_count():
            nulls = frame.get_column(self.time.name).is_null()
            errors = [(p, f"null-value: {self.time.name}") for p, bad in zip(positions, nulls) if bad]
            positions = [p for p, bad in zip(positions, nulls) if not bad]
            frame = frame.filter(~nulls)
        return DecodedBatch(self.names, positions, errors, frame=frame[list(self.names)])

    def _one_by_one(self, bodies: Sequence[bytes], positions: Sequence[int]) -> DecodedBatch:
        names = self.names
        columns: dict[str, list[Any]] = {n: [] for n in names}
        index: list[int] = []
        errors: list[DecodeError] = []
        reader, writer_schema, reader_schema = fastavro.schemaless_reader, self._fa_writer, self._fa_reader
        time = self.time
        for pos, body in zip(positions, bodies):
            stream = io.BytesIO(body)
            try:
                record = reader(stream, writer_schema, reader_schema)
            except EOFError as exc:
                errors.append((pos, f"truncated: {exc or 'the record ends early'}"))
                continue
            except Exception as exc:  # noqa: BLE001 - any failure of this record is this record's error
                errors.append((pos, f"avro-decode-error: {type(exc).__name__}: {exc}"))
                continue
            left = len(body) - stream.tell()
            if left:
                errors.append((pos, f"avro-decode-error: {left} bytes left over after the record"))
                continue
            if time is not None and record.get(time.name) is None:
                errors.append((pos, f"null-value: {time.name}"))
                continue
            index.append(pos)
            for n in names:
                columns[n].append(record.get(n))
        return DecodedBatch(names, index, errors, columns=columns)


def _interleave(bodies: Sequence[bytes], marker: bytes) -> list[bytes]:
    out = [marker] * (2 * len(bodies))
    out[::2] = bodies
    return out


def _unused_name(base: str, taken: Sequence[str]) -> str:
    name = base
    while name in taken:
        name = "_" + name
    return name


def _readable_as(writer: AvroField | None, reader: AvroField | None) -> bool:
    """Whether polars' plain read of the writer field gives the reader field's values."""
    if writer is None or reader is None:
        return False
    return (
        writer.type == reader.type
        and writer.logical_type == reader.logical_type
        and (reader.nullable or not writer.nullable)
    )


class AvroBatchDecoder:
    """Decodes a batch of Avro values, plain or with the Confluent framing.

    With the framing, each value's magic byte and schema id are checked
    before any Avro decoding, and the values are decoded per writer schema
    (usually one group per batch); the schemas of a batch's ids are looked up
    together, once per distinct id (`engine.serde.registry`).
    """

    def __init__(
        self,
        reader: RecordSchema,
        columns: Sequence[str],
        time: TimeCheck | None,
        *,
        confluent: bool,
        registry: Any | None = None,
        accepted_ids: frozenset[int] | None = None,
    ) -> None:
        self.columns = tuple(columns)
        self._reader = reader
        self._time = time
        self._plain: BodyDecoder | None = None
        self._writers: WriterSchemas[BodyDecoder] | None = None
        if confluent:
            self._writers = WriterSchemas(
                self._prepare_writer,
                inline_schema_json=json.dumps(reader.original),
                client=registry,
                accepted_ids=accepted_ids,
            )
        else:
            self._plain = BodyDecoder(reader, reader, self.columns, time)

    def _prepare_writer(self, schema_json: str) -> BodyDecoder:
        """The decoder for one writer schema (made once per schema id)."""
        return BodyDecoder(parse_record_schema(schema_json), self._reader, self.columns, self._time)

    def decode(self, values: Sequence[bytes | None]) -> DecodedBatch:
        if self._plain is not None:
            return self._decode_plain(values)
        return self._decode_framed(values)

    def _decode_plain(self, values: Sequence[bytes | None]) -> DecodedBatch:
        assert self._plain is not None
        if all(v is not None for v in values):
            return self._plain.decode(values, range(len(values)))  # type: ignore[arg-type]
        errors = [(i, "null-value: the record has no value") for i, v in enumerate(values) if v is None]
        positions = [i for i, v in enumerate(values) if v is not None]
        part = self._plain.decode([values[i] for i in positions], positions)  # type: ignore[misc]
        return merge_batches(self.columns, [part], errors)

    def _decode_framed(self, values: Sequence[bytes | None]) -> DecodedBatch:
        assert self._writers is not None
        first = values[0] if values else None
        if first is not None and len(first) >= CONFLUENT_HEADER and first[:1] == b"\x00":
            # the usual batch: one schema id throughout, decoded header and all
            found = self._writers.lookup(int.from_bytes(first[1:CONFLUENT_HEADER], "big"))
            if not isinstance(found, str):
                decoded = found.decode_framed(values, first[:CONFLUENT_HEADER])  # type: ignore[arg-type]
                if decoded is not None:
                    return decoded
        try:  # one header throughout but some record is bad: strip the headers, split until clean
            heads = [v[:CONFLUENT_HEADER] for v in values]  # type: ignore[index]
        except TypeError:  # a None value among them
            heads = []
        if heads and heads[0][:1] == b"\x00" and len(heads[0]) == CONFLUENT_HEADER and heads.count(heads[0]) == len(heads):
            found = self._writers.lookup(int.from_bytes(heads[0][1:], "big"))
            if not isinstance(found, str):
                return found.decode([v[CONFLUENT_HEADER:] for v in values], range(len(values)))  # type: ignore[index]
        return self._decode_mixed(values)

    def _decode_mixed(self, values: Sequence[bytes | None]) -> DecodedBatch:
        """Check each value's framing on its own, then decode per schema id."""
        assert self._writers is not None
        errors: list[DecodeError] = []
        groups: dict[int, tuple[list[int], list[bytes]]] = {}
        for pos, value in enumerate(values):
            if value is None:
                errors.append((pos, "null-value: the record has no value"))
            elif len(value) < CONFLUENT_HEADER:
                errors.append((pos, f"truncated: {len(value)} bytes, the Confluent header alone is 5"))
            elif value[0] != MAGIC_BYTE:
                errors.append((pos, f"bad-magic-byte: 0x{value[0]:02x}, expected 0x00"))
            else:
                schema_id = int.from_bytes(value[1:5], "big")
                group = groups.get(schema_id)
                if group is None:
                    group = groups[schema_id] = ([], [])
                group[0].append(pos)
                group[1].append(value[CONFLUENT_HEADER:])
        parts = []
        writers = self._writers.lookup_many({schema_id: len(group[0]) for schema_id, group in groups.items()})
        for schema_id, (positions, bodies) in groups.items():
            found = writers[schema_id]
            if isinstance(found, str):
                errors.extend((pos, found) for pos in positions)
            else:
                parts.append(found.decode(bodies, positions))
        if not errors and len(parts) == 1:
            return parts[0]
        return merge_batches(self.columns, parts, errors)
