"""The columns of a Stream that are not in the record value: Kafka metadata
(`metadata: {from: timestamp}`, `from: header.<name>`, `topic`, `partition`,
`offset`) and processing-time attributes, as polars columns for the good
rows of one read.

Every handler that needs such a column (the partition stage of a windowed
query, the stateless handler, each input of a join) adds them to its
decoded frame here, so a query sees the same columns whatever its shape, as
Flink's table would have them. The work is per column over the whole batch:
a header holding epoch milliseconds (decimal text, or an 8-byte big-endian
integer, as the Streaming Runtime's producers wrote them) is parsed by polars
without a Python call per record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import polars as pl

from config.metadata import header_of
from config.pipeline import SchemaField, StreamSpec
from engine.records import PartitionId, RecordBatch

NO_TIMESTAMP = -1
"""What Kafka gives for a record without a timestamp."""


@dataclass(frozen=True)
class MetadataColumns:
    """Reads the named non-record columns of one stream for a batch's good rows.

    `add(frame, batch, index, source)` returns the frame (row i is the
    record at position `index[i]` of the read of `source`) with those columns appended, and the
    positions whose header could not be read as the column's type, with a
    reason (dead letters). A missing header is NULL, as in Flink's headers map.
    """

    fields: tuple[SchemaField, ...]
    clock: Callable[[], float] = time.time

    @classmethod
    def of(cls, stream: StreamSpec, names: Sequence[str], clock: Callable[[], float] = time.time) -> "MetadataColumns":
        wanted = dict.fromkeys(names)
        fields = [f for f in stream.fields if f.name in wanted and not f.in_record]
        ta = stream.time_attribute  # event time from Kafka is a column even where the schema does not list it
        if ta is not None and ta.source != "field" and ta.column in wanted and stream.field_named(ta.column) is None:
            origin = "timestamp" if ta.source == "kafka-timestamp" else f"header.{ta.header}"
            fields.append(SchemaField(ta.column, "long", "timestamp-millis", metadata_from=origin))
        return cls(tuple(fields), clock)

    def __bool__(self) -> bool:
        return bool(self.fields)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def add(self, frame: pl.DataFrame, batch: RecordBatch, index: Sequence[int],
            source: PartitionId) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
        if not self.fields:
            return frame, []
        columns: list[pl.Series] = []
        rejected: list[tuple[int, str]] = []
        positions = pl.Series("__pos", index, dtype=pl.Int64)
        for field in self.fields:
            column, bad = self._column(field, batch, positions, source)
            columns.append(column.alias(field.name))
            rejected += bad
        return frame.with_columns(columns), sorted(set(rejected))

    def _column(self, field: SchemaField, batch: RecordBatch, positions: pl.Series,
                source: PartitionId) -> tuple[pl.Series, list[tuple[int, str]]]:
        n = positions.len()
        if field.proctime:
            return pl.repeat(int(self.clock() * 1000), n, dtype=pl.Int64, eager=True), []
        origin = field.metadata_from or ""
        if origin == "timestamp":
            stamps = pl.Series(batch.timestamps(), dtype=pl.Int64).gather(positions)
            return stamps.zip_with(stamps != NO_TIMESTAMP, pl.Series([None], dtype=pl.Int64)), []
        if origin == "offset":
            offsets = batch.offsets
            if offsets is None:
                return positions + batch.first_offset, []
            return pl.Series(offsets, dtype=pl.Int64).gather(positions), []
        if origin == "topic":
            return pl.repeat(source.topic, n, dtype=pl.String, eager=True), []
        if origin == "partition":
            return pl.repeat(source.partition, n, dtype=pl.Int32, eager=True), []
        header = header_of(field)
        assert header is not None, f"unreadable metadata {origin!r} (config.sql refuses it)"
        raw = pl.Series(batch.header_values(header), dtype=pl.Binary).gather(positions)
        if field.type == "bytes":
            return raw, []
        if field.type == "string":
            return _utf8(raw, header, positions)
        return _epoch_or_integer(raw, header, positions, pl.Int32 if field.type == "int" else pl.Int64)


def _epoch_or_integer(raw: pl.Series, header: str, positions: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, list[tuple[int, str]]]:
    """A header as an integer: decimal ASCII text, else exactly 8 bytes big-endian.

    Text is tried first (an 8-digit number is text); the hex form of a value
    turns each ASCII digit into `3<digit>`, so both are polars string work."""
    hexed = raw.bin.encode("hex")
    is_text = hexed.str.contains(r"^(3[0-9]){1,18}$") | hexed.str.contains(r"^2d(3[0-9]){1,18}$")
    digits = hexed.str.replace_all(r"3([0-9])", "$1").str.replace(r"^2d", "-")
    as_text = pl.when(is_text).then(digits).otherwise(None)
    frame = pl.DataFrame({"raw": raw, "text": pl.select(as_text).to_series()})
    values = frame.select(
        pl.when(pl.col("text").is_not_null())
        .then(pl.col("text").cast(pl.Int64, strict=False))
        .when(pl.col("raw").bin.size() == 8)
        .then(pl.col("raw").bin.reinterpret(dtype=pl.Int64, endianness="big"))
        .otherwise(None)
        .alias("v")
    ).to_series()
    bad = raw.is_not_null() & values.is_null()
    rejected = [(pos, f"wrong-type: Kafka header {header!r} (expected an integer: decimal text or 8 bytes big-endian)")
                for pos in positions.filter(bad).to_list()]
    if dtype == pl.Int32:
        values = values.cast(pl.Int32, strict=False)
    return values, rejected


def _utf8(raw: pl.Series, header: str, positions: pl.Series) -> tuple[pl.Series, list[tuple[int, str]]]:
    """A header as text; bytes that are not UTF-8 are a dead letter (per value:
    polars has no lenient binary-to-text cast)."""
    texts: list[str | None] = []
    rejected: list[tuple[int, str]] = []
    for pos, value in zip(positions.to_list(), raw.to_list()):
        try:
            texts.append(None if value is None else value.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(None)
            rejected.append((pos, f"wrong-type: Kafka header {header!r} (expected UTF-8 text)"))
    return pl.Series(texts, dtype=pl.String), rejected
