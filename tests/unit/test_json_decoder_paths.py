"""The JSON decoder's fast path (msgspec into a typed struct) must give
exactly what the record-by-record path (orjson plus a check per field)
gives, for every batch it accepts, and accept every batch that path finds
clean: otherwise a bad record could slip past the dead-letter topic, or
good batches could quietly pay for the slow path."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from config.pipeline import StreamSpec, TimeAttribute
from engine.serde import make_decoder

SCHEMA = {
    "type": "record",
    "name": "Sample",
    "fields": [
        {"name": "ts", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},  # the time column: required all the same
        {"name": "code", "type": "string"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": ["null", "long"]},
        {"name": "ratio", "type": "double"},
        {"name": "level", "type": ["null", "float"]},
        {"name": "ok", "type": "boolean"},
        {"name": "blob", "type": ["null", "bytes"]},
        {"name": "not-an-identifier", "type": ["null", "string"]},
    ],
}
FIELDS = [f["name"] for f in SCHEMA["fields"]]


def decoder(columns: list[str]):
    spec = StreamSpec(name="s", topic="t", protocol="kafka", servers="", value_format="json",
                      avro_schema_json=json.dumps(SCHEMA), time_attribute=TimeAttribute("ts", 3000))
    return make_decoder(spec, columns)


# Values that each field may be given: right ones, and the near misses a schema check must catch.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([-(2**31) - 1, 2**31, -(2**63) - 1, 2**63]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8), st.just([1, 2]), st.just({"k": "v"}),
)
record = st.dictionaries(st.sampled_from([*FIELDS, "extra", "nested"]), scalars, max_size=len(FIELDS) + 2)
good_record = st.fixed_dictionaries({
    "ts": st.integers(-(2**63), 2**63 - 1), "code": st.text(max_size=8), "small": st.integers(-(2**31), 2**31 - 1),
    "ratio": st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False),
    "level": st.none() | st.floats(allow_nan=False, allow_infinity=False), "ok": st.booleans(),
    "blob": st.none() | st.text(max_size=4), "not-an-identifier": st.none() | st.text(max_size=4),
}, optional={"big": st.none() | st.integers(-(2**63), 2**63 - 1), "extra": scalars})  # a nullable field may be absent


def as_json(obj: dict) -> bytes:
    return json.dumps(obj).encode()


def changed(record: dict, field: str, value: object) -> dict:
    return {**record, field: value}


def without(record: dict, field: str) -> dict:
    return {k: v for k, v in record.items() if k != field}


near_miss = st.one_of(  # a good record with one field given another value, or left out
    st.builds(changed, good_record, st.sampled_from(FIELDS), scalars),
    st.builds(without, good_record, st.sampled_from(FIELDS)),
)


raw_values = st.one_of(
    good_record.map(as_json), near_miss.map(as_json), near_miss.map(as_json), record.map(as_json),
    good_record.map(lambda r: as_json(r).replace(b"{", b'{"ts": 1, ', 1)),  # a duplicate key: the last one counts
    st.sampled_from([None, b"", b"null", b"[]", b"3", b'"x"', b"{", b'{"ts": NaN}', b"{} {}", b'{"ts": 1.0}']),
    st.binary(max_size=12),
)
columns = st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True)


def same(a, b) -> bool:
    return list(a.index) == list(b.index) and a.errors == b.errors and a.columns == b.columns


@settings(max_examples=600, deadline=None)
@given(st.lists(raw_values, max_size=4), columns)
def test_fast_path_equals_the_record_by_record_path(values, wanted):
    dec = decoder(wanted)
    slow = dec._decode_each(values)
    fast = dec._decode_clean(values)
    if fast is None:
        assert slow.errors, "a clean batch went down the slow path"
    else:
        assert not slow.errors and same(fast, slow)
    assert same(dec.decode(values), slow)


@settings(max_examples=200, deadline=None)
@given(st.lists(good_record, min_size=1, max_size=20), columns)
def test_clean_batches_take_the_fast_path(records, wanted):
    dec = decoder(wanted)
    fast = dec._decode_clean([as_json(r) for r in records])
    assert fast is not None
    for name in wanted:  # microsecond timestamps come out as they are, in microseconds
        expected = [r.get(name) for r in records]
        assert fast.columns[name] == [float(v) if name == "ratio" else v for v in expected]


# The native decoder (Rust, `native/`) comes first. It may refuse a batch the
# msgspec path takes (the batch then goes that way), but what it takes, it
# must take with exactly the msgspec path's rows: no bad record gets past it.

def test_the_native_decoder_is_built():
    from engine.serde import json_decoder

    assert json_decoder.NativeJsonDecoder is not None, "install with a Rust toolchain (cargo) to build native/"
    assert decoder(["ts"])._native is not None


def test_a_string_that_is_not_utf8_is_a_dead_letter_not_a_crash():
    good = as_json({"ts": 1, "code": "c", "small": 1, "ratio": 1, "ok": False})
    bad = good.replace(b'"code": "c"', b'"code": "\x80"')
    batch = decoder(["code"]).decode([good, bad])
    assert list(batch.index) == [0] and batch.columns == {"code": ["c"]}
    assert [(pos, reason.split(":")[0]) for pos, reason in batch.errors] == [(1, "json-decode-error")]


def mutated(value: bytes, position: int, byte: int) -> bytes:
    """One byte of a JSON text replaced: breaks syntax, escapes, UTF-8 or a number."""
    if not value:
        return value
    position %= len(value)
    return value[:position] + bytes([byte]) + value[position + 1:]


unicode_text = st.text(alphabet=st.characters(codec=None), max_size=6)  # lone surrogates too
raw_unicode = st.builds(  # strings written without ASCII escapes, and with them
    lambda r, s, ascii_only: json.dumps(changed(r, "code", s), ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"),
    good_record, unicode_text, st.booleans(),
)
native_values = st.one_of(
    raw_values, raw_unicode,
    st.builds(mutated, good_record.map(as_json), st.integers(0, 400), st.integers(0, 255)),
    st.builds(mutated, raw_unicode, st.integers(0, 400), st.sampled_from(b'"\\u0{}[],:.-+eE \x00\x80\xc3\xff')),
    good_record.map(lambda r: b" \n" + as_json(r) + b"\t "),  # whitespace around the object
    good_record.map(lambda r: as_json(r).replace(b'"ts"', b'"t\\u0073"', 1)),  # an escaped key
)


def native(dec, values):
    return dec._decode_native(values)


@settings(max_examples=1500, deadline=None)
@given(st.lists(native_values, max_size=3), columns)
def test_native_path_takes_only_what_the_msgspec_path_takes(values, wanted):
    dec = decoder(wanted)
    taken = native(dec, values)
    clean = dec._decode_clean(values)
    if taken is not None:
        assert clean is not None, "the native decoder took a batch the msgspec path refuses"
        assert same(taken, clean)
        assert same(taken, dec._decode_each(values))


@settings(max_examples=300, deadline=None)
@given(st.lists(good_record, min_size=1, max_size=20), columns)
def test_clean_batches_take_the_native_path(records, wanted):
    dec = decoder(wanted)
    taken = native(dec, [as_json(r) for r in records])
    assert taken is not None
    assert same(taken, dec._decode_clean([as_json(r) for r in records]))


def test_native_columns_are_typed_even_when_all_null():
    dec = decoder(["ts", "big", "level", "ok", "blob"])
    values = [as_json({"ts": 5_000, "code": "c", "small": 1, "ratio": 1, "ok": True})]
    frame = native(dec, values).frame
    assert frame.columns == ["ts", "big", "level", "ok", "blob"]
    assert [str(t) for t in frame.dtypes] == ["Int64", "Int64", "Float64", "Boolean", "String"]
    assert frame.row(0) == (5_000, None, None, True, None)  # microseconds, as given


def test_native_path_takes_any_sequence():
    dec = decoder(["code"])
    value = as_json({"ts": 1, "code": "c", "small": 1, "ratio": 1, "ok": False})
    assert native(dec, (value, value)).columns == {"code": ["c", "c"]}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcdefghij_-", min_size=1, max_size=20), st.data())
def test_native_keys_match_by_every_byte(name, data):
    """A key one byte away from a field's name is another key (the native
    decoder compares keys eight bytes at a time, then the tail)."""
    schema = {"type": "record", "name": "K", "fields": [{"name": "ts", "type": "long"}, {"name": name, "type": "string"}]}
    spec = StreamSpec(name="s", topic="t", protocol="kafka", servers="", value_format="json",
                      avro_schema_json=json.dumps(schema), time_attribute=TimeAttribute("ts", 3000))
    dec = make_decoder(spec, ["ts", name])
    at = data.draw(st.integers(0, len(name) - 1))
    other = name[:at] + data.draw(st.sampled_from([c for c in "abcdefghij_-Z" if c != name[at]])) + name[at + 1:]
    records = [{"ts": 1, name: "x"}, {"ts": 2, other: "y", name: "z"}, {other: "w", "ts": 3, name: "v"}]
    taken = native(dec, [as_json(r) for r in records])
    assert taken is not None and taken.columns == {"ts": [1, 2, 3], name: ["x", "z", "v"]}
    assert native(dec, [as_json({"ts": 4, other: "y"})]) is None  # the field itself is missing
