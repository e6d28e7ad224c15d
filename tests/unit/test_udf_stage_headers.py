"""The UDF stage's request headers, reply shaping and message ids, without a UDF."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from connectors.udf_client import UdfCall, UdfFailure, UdfOutput, UdfReply, outputs_of
from engine.records import KafkaOut, QueryResult, RawRecord
from engine.udf_stage import UdfStage, routing_key
from udf.headers import HeaderBuilder, request_headers
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
    first = builder.headers_for(*count_record(0, "C1", "2022-02-16 14:18:00", "2022-02-16 14:19:00", 4)[:7])
    start, end = ms("2022-02-16 14:18:00"), ms("2022-02-16 14:19:00")
    assert first["windowStartTime"] == str(start)
    assert first["windowEndTime"] == str(end)
    assert first["eventtime"] == str(end - 1)
    assert first["watermark"] == str(end - 1 - 3_000)
    assert first["kafka_offset"] == "0"
    # an older window later on the same partition does not move the watermark back
    older = builder.headers_for(*count_record(1, "C2", "2022-02-16 14:17:00", "2022-02-16 14:18:00", 4)[:7])
    assert older["watermark"] == str(end - 1 - 3_000)
    # another partition has its own
    other = builder.headers_for(*count_record(0, "C2", "2022-02-16 14:17:00", "2022-02-16 14:18:00", 4, partition=1)[:7])
    assert other["watermark"] == str(ms("2022-02-16 14:18:00") - 1 - 3_000)


def test_window_headers_of_the_record_win_and_are_passed_on() -> None:
    record = count_record(7, "C1", "2022-02-16 14:18:00", "2022-02-16 14:19:00", 4,
                          headers=[("windowStartTime", b"100"), ("windowEndTime", b"200"), ("x-trace", b"abc")])
    call = HeaderBuilder().headers_for(*record[:7])
    assert call["windowStartTime"] == "100"
    assert call["eventtime"] == "199"
    assert call["x-trace"] == "abc"


def test_without_a_window_the_record_timestamp_is_the_event_time() -> None:
    record = RawRecord("t", 0, 1, None, b"plain", None, 1234)
    call = HeaderBuilder().headers_for(*record)
    assert call["eventtime"] == "1234"
    assert "windowStartTime" not in call and "kafka_receivedMessageKey" not in call


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
    (first, last), (dead,) = out.messages, out.dead
    assert (first.routing_key, first.body, first.content_type) == ("C0", b"out-5", "text/plain")
    assert (last.routing_key, last.body) == ("C3", b"out-7")
    assert last.message_id != first.message_id
    assert dead.topic == "error-count-dlq" and dead.key == records[1].key and dead.value == records[1].value
    dead_headers = dict(dead.headers)
    assert dead_headers["x-dlq-reason"] == b"udf-error"
    assert dead_headers["x-udf-status"] == b"INVALID_ARGUMENT"
    assert dead_headers["x-udf-status-details"] == b"zero"
    assert dead_headers["x-source-offset"] == b"1"
    assert [k for k, _ in dead.headers].count("x-dlq-reason") == 1


def echo(call):
    return UdfReply(call, (UdfOutput(call.payload, {}),))


def ids_of(items) -> list[str]:
    return [m.message_id for m in UdfStage(ScriptedClient(echo), "rabbitmq", "", "d").process(items).messages]


def test_stage_message_ids_are_stable_across_runs_and_offsets() -> None:
    records = [count_record(i, "C1", f"2022-02-16 14:{i:02d}:00", f"2022-02-16 14:{i + 1:02d}:00", 3) for i in range(3)]
    ids = ids_of(records)
    assert ids == ids_of(records) and len(set(ids)) == 3
    # a window result written again after a restart lands at another offset, byte-identical: same id
    moved = [r._replace(offset=r.offset + 100) for r in records]
    assert ids_of(moved) == ids


def test_results_that_share_window_and_key_fields_get_distinct_ids() -> None:
    """GROUP BY two columns, key fields one: the key is the same, the results are not."""
    key = orjson.dumps({"error_code": "C1"})
    values = [orjson.dumps({"window_start": "2022-02-16 14:18:00", "window_end": "2022-02-16 14:19:00",
                            "error_code": "C1", "application": app, "error_count": 2}) for app in ("a", "b")]
    records = [RawRecord("error-count", 0, i, key, v, None, None) for i, v in enumerate(values)]
    assert len(set(ids_of(records))) == 2
    handed = [QueryResult(KafkaOut("error-count", key, v, []), (0, 60_000), ("window", 0, 60_000, "C1", app))
              for v, app in zip(values, ("a", "b"))]
    assert len(set(ids_of(handed))) == 2


def test_stateless_results_handed_over_get_the_ids_of_their_inputs() -> None:
    value = b'{"a":1}'
    handed = [QueryResult(KafkaOut("out", None, value, []), None, ("row", "in", 0, offset)) for offset in (5, 6)]
    ids = ids_of(handed)
    assert len(set(ids)) == 2 and ids == ids_of(handed)


def test_a_handed_over_result_is_called_with_its_window() -> None:
    seen: list[dict[str, str]] = []

    def record_call(call):
        seen.append(dict(call.headers))
        return echo(call)

    result = QueryResult(KafkaOut("error-count", b'{"error_code":"C1"}', b'{"n":1}', []), (60_000, 120_000), ("window", 60_000, 120_000, "C1"))
    UdfStage(ScriptedClient(record_call), "rabbitmq", "", "d").process([result])
    assert (seen[0]["windowStartTime"], seen[0]["windowEndTime"], seen[0]["eventtime"]) == ("60000", "120000", "119999")
    assert "kafka_offset" not in seen[0]


def test_stage_without_udf_forwards_records_and_kafka_output_keeps_the_key() -> None:
    record = count_record(0, "C1", "2022-02-16 14:18:00", "2022-02-16 14:19:00", 3, headers=[("h", b"v")])
    (out,) = UdfStage(None, "kafka", "udf-out", "d").process([record]).messages
    assert out == KafkaOut("udf-out", record.key, record.value, [("h", b"v")])
