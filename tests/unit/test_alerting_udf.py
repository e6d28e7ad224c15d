"""The alerting sample UDF's rules and memory, called as a plain function."""

from __future__ import annotations

import argparse

import grpc
import orjson
import pytest

from udf.samples.alerting import AlertingUdf, AlertRules, add_rule_options, judge, parse_count, rules_from
from udf.sdk import UdfError

MINUTE = 60_000


def count(code: str, minute: int, n: int) -> bytes:
    """A count record in the seed's JSON format, for 14:<minute> on the seed's day."""
    return orjson.dumps({
        "window_start": f"2022-02-16 14:{minute:02d}:00",
        "window_end": f"2022-02-16 14:{minute + 1:02d}:00",
        "error_code": code,
        "error_count": n,
    })


def alert_of(udf: AlertingUdf, payload: bytes) -> dict | None:
    reply = udf(payload, {"contentType": "application/json"})
    if reply is None:
        return None
    body, headers = reply
    assert headers == {"contentType": "application/json"}
    return orjson.loads(body)


RULES = AlertRules(threshold=30, critical_factor=2.0, jump_factor=2.0, min_count=5)


def test_below_threshold_and_no_history_gives_no_output() -> None:
    assert alert_of(AlertingUdf(RULES), count("C001", 18, 29)) is None


def test_threshold_warning_and_critical() -> None:
    udf = AlertingUdf(RULES)
    warning = alert_of(udf, count("C001", 18, 30))
    assert warning == {
        "error_code": "C001",
        "window_start": "2022-02-16 14:18:00",
        "window_end": "2022-02-16 14:19:00",
        "error_count": 30,
        "previous_count": None,  # first window this process sees for C001
        "severity": "warning",
        "reason": "error_count 30 reached the threshold 30",
    }
    critical = alert_of(udf, count("C002", 18, 60))
    assert critical["severity"] == "critical"


def test_jump_against_the_window_right_before() -> None:
    udf = AlertingUdf(RULES)
    assert alert_of(udf, count("C003", 18, 6)) is None
    alert = alert_of(udf, count("C003", 19, 12))  # 2x the previous 6, below the threshold
    assert alert["previous_count"] == 6
    assert alert["severity"] == "warning"
    assert "2.0x the previous window's 6" in alert["reason"]
    assert alert_of(udf, count("C003", 20, 13)) is None  # 13 < 2 * 12


def test_a_gap_means_the_previous_window_had_zero_and_zero_never_jumps() -> None:
    udf = AlertingUdf(RULES)
    assert alert_of(udf, count("C004", 10, 3)) is None
    # 14:11 had no C004 errors: previous is 0, so only the threshold can alert
    assert alert_of(udf, count("C004", 12, 20)) is None
    alert = alert_of(udf, count("C004", 13, 45))
    assert alert["previous_count"] == 20
    assert alert["severity"] == "warning"
    assert "reached the threshold" in alert["reason"] and "2.2x" in alert["reason"]


def test_jump_needs_min_count() -> None:
    udf = AlertingUdf(RULES)
    alert_of(udf, count("C005", 18, 1))
    assert alert_of(udf, count("C005", 19, 4)) is None  # 4x, but 4 < min_count 5


def test_codes_are_tracked_separately_and_replays_answer_the_same() -> None:
    udf = AlertingUdf(RULES)
    alert_of(udf, count("C006", 18, 5))
    alert_of(udf, count("C007", 18, 50))
    first = alert_of(udf, count("C006", 19, 10))
    again = alert_of(udf, count("C006", 19, 10))
    assert first == again and first["previous_count"] == 5


def test_epoch_millis_windows_are_accepted() -> None:
    udf = AlertingUdf(RULES)
    payload = orjson.dumps({"window_start": 10 * MINUTE, "window_end": 11 * MINUTE, "error_code": "C1", "error_count": 99})
    alert = alert_of(udf, payload)
    assert alert["window_start"] == 10 * MINUTE and alert["severity"] == "critical"


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b'{"error_code": "C1"}',
     b'{"error_code":"C1","window_start":"2022-02-16 14:00:00","window_end":"2022-02-16 14:01:00","error_count":"7"}',
     b'{"error_code":"C1","window_start":"2022-02-16 14:01:00","window_end":"2022-02-16 14:00:00","error_count":7}'],
)
def test_bad_payload_is_invalid_argument(payload: bytes) -> None:
    with pytest.raises(UdfError) as caught:
        AlertingUdf(RULES)(payload, {})
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_judge_alone() -> None:
    c = parse_count(count("C1", 0, 10))
    assert judge(c, None, AlertRules(threshold=10, critical_factor=1.5)) == ("warning", "error_count 10 reached the threshold 10")
    assert judge(c, None, AlertRules(threshold=11)) is None
    assert judge(c, 4, AlertRules(threshold=100, jump_factor=2.5, min_count=10))[0] == "warning"
    assert judge(c, 5, AlertRules(threshold=100, jump_factor=2.5, min_count=10)) is None


def test_rules_from_env_then_options() -> None:
    env = {"ALERT_THRESHOLD": "7", "ALERT_JUMP_FACTOR": "3.5"}
    parser = argparse.ArgumentParser()
    add_rule_options(parser)
    assert rules_from(parser.parse_args([]), env) == AlertRules(threshold=7, jump_factor=3.5)
    assert rules_from(parser.parse_args(["--threshold", "9", "--min-count", "2"]), env) == AlertRules(
        threshold=9, jump_factor=3.5, min_count=2)
    with pytest.raises(ValueError, match="ALERT_THRESHOLD"):
        AlertRules.from_env({"ALERT_THRESHOLD": "many"})


def test_memory_is_bounded_and_forgotten_windows_are_unknown() -> None:
    udf = AlertingUdf(RULES, kept_windows=3)
    for minute in range(6):
        alert_of(udf, count("C9", minute, 6))
    # 14:01 was forgotten: the jump rule cannot claim it had 0 errors
    c = parse_count(count("C9", 2, 1))
    assert udf.previous_count(c) is None
    assert udf.previous_count(parse_count(count("C9", 6, 1))) == 6
