"""JSON value decoding, checked against the stream's schema.

Flink's JSON format tolerates missing fields; here a record that lacks a
required field or carries a value of the wrong type is reported, because the
dead-letter topic is where a user looks for it (docs/semantics.md). Fields not in
the schema are ignored. Numbers are checked strictly: `true` is not a long,
`1.0` is not a long, a long must fit in 64 bits.

Three paths give the same rows; each refuses a batch it cannot take whole
and hands it to the next. The native decoder (`native/`, a Rust extension
built with the package) parses a batch straight into Arrow columns that
polars takes over, with no Python object per record or field. Without it,
or when it refuses a value, msgspec decodes the batch into a typed struct
made from the schema, which checks every field's type in C and skips the
fields it does not know without building them: much faster
than a dict per record plus checks in Python. The first record msgspec
refuses sends the whole batch down the record-by-record path (orjson, then
a check per field), which names the reason of each bad record. The native
decoder only ever accepts what msgspec accepts, with the same values (the
tests compare them on generated and corrupted records).

Nesting is bounded: a value with arrays and objects more than `MAX_DEPTH`
deep (the record's own braces count as one level), even in a field the
schema ignores, is dead-lettered as `json-decode-error: nested deeper than
127 levels`. The native decoder's parser (serde_json) refuses exactly those;
the Python paths check the few values long enough to be that deep, so none
of the three parsers ever recurses without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any

import msgspec
import orjson
import polars as pl

from engine.serde.avro_schema import AvroField, RecordSchema
from engine.serde.batch import DecodedBatch, DecodeError, NativeValues
from engine.serde.timestamps import parse_timestamp

try:
    from iot_native._native import JsonColumnDecoder as NativeJsonDecoder
except ImportError:  # installed without a Rust toolchain: the msgspec path serves alone
    NativeJsonDecoder = None

_MISSING = object()
INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_STRUCT_TYPES: dict[str, type] = {  # JSON has no bytes: Flink writes them as base64 text
    "int": int, "long": int, "float": float, "double": float, "boolean": bool, "string": str, "bytes": str,
}
JSON_TYPE_NAMES = {dict: "object", list: "array", str: "str", int: "int", float: "float", bool: "bool"}
MAX_DEPTH = 127  # serde_json's limit: the native decoder refuses anything deeper
TOO_DEEP = f"json-decode-error: nested deeper than {MAX_DEPTH} levels"


def nesting_depth(value: Any) -> int:
    """Levels of arrays and objects in a parsed JSON value (a scalar: 0), walked without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if type(node) is dict else node if type(node) is list else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend(zip(children, repeat(level + 1)))
    return deepest


def _may_be_too_deep(raw: bytes) -> bool:
    """Whether a value has enough brackets to nest deeper than MAX_DEPTH (a cheap test)."""
    return len(raw) > 2 * MAX_DEPTH and raw.count(b"[") + raw.count(b"{") > MAX_DEPTH


def _too_deep(raw: bytes) -> bool:
    """Whether a valid JSON value nests deeper than MAX_DEPTH (invalid JSON: False, the parsers refuse it anyway)."""
    if not _may_be_too_deep(raw):
        return False
    try:
        return nesting_depth(orjson.loads(raw)) > MAX_DEPTH
    except orjson.JSONDecodeError as exc:
        return str(exc).startswith("depth limit")


def _any_too_deep(chunk: Sequence[bytes]) -> bool:
    """Whether a value of the chunk nests deeper than MAX_DEPTH, with Python work only
    for values that might: a deep value is long, and it alone holds more than
    MAX_DEPTH brackets while every record object holds at least one (a value
    with none is not a record, and msgspec refuses the chunk for it)."""
    if max(map(len, chunk)) <= 2 * MAX_DEPTH:
        return False
    joined = b"".join(chunk)
    if joined.count(b"[") + joined.count(b"{") < len(chunk) + MAX_DEPTH:
        return False
    return any(map(_too_deep, chunk))


def _converter(f: AvroField) -> Callable[[Any], Any]:
    """A function returning the column value, or raising TypeError with the found type."""
    kind = f.type
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        digits = _text_digits(f)

        def to_int(v: Any) -> Any:
            if digits is not None and type(v) is str:
                return _text_time(v, digits)
            if type(v) is not int:
                raise TypeError(type(v).__name__)
            if not low <= v <= high:
                raise TypeError(f"{type(v).__name__} out of range")
            return v

        return to_int
    if kind in ("float", "double"):

        def to_float(v: Any) -> Any:
            if type(v) is float:
                return v
            if type(v) is int:
                return float(v)
            raise TypeError(type(v).__name__)

        return to_float
    expected: type = bool if kind == "boolean" else str  # JSON has no bytes: Flink writes them as base64 text

    def same(v: Any) -> Any:
        if type(v) is not expected:
            raise TypeError(type(v).__name__)
        return v

    return same


def _text_digits(f: AvroField) -> int | None:
    """A timestamp field's fraction digits (Flink's JSON format writes it as
    text: `2022-02-16 14:18:00`, read back in the field's unit); None for others."""
    if f.type not in INT_RANGES or f.millis_divisor is None:
        return None
    return {1: 3, 1000: 6, 1_000_000: 9}[f.millis_divisor]


def _text_time(text: str, digits: int) -> int:
    try:
        return parse_timestamp(text, digits)
    except ValueError:
        raise TypeError("str that is not a timestamp") from None


def _texts_read(column: list[Any], digits: int) -> list[Any] | None:
    """A timestamp column with its texts read as numbers; None when a text is no timestamp."""
    try:
        return [parse_timestamp(v, digits) if type(v) is str else v for v in column]
    except ValueError:
        return None


def _record_struct(fields: Sequence[AvroField], optional: Mapping[str, bool]) -> type[msgspec.Struct]:
    """A msgspec struct that accepts exactly what the per-record checks accept
    (before the range checks on ints): attributes f0.. carry the JSON names,
    which need not be Python identifiers."""
    spec: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for i, f in enumerate(fields):
        kind = int | str if _text_digits(f) is not None else _STRUCT_TYPES[f.type]
        spec.append((f"f{i}", kind | None, None) if optional[f.name] else (f"f{i}", kind))
    required_first = sorted(spec, key=len)  # fields with defaults must follow the others
    return msgspec.defstruct("JsonRecord", required_first, rename={f"f{i}": f.name for i, f in enumerate(fields)}, gc=False)


def _within(column: list[Any], int_range: tuple[int, int], nullable: bool) -> bool:
    """Whether every int of the column fits the Avro type (msgspec takes any size)."""
    present = [v for v in column if v is not None] if nullable else column
    return not present or (int_range[0] <= min(present) and max(present) <= int_range[1])


class JsonBatchDecoder:
    """Decodes JSON object values and validates them against the stream's schema."""

    CHUNK = 1024  # values decoded before their fields are read out (see _decode_clean)

    def __init__(self, schema: RecordSchema, columns: Sequence[str], time_column: str | None) -> None:
        if schema.fields is None:
            raise ValueError("JSON values need a flat schema of primitive fields")
        self.columns = tuple(columns)
        slot_of = {name: i for i, name in enumerate(self.columns)}
        optional = {f.name: f.nullable and f.name != time_column for f in schema.fields}  # may be null or absent
        # (name, may be null or absent, converter, type for messages, output slot or None)
        self._checks = [
            (f.name, optional[f.name], _converter(f), f.type, slot_of.get(f.name)) for f in schema.fields
        ]
        self._struct_decode = msgspec.json.Decoder(_record_struct(schema.fields, optional)).decode
        # (name, attribute getter, int range or None, may be null) of each output
        # column, and the int fields that are not output but must still be in range
        self._outputs = [
            (f.name, attrgetter(f"f{i}"), INT_RANGES.get(f.type), optional[f.name])
            for i, f in enumerate(schema.fields) if f.name in slot_of
        ]
        self._range_checked = [
            (attrgetter(f"f{i}"), INT_RANGES[f.type], optional[f.name], _text_digits(f)) for i, f in enumerate(schema.fields)
            if f.type in INT_RANGES and f.name not in slot_of
        ]
        self._text_digits = {f.name: d for f in schema.fields if (d := _text_digits(f)) is not None}
        self._native = None if NativeJsonDecoder is None else NativeJsonDecoder([
            (f.name, f.type, optional[f.name], slot_of.get(f.name), 1) for f in schema.fields  # values as they are
        ])

    def decode(self, values: Sequence[bytes | None]) -> DecodedBatch:
        """Column-wise checks for a clean batch; record by record (exact reasons) otherwise."""
        native = self._decode_native(values) if self._native is not None else None
        if native is not None:
            return native
        fast = self._decode_clean(values)
        return fast if fast is not None else self._decode_each(values)

    def _decode_native(self, values: Sequence[bytes | None]) -> DecodedBatch | None:
        """The batch as polars columns when the native decoder takes every value, else None."""
        assert self._native is not None
        if isinstance(values, NativeValues):  # read in place from the native reader's buffer
            arrays = self._native.decode_batch(values.batch)
        else:
            arrays = self._native.decode(values if type(values) is list else list(values))
        if arrays is None:
            return None
        # alias: polars drops a name given with an Arrow PyCapsule
        frame = pl.DataFrame([pl.Series(array).alias(name) for name, array in zip(self.columns, arrays)])
        return DecodedBatch(self.columns, range(len(values)), [], frame=frame)

    def _decode_clean(self, values: Sequence[bytes | None]) -> DecodedBatch | None:
        """The batch when every value is a valid record, else None.

        Decoded a chunk at a time: a chunk's structs are still in the CPU's
        cache when their fields are read into the columns (a whole batch's
        are not, and reading them back cost half as much as decoding)."""
        decode = self._struct_decode
        outputs = self._outputs
        gathered: list[list[Any]] = [[] for _ in outputs]
        range_checked = self._range_checked
        for start in range(0, len(values), self.CHUNK):
            chunk = values[start:start + self.CHUNK]
            try:
                if _any_too_deep(chunk):  # type: ignore[arg-type]
                    return None
                records = list(map(decode, chunk))  # type: ignore[arg-type]
            except (msgspec.DecodeError, TypeError, UnicodeDecodeError, RecursionError):  # a null value; bytes that are not UTF-8
                return None
            for column, (_, get, _, _) in zip(gathered, outputs):
                column.extend(map(get, records))
            for get, int_range, nullable, digits in range_checked:
                checked: list[Any] | None = list(map(get, records))
                if digits is not None and str in set(map(type, checked)):  # type: ignore[arg-type]
                    checked = _texts_read(checked, digits)  # type: ignore[arg-type]
                if checked is None or not _within(checked, int_range, nullable):
                    return None
        columns: dict[str, list[Any]] = {}
        for col, (name, _, int_range, nullable) in zip(gathered, outputs):
            digits = self._text_digits.get(name)
            if digits is not None and str in set(map(type, col)):  # Flink's text form of a timestamp
                read = _texts_read(col, digits)
                if read is None:
                    return None
                col = read
            if int_range is not None and not _within(col, int_range, nullable):
                return None
            columns[name] = col
        return DecodedBatch(self.columns, range(len(values)), [], columns={n: columns[n] for n in self.columns})

    def _decode_each(self, values: Sequence[bytes | None]) -> DecodedBatch:
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        checks = self._checks
        out: list[list[Any]] = [[] for _ in self.columns]
        index: list[int] = []
        errors: list[DecodeError] = []
        for pos, raw in enumerate(values):
            if raw is None:
                errors.append((pos, "null-value: the record has no value"))
                continue
            try:
                obj = loads(raw)
            except decode_error as exc:
                errors.append((pos, TOO_DEEP if str(exc).startswith("depth limit") else f"json-decode-error: {exc}"))
                continue
            if _may_be_too_deep(raw) and nesting_depth(obj) > MAX_DEPTH:
                errors.append((pos, TOO_DEEP))
                continue
            if type(obj) is not dict:
                errors.append((pos, f"not-an-object: got {JSON_TYPE_NAMES.get(type(obj), 'null')}"))
                continue
            row: list[Any] = [None] * len(out)
            reason = None
            for name, optional, convert, described, slot in checks:
                v = obj.get(name, _MISSING)
                if v is None or v is _MISSING:
                    if optional:
                        continue
                    reason = f"missing-field: {name}" if v is _MISSING else f"null-value: {name}"
                    break
                try:
                    v = convert(v)
                except TypeError as exc:
                    reason = f"wrong-type: {name} (expected {described}, got {exc})"
                    break
                if slot is not None:
                    row[slot] = v
            if reason is not None:
                errors.append((pos, reason))
                continue
            index.append(pos)
            for column, v in zip(out, row):
                column.append(v)
        return DecodedBatch(self.columns, index, errors, columns=dict(zip(self.columns, out)))
