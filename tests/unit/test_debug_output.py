"""`debugQuery` / `debugExplain` as the dataflow will log them: the plan
explained at start, output rows at debug level, warnings instead of
failures."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from config import load_pipeline
from config.sql import compile_query
from config.sql.debug import debug_output

SHAPES = Path(__file__).resolve().parents[1] / "support" / "sr_shapes"


def first_query(name: str, **debug):
    pipeline = load_pipeline(SHAPES / name, env={})
    processor = pipeline.query_processors[0]
    if debug:
        processor = replace(processor, debug=replace(processor.debug, **debug))
    return processor, compile_query(processor, pipeline), pipeline


def test_the_plan_is_explained_step_by_step_at_start(caplog):
    processor, plan, pipeline = first_query("login-watch.yaml")
    debug = debug_output(processor, plan, pipeline)
    with caplog.at_level(logging.INFO, logger="t"):
        debug.log_start(logging.getLogger("t"))
    text = caplog.text
    assert "1. read `logins-stream`" in text
    assert "of a fired window, emit only the groups where COUNT(*) > 5" in text
    assert "write window_start, window_end, account, attempts to `login-bursts-stream`" in text
    assert "rows of login-bursts-stream are logged at debug level (SELECT * FROM LoginBursts)" in text


def test_a_join_plan_explains_its_keys_and_state():
    processor, plan, _ = first_query("top-tracks.yaml")
    text = plan.explain()
    assert "keep rows where listened_ms >= 20000" in text
    assert "keep every row of both inputs by its key (Plays.track_id = Tracks.track_id), forever" in text
    assert "emitted once, when its second row arrives" in text


def test_tables_named_by_debug_explain_are_described():
    processor, plan, pipeline = first_query("login-watch.yaml", explain_streams=("logins-stream",))
    lines = debug_output(processor, plan, pipeline).start_lines
    assert "table logins-stream:" in lines
    assert "  event time   seen_at (Kafka record timestamp), watermark delay 2000 ms" in lines


def test_output_rows_are_logged_at_debug_level_only(caplog):
    processor, plan, pipeline = first_query(
        "login-watch.yaml", query="SELECT account, attempts FROM `login-bursts-stream` WHERE attempts >= 10")
    debug = debug_output(processor, plan, pipeline)
    log = logging.getLogger("t.rows")
    rows = [{"window_start": 0, "window_end": 10_000, "account": "a", "attempts": 12},
            {"window_start": 0, "window_end": 10_000, "account": "b", "attempts": 6}]
    with caplog.at_level(logging.INFO, logger="t.rows"):
        debug.log_rows(log, rows)
    assert caplog.records == []
    with caplog.at_level(logging.DEBUG, logger="t.rows"):
        debug.log_rows(log, rows)
    assert [r.getMessage() for r in caplog.records] == ["login-burst-detection login-bursts-stream: account='a', attempts=12"]


@pytest.mark.parametrize("query, reason", [
    ("SELECT * FROM LoginAttempts", "`LoginAttempts` is not written by this Processor"),
    ("SELECT * FROM Nowhere", "unknown table `Nowhere`"),
    ("SELECT nope FROM LoginBursts", "unsupported item nope"),
    ("SELECT * FROM LoginBursts ORDER BY attempts", "ORDER is not supported in a debug query"),
])
def test_a_debug_query_that_cannot_be_shown_is_a_warning(query, reason):
    processor, plan, pipeline = first_query("login-watch.yaml", query=query)
    debug = debug_output(processor, plan, pipeline)
    assert debug.rows is None
    (warning,) = debug.warnings
    assert reason in warning and "is not shown" in warning


def test_nothing_is_logged_when_nothing_is_asked():
    processor, plan, pipeline = first_query("login-watch.yaml", query=None, explain_plan=False)
    assert not debug_output(processor, plan, pipeline).enabled
