"""One frame of `iot-monitoring watch`, rendered to text from a constructed state."""

from __future__ import annotations

import random
import re

import orjson
import pytest
from rich.console import Console

from cli.watch_view import Alert, Counters, WatchState, render, split_result

CODES = [f"C{i:03d}_{name}" for i, name in enumerate(["ABORTED", "CANCELLED", "INTERNAL", "NOT_FOUND", "UNKNOWN"], 1)]
BAR_CHARS = "█▉▊▋▌▍▎▏"
BAR_WIDTH = 20


def frame_text(state: WatchState, width: int = 160, **options) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(render(state, bar_width=BAR_WIDTH, **options))
    return console.export_text()


def result(start: str, end: str, code: str, count: int) -> dict:
    return {"window_start": start, "window_end": end, "error_code": code, "error_count": count}


def code_line(text: str, code: str, after: str = "") -> str:
    """The first frame line naming `code`, at or after the line containing `after`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(line for line in lines[start:] if f" {code} " in f" {line} " or f"│{code} " in line)


def bar_cells(line: str) -> float:
    """Width of the bar drawn on a line: full blocks count 1, partial ones 1/8 to 7/8."""
    full = line.count("█")
    partial = sum((8 - BAR_CHARS.index(ch)) / 8 for ch in line if ch in BAR_CHARS[1:])
    return full + partial


@pytest.fixture
def state() -> WatchState:
    rng = random.Random(7)
    s = WatchState("error-count", "udf-output-error-count")
    windows = [("2022-02-16 14:18:00", "2022-02-16 14:19:00"), ("2022-02-16 14:19:00", "2022-02-16 14:20:00")]
    s.expected = {}  # type: ignore[attr-defined]
    for start, end in windows:
        for code in CODES:
            count = rng.randint(1, 120)
            s.expected[(start, code)] = count  # type: ignore[attr-defined]
            assert s.add_result(result(start, end, code, count))
    return s


def table_rows(text: str) -> list[dict[str, int]]:
    """(code -> count) of each window table, left to right, as drawn side by side."""
    tables: list[dict[str, int]] = []
    for line in text.splitlines():
        for i, (code, count) in enumerate(re.findall(r"│(\S+)\s*│\s*(\d+)\s*│", line)):
            while len(tables) <= i:
                tables.append({})
            tables[i][code] = int(count)
    return tables


def test_each_window_lists_every_code_with_its_count_newest_window_first(state):
    text = frame_text(state)
    newer, older = "window 2022-02-16 14:19:00 → 14:20:00", "window 2022-02-16 14:18:00 → 14:19:00"
    assert newer in text and older in text
    assert text.index(newer) < text.index(older)
    for expect_start, table in zip(("2022-02-16 14:19:00", "2022-02-16 14:18:00"), table_rows(text), strict=True):
        assert table == {code: n for (start, code), n in state.expected.items() if start == expect_start}


def test_narrow_terminal_stacks_the_windows(state):
    text = frame_text(state, width=70)
    tables = table_rows(text)
    assert len(tables) == 1  # one table per row: rows of both windows land in the same column
    newer_title = text.index("window 2022-02-16 14:19:00")
    older_title = text.index("window 2022-02-16 14:18:00")
    newer_part, older_part = table_rows(text[newer_title:older_title]), table_rows(text[older_title:])
    assert newer_part[0] == {code: n for (start, code), n in state.expected.items() if start.endswith("14:19:00")}
    assert older_part[0] == {code: n for (start, code), n in state.expected.items() if start.endswith("14:18:00")}


def test_window_title_gives_the_total(state):
    text = frame_text(state)
    for start in ("2022-02-16 14:18:00", "2022-02-16 14:19:00"):
        total = sum(n for (s, _), n in state.expected.items() if s == start)
        assert re.search(rf"window {start} → \S+ · total {total}\b", text)


def test_bars_are_proportional_to_the_counts_of_their_window():
    s = WatchState("error-count")
    counts = {"C001_ABORTED": 80, "C002_ALREADY_EXISTS": 40, "C003_CANCELLED": 10, "C004_DEADLINE_EXCEEDED": 1}
    for code, n in counts.items():
        s.add_result(result("2022-02-16 14:18:00", "2022-02-16 14:19:00", code, n))
    text = frame_text(s, width=100)
    top = max(counts.values())
    for code, n in counts.items():
        assert bar_cells(code_line(text, code)) == pytest.approx(BAR_WIDTH * n / top, abs=0.5)
    # rows sorted by count, largest first
    order = [text.index(code) for code in sorted(counts, key=counts.get, reverse=True)]
    assert order == sorted(order)


def test_only_the_newest_windows_are_shown():
    s = WatchState("error-count")
    for minute in range(10, 15):
        s.add_result(result(f"2022-02-16 14:{minute}:00", f"2022-02-16 14:{minute + 1}:00", "C001_ABORTED", minute))
    text = frame_text(s, max_windows=3)
    shown = re.findall(r"window 2022-02-16 14:(\d\d):00", text)
    assert shown == ["14", "13", "12"]
    assert "2 older windows" in text


def test_a_repeated_result_replaces_the_earlier_count():
    s = WatchState("error-count")
    s.add_result(result("2022-02-16 14:18:00", "2022-02-16 14:19:00", "C001_ABORTED", 3))
    s.add_result(result("2022-02-16 14:18:00", "2022-02-16 14:19:00", "C001_ABORTED", 26))
    text = frame_text(s)
    assert re.search(r"C001_ABORTED\s*│\s*26\s*│", text)
    assert not re.search(r"C001_ABORTED\s*│\s*3\s*│", text)


def test_alerts_newest_first_with_severity_code_window_count_and_reason(state):
    alerts = [
        {"error_code": "C003_INTERNAL", "window_start": "2022-02-16 14:18:00", "window_end": "2022-02-16 14:19:00",
         "error_count": 61, "previous_count": None, "severity": "warning", "reason": "error_count 61 reached the threshold 50"},
        {"error_code": "C001_ABORTED", "window_start": "2022-02-16 14:19:00", "window_end": "2022-02-16 14:20:00",
         "error_count": 117, "previous_count": 12, "severity": "critical", "reason": "error_count 117 reached the threshold 50"},
    ]
    for i, alert in enumerate(alerts):
        state.add_alert(Alert.from_message(orjson.dumps(alert), orjson.dumps({"error_code": alert["error_code"]}).decode(),
                                           received_at=1_645_020_000 + i))
    text = frame_text(state)
    assert "alerts (2 received, newest first)" in text
    lines = [line for line in text.splitlines() if "reached the threshold" in line]
    assert len(lines) == 2
    for line, alert in zip(lines, reversed(alerts)):
        assert line.split()[1:5] == [alert["severity"], alert["error_code"], alert["window_start"][11:], str(alert["error_count"])]
        assert line.endswith(alert["reason"])


def test_a_payload_that_is_not_an_alert_record_is_shown_as_text():
    s = WatchState("error-count", "udf-output-error-count")
    s.add_alert(Alert.from_message(b'{"ERROR_CODE": "C001_ABORTED", "ERROR_COUNT": 3}', '{"error_code":"C001_ABORTED"}'))
    s.add_alert(Alert.from_message(b"\xffnot json", "C002"))
    text = frame_text(s)
    assert '{"ERROR_CODE": "C001_ABORTED", "ERROR_COUNT": 3}' in text
    assert "\ufffdnot json" in text and " C002 " in text


def test_no_alert_section_without_an_exchange_and_a_hint_while_no_window_closed():
    s = WatchState("error-count", None, hint="the first one closes at about 14:19:03")
    text = frame_text(s)
    assert "alerts" not in text
    assert "no window has closed yet; the first one closes at about 14:19:03" in text


def test_counters_and_watermark_lag(state):
    state.counters = Counters(late_records=1234, dead_letters=7, records_in=98765, watermark_lag_s=4.25,
                              open_windows=2, source="metrics")
    text = frame_text(state)
    assert "late records 1,234" in text
    assert "dead-lettered 7" in text
    assert "watermark lag 4.2 s" in text or "watermark lag 4.3 s" in text
    assert "records in 98,765" in text and "open windows 2" in text
    assert "(late and dead-letter counts from metrics)" in text


def test_unreachable_metrics_show_na_for_the_lag(state):
    state.counters = Counters(late_records=0, dead_letters=5, source="side topics")
    text = frame_text(state)
    assert "watermark lag n/a" in text
    assert "late records 0" in text and "dead-lettered 5" in text
    assert "records in" not in text


def test_problems_with_a_source_are_shown():
    s = WatchState("error-count", "x")
    s.notes["alerts"] = "RabbitMQ at amqp://guest:***@127.0.0.1:5672/%2F unreachable"
    assert "alerts: RabbitMQ at amqp://guest:***@127.0.0.1:5672/%2F unreachable" in frame_text(s)


def test_results_of_another_query_shape_still_render():
    # e.g. GROUP BY application with COUNT(*) AS n: the count is the integer column, the label the rest
    value = {"window_start": 1_645_020_000_000, "window_end": 1_645_020_060_000, "application": "Hadoop", "n": 9}
    assert split_result(value) == ((1_645_020_000_000, 1_645_020_060_000), "Hadoop", 9)
    s = WatchState("by-app")
    assert s.add_result(value)
    assert not s.add_result({"window_start": 1, "error_code": "C001"})  # no window end, no count
    assert not s.add_result(b"\x00garbage")
    text = frame_text(s)
    assert "Hadoop" in text and "2 result records were not window counts" in text
