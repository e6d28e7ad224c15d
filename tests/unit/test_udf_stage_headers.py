"""The UDF stage's request headers, reply shaping and message ids, without a UDF."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from connectors.rabbitmq import AmqpMessage, stable_message_id
from engine.records import KafkaOut, RawRecord
from connectors.udf_client import HeaderBuilder, UdfCall, UdfFailure, outputs_of, request_headers
from engine.udf_stage import UdfStage, routing_key
from udf.sdk import encode_collection


def ms(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000)


def count_record(offset: int, code: str, start: str, end: str, n: int, headers=None, partition: int = 0) -> RawRecord:
    value = orjson.dumps({"window_start": start, "window_end": end, "error_code": code, "error_count": n})
    key = orjson.dumps({"error_code": code})
    return RawRecord("error-count", partition, offset, key, value, headers, 1_700_000_000_000 + offset)


def test_request_headers_are_strings_and_skip_unknowns() -> None:
    headers = request_headers(key=b'{"error_code":"C1"}', event_time_ms=5, watermark_ms=2, window_start_ms=0,
                              window_end_ms=6, partition=3, extra={"trace": "t1"})
    assert headers == {
        "trace": "t1",
        "contentType": "application/json",
        "kafka_receivedMessageKey": '{"error_code":"C1"}',
        "kafka_receivedPartitionId": "3",
        "eventtime": "5",
        "watermark": "2",
        "windowStartTime": "0",
        "windowEndTime": "6",
    }


def test_window_from_the_flink_json_value_and_watermark_per_partition() -> None:
    builder = HeaderBuilder(watermark_delay_ms=3_000)
    first = builder.call_for(*count_record(0, "C1", "2022-02-16 14:18:00", "2022-02-16 14:19:00", 4)[:7])
    start, end = ms("2022-02-16 14:18:00"), ms("2022-02-16 14:19:00")
    assert first.headers["windowStartTime"] == str(start)
    assert first.headers["windowEndTime"] == str(end)
    assert first.headers["eventtime"] == str(end - 1)
    assert first.headers["watermark"] == str(end - 1 - 3_000)
    assert first.headers["kafka_offset"] == "0"
    # an older window later on the same partition does not move the watermark back
    older = builder.call_for(*count_record(1, "C2", "2022-02-16 14:17:00", "2022-02-16 14:18:00", 4)[:7])
    assert older.headers["watermark"] == str(end - 1 - 3_000)
    # another partition has its own
    other = builder.call_for(*count_record(0, "C2", "2022-02-16 14:17:00", "2022-02-16 14:18:00", 4, partition=1)[:7])
    assert other.headers["watermark"] == str(ms("2022-02-16 14:18:00") - 1 - 3_000)


def test_window_headers_of_the_record_win_and_are_passed_on() -> None:
    record = count_record(7, "C1", "2022-02-16 14:18:00", "2022-02-16 14:19:00", 4,
                          headers=[("windowStartTime", b"100"), ("windowEndTime", b"200"), ("x-trace", b"abc")])
    call = HeaderBuilder().call_for(*record[:7])
    assert call.headers["windowStartTime"] == "100"
    assert call.headers["eventtime"] == "199"
    assert call.headers["x-trace"] == "abc"


def test_without_a_window_the_record_timestamp_is_the_event_time() -> None:
    record = RawRecord("t", 0, 1, None, b"plain", None, 1234)
    call = HeaderBuilder().call_for(*record)
    assert call.headers["eventtime"] == "1234"
    assert "windowStartTime" not in call.headers and "kafka_receivedMessageKey" not in call.headers


@pytest.mark.parametrize(
    ("key", "fields", "expected"),
    [(b'{"error_code":"C009_OUT_OF_RANGE"}', ("error_code",), "C009_OUT_OF_RANGE"),
     (b'{"a":"x","b":2}', ("b", "a"), "2.x"),
     (b'{"a":"x","b":2}', (), "x.2"),
     (b"plain-key", ("a",), "plain-key"),
     (b"{not json", (), "{not json"),
     (None, (), "")],
)
def test_routing_key(key, fields, expected) -> None:
    assert routing_key(key, fields) == expected


def test_outputs_of_a_reply() -> None:
    assert outputs_of(b"", {"a": "b"}) == ()
    (single,) = outputs_of(b"x", {"a": "b"})
    assert (single.payload, dict(single.headers), single.index) == (b"x", {"a": "b"}, 0)
    many = outputs_of(encode_collection([b"p", b"", b"q"]), {"contentType": "multipart/json", "k": "v"})
    assert [(o.payload, o.index, dict(o.headers)) for o in many] == [(b"p", 0, {"k": "v"}), (b"q", 2, {"k": "v"})]


class ScriptedClient:
    """Answers from a table instead of a UDF (stage shaping only; the real client is tested against real UDFs)."""

    def __init__(self, answer):
        self.answer = answer

    def call_batch(self, calls: list[UdfCall]):
        return [self.answer(c) for c in calls]

    def close(self) -> None:
        pass


def test_stage_shapes_outputs_skips_empty_replies_and_dead_letters_failures() -> None:
    from connectors.udf_client import UdfOutput, UdfReply

    def answer(call: UdfCall):
        n = orjson.loads(call.payload)["error_count"]
        if n == 0:
            return UdfFailure(call, "INVALID_ARGUMENT", "zero", 1, "127.0.0.1:1")
        if n == 1:
            return UdfReply(call, ())
        return UdfReply(call, (UdfOutput(b"out-%d" % n, {"contentType": "text/plain"}),))

    records = [count_record(i, f"C{i}", "2022-02-16 14:18:00", "2022-02-16 14:19:00", n) for i, n in enumerate([5, 0, 1, 7])]
    stage = UdfStage(ScriptedClient(answer), "rabbitmq", "", "error-count-dlq", key_fields=("error_code",))
    out = stage.process(records)
    assert [type(m) for m in out] == [AmqpMessage, KafkaOut, AmqpMessage]
    first, dead, last = out
    assert (first.routing_key, first.body, first.content_type) == ("C0", b"out-5", "text/plain")
    start, end = ms("2022-02-16 14:18:00"), ms("2022-02-16 14:19:00")
    assert first.message_id == stable_message_id("window", str(start), str(end), "C0", 0)
    assert last.message_id != first.message_id
    assert dead.topic == "error-count-dlq" and dead.key == records[1].key and dead.value == records[1].value
    dead_headers = dict(dead.headers)
    assert dead_headers["x-dlq-reason"] == b"udf-error"
    assert dead_headers["x-udf-status"] == b"INVALID_ARGUMENT"
    assert dead_headers["x-udf-status-details"] == b"zero"
    assert dead_headers["x-source-offset"] == b"1"


def test_stage_message_ids_are_stable_across_runs() -> None:
    from connectors.udf_client import UdfOutput, UdfReply

    def echo(call):
        return UdfReply(call, (UdfOutput(call.payload, {}),))

    records = [count_record(i, "C1", f"2022-02-16 14:{i:02d}:00", f"2022-02-16 14:{i + 1:02d}:00", 3) for i in range(3)]
    ids = [m.message_id for m in UdfStage(ScriptedClient(echo), "rabbitmq", "", "d").process(records)]
    again = [m.message_id for m in UdfStage(ScriptedClient(echo), "rabbitmq", "", "d").process(records)]
    assert ids == again and len(set(ids)) == 3


def test_stage_without_udf_forwards_records_and_kafka_output_keeps_the_key() -> None:
    record = count_record(0, "C1", "2022-02-16 14:18:00", "2022-02-16 14:19:00", 3, headers=[("h", b"v")])
    (out,) = UdfStage(None, "kafka", "udf-out", "d").process([record])
    assert out == KafkaOut("udf-out", record.key, record.value, [("h", b"v")])
