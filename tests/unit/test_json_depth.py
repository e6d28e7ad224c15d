"""A JSON value nested deeper than the decoders allow (even in a field the
schema ignores) is a dead letter with one clear reason, on every decoding
path, and never an exception out of the decoder."""

from __future__ import annotations

import json

import pytest

from config.pipeline import StreamSpec, TimeAttribute
from engine.serde import make_decoder
from engine.serde.json_decoder import NativeJsonDecoder
from tests.support.seed_schema import SEED_SCHEMA

MAX_DEPTH = 127  # the documented limit, the record's own object included
TOO_DEEP = "json-decode-error: nested deeper than 127 levels"

STREAM = StreamSpec(name="s", topic="t", protocol="kafka", servers="", value_format="json",
                    avro_schema_json=json.dumps(SEED_SCHEMA), time_attribute=TimeAttribute("ts", 3000))
RECORD = {"error_code": "C001", "ts": 1_645_020_000_000, "type": "ERROR", "application": "a", "version": "1",
          "description": "d"}


def with_extra(extra: bytes) -> bytes:
    """The seed record with one more field, `extra`, that the schema does not name."""
    return json.dumps(RECORD).encode()[:-1] + b', "extra": ' + extra + b"}"


def arrays(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def objects(levels: int) -> bytes:
    return b'{"k": ' * levels + b"1" + b"}" * levels


GOOD = with_extra(b"[1, 2]")
# levels inside the record: the record's own object is one more
DEEP = [with_extra(arrays(MAX_DEPTH)), with_extra(objects(MAX_DEPTH)), with_extra(arrays(1_000)),
        with_extra(b'[{"k": ' * 600 + b"1" + b"}]" * 600), with_extra(arrays(100_000))]
DEEPEST_ALLOWED = [with_extra(arrays(MAX_DEPTH - 1)), with_extra(objects(MAX_DEPTH - 1))]


def test_the_depth_counts_the_record_object() -> None:
    from engine.serde.json_decoder import nesting_depth

    assert [nesting_depth(json.loads(v)) for v in DEEPEST_ALLOWED] == [MAX_DEPTH, MAX_DEPTH]
    assert nesting_depth(json.loads(DEEP[0])) == MAX_DEPTH + 1
    assert nesting_depth(json.loads(b"3")) == 0


@pytest.mark.parametrize("value", DEEP, ids=["arrays-128", "objects-128", "arrays-1000", "mixed-1200", "arrays-100000"])
def test_a_deep_value_is_a_dead_letter_on_every_path(value: bytes) -> None:
    decoder = make_decoder(STREAM)
    batch = [GOOD, value, GOOD]
    decoded = decoder.decode(batch)
    assert list(decoded.index) == [0, 2]
    assert decoded.errors == [(1, TOO_DEEP)]
    assert decoder._decode_clean(batch) is None  # the msgspec path refuses the batch
    assert decoder._decode_each(batch).errors == [(1, TOO_DEEP)]
    if NativeJsonDecoder is not None:
        assert decoder._decode_native(batch) is None  # and so does the native one


def test_the_deepest_allowed_value_decodes_alike_on_every_path() -> None:
    decoder = make_decoder(STREAM)
    batch = [GOOD, *DEEPEST_ALLOWED]
    rows = decoder.decode(batch).rows()
    assert len(rows) == 3
    assert decoder._decode_clean(batch).rows() == rows
    assert decoder._decode_each(batch).rows() == rows
    if NativeJsonDecoder is not None:
        assert decoder._decode_native(batch).rows() == rows


def test_brackets_inside_strings_are_not_nesting() -> None:
    decoder = make_decoder(STREAM)
    value = json.dumps({**RECORD, "description": "[" * 500 + "{" * 500}).encode()
    decoded = decoder.decode([value, GOOD])
    assert decoded.errors == [] and len(decoded) == 2
    assert decoder._decode_clean([value, GOOD]) is not None  # no detour through the slow path
