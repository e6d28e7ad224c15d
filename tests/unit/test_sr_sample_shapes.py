"""Pipelines in the shapes of the Streaming Runtime's samples load, resolve and
compile unchanged, into the plans Flink SQL's semantics call for.

The pipelines are this package's own (`tests/support/sr_shapes/`); when a
checkout or mirror of the Streaming Runtime's repository is at hand
(`STREAMING_RUNTIMES_REPO`, a git directory), its own sample files are
validated too.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from cli.main import main
from config import load_pipeline
from config.pipeline import Pipeline
from config.resolve import with_registry_schemas
from config.sql import SqlError, compile_query
from config.sql.plan import Plan

SHAPES = Path(__file__).resolve().parents[1] / "support" / "sr_shapes"
TOP_TRACKS = ["top-tracks.yaml", "top-tracks-inline-avro.yaml", "top-tracks-inline-sql.yaml"]
DEFAULT_MIRROR = "/work/.mirror/vmware-tanzu+streaming-runtimes/repo"
SAMPLE_FILES = [
    "streaming-runtime-samples/anomaly-detection/streaming-pipeline.yaml",
    "streaming-runtime-samples/clickstream/streaming-pipeline.yaml",
    "streaming-runtime-samples/iot-monitoring/streaming-pipeline.yaml",
    "streaming-runtime-samples/top-k-songs/streaming-pipeline.yaml",
    "streaming-runtime-samples/top-k-songs/streaming-pipeline-inline-avro-schema.yaml",
    "streaming-runtime-samples/top-k-songs/streaming-pipeline-inline-avro-confluent-schema.yaml",
    "streaming-runtime-samples/top-k-songs/streaming-pipeline-inline-sql-schema.yaml",
]


def load(name: str) -> Pipeline:
    return load_pipeline(SHAPES / name, env={})


def plans(pipeline: Pipeline) -> dict[str, Plan]:
    return {q.name: compile_query(q, pipeline) for q in pipeline.query_processors}


@pytest.mark.parametrize("name", sorted(p.name for p in SHAPES.glob("*.yaml")))
def test_every_shape_validates(capsys, name):
    assert main(["validate", str(SHAPES / name)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith(f"{SHAPES / name}: valid")


def test_having_over_a_count_with_event_time_from_the_kafka_timestamp():
    pipeline = load("login-watch.yaml")
    plan = plans(pipeline)["login-burst-detection"]
    logins = pipeline.stream("logins-stream")
    assert (logins.time_attribute.column, logins.time_attribute.source, logins.time_attribute.watermark_delay_ms) == (
        "seen_at", "kafka-timestamp", 2_000)
    assert plan.window.size_ms == 10_000 and plan.group_by == ("account",)
    assert plan.having is not None and plan.having.sql == "COUNT(*) > 5"
    assert [(a.function, a.alias) for a in plan.aggregates] == [("COUNT", "attempts")]
    group = {"account": "a", "window_start": 0, "window_end": 10_000}
    assert [plan.having.row({**group, "attempts": n}) for n in (5, 6)] == [False, True]
    debug = pipeline.query_processors[0].debug
    assert debug.explain_plan and debug.query == "SELECT * FROM LoginBursts"


def test_join_on_the_schemas_record_names_with_where_on_the_joined_input():
    pipeline = load("member-clicks.yaml")
    plan = plans(pipeline)["gold-member-views"]
    join = plan.join
    assert plan.sources == ("page-view-stream", "member-stream") and plan.source == "page-view-stream"
    assert (join.kind, join.keys) == ("INNER", (("member_id", "member_id"),))
    assert (join.left.name, join.right.name) == ("PageViews", "Members")
    assert join.left.predicate is None and join.residual is None
    assert join.right.predicate.sql == "Members.tier = 'GOLD'"
    members = pl.DataFrame({"member_id": ["m1", "m2"], "display_name": ["A", "B"], "tier": ["GOLD", "SILVER"]})
    assert members.filter(join.right.predicate.polars())["member_id"].to_list() == ["m1"]
    assert [(c.name, c.source, c.ref) for c in plan.projection] == [
        ("member_id", "right", "member_id"), ("display_name", "right", "display_name"),
        ("page", "left", "page"), ("gesture", "left", "gesture"), ("viewed_at", "left", "viewed_at"),
    ]
    assert pipeline.stream("member-stream").field_named("proctime").proctime
    assert pipeline.query_processors[0].debug.explain_plan  # statement 3: after the three tables


@pytest.mark.parametrize("name", TOP_TRACKS)
def test_top_tracks_chain_join_then_window_top_n_into_upsert_kafka(name):
    pipeline = load(name)
    compiled = plans(pipeline)
    join = compiled["track-plays-join"].join
    assert (join.left.stream, join.left.name, join.right.stream, join.right.name) == (
        "listens-stream", "Plays", "tracks-stream", "Tracks")
    assert join.left.predicate.sql == "listened_ms >= 20000"
    listens = pl.DataFrame({"track_id": [1, 2, 3], "listened_ms": [20_000, 19_999, None]})
    assert listens.filter(join.left.predicate.polars().fill_null(False))["track_id"].to_list() == [1]
    assert join.keys == (("track_id", "track_id"),)

    top = compiled["top-tracks-aggregate"]
    spec = top.top_n
    assert spec.partition_by == ("window_start", "window_end", "style")
    assert [(k.column, k.descending) for k in spec.order_by] == [("play_count", True)]
    assert (spec.rank_start, spec.rank_end, spec.row_number, spec.row_number_emitted) == (1, 3, "row_num", False)
    assert spec.tie_break == ("track_id", "title")
    assert top.window.time_column == "heard_at" and top.window.size_ms == 30_000
    written = [(c.name, c.selected_as) for c in top.projection]
    assert written[-1] == ("track_play_count", "play_count")  # INSERT INTO maps by position
    sink = pipeline.stream("top-tracks-per-style-stream")
    assert sink.upsert and sink.key_fields == sink.primary_key == ("window_start", "window_end", "track_id", "style")


def test_the_schema_forms_give_the_same_plans():
    described = {name: {q: p.describe() for q, p in plans(load(name)).items()} for name in TOP_TRACKS}
    first = described[TOP_TRACKS[0]]
    for name in TOP_TRACKS[1:]:
        assert described[name] == first, name


def test_registry_subjects_are_recorded_then_completed_from_the_fetched_schemas():
    pipeline = load("top-tracks-registry.yaml")
    tracks = pipeline.stream("tracks-stream")
    assert tracks.schema_pending
    assert tracks.schema_registry_subject_url == "http://registry.test:8081/subjects/tracks-value/versions/latest"
    assert tracks.schema_registry_url == "http://registry.test:8081" and tracks.value_format == "avro-confluent"
    provisional = plans(pipeline)["track-plays-join"]
    assert set(provisional.pending_schemas) == {"listens-stream", "tracks-stream"}

    reference = load("top-tracks-inline-avro.yaml")
    fetched = {name: reference.stream(name).avro_schema_json for name in ("tracks-stream", "listens-stream")}
    completed = with_registry_schemas(pipeline, fetched)
    assert not completed.stream("tracks-stream").schema_pending
    assert [f.name for f in completed.stream("listens-stream").fields] == ["track_id", "listened_ms", "heard_at"]
    final = plans(completed)
    assert final["track-plays-join"].pending_schemas == ()
    assert final["track-plays-join"].describe() == plans(reference)["track-plays-join"].describe()


def test_a_fetched_schema_without_the_columns_the_query_uses_fails_the_start():
    pipeline = load("top-tracks-registry.yaml")
    fetched = {
        "tracks-stream": json.dumps({"type": "record", "name": "Tracks", "fields": [{"name": "track_id", "type": "long"}]}),
        "listens-stream": json.dumps({"type": "record", "name": "Listens", "fields": [{"name": "track_id", "type": "long"}]}),
    }
    completed = with_registry_schemas(pipeline, fetched)
    with pytest.raises(SqlError, match="unknown column `record` in SELECT"):
        compile_query(completed.query_processors[0], completed)


def test_the_sensor_shape_is_the_seed_query():
    plan = plans(load("sensor-errors.yaml"))["fault-count-aggregation"]
    assert plan.predicate.sql == "level = 'FAULT'"
    assert (plan.window.kind, plan.window.size_ms, plan.group_by) == ("TUMBLE", 60_000, ("fault",))
    assert plan.having is None and plan.join is None and plan.top_n is None


def _mirror() -> str | None:
    path = os.environ.get("STREAMING_RUNTIMES_REPO", DEFAULT_MIRROR)
    return path if Path(path).exists() else None


@pytest.mark.skipif(_mirror() is None, reason="no Streaming Runtime repository at STREAMING_RUNTIMES_REPO")
def test_the_streaming_runtime_samples_themselves_validate(tmp_path, capsys):
    files = []
    for sample in SAMPLE_FILES:
        text = subprocess.run(
            ["git", "-C", _mirror(), "show", f"HEAD:{sample}"], check=True, capture_output=True, text=True
        ).stdout
        target = tmp_path / sample.replace("/", "_")
        target.write_text(text)
        files.append(str(target))
    code = main(["validate", *files])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    assert out.count(": valid") == len(files)
    assert "HAVING" not in err and "top-n    first 3 per window_start, window_end, genre by play_count DESC" in out


def test_plans_are_immutable():
    plan = plans(load("member-clicks.yaml"))["gold-member-views"]
    with pytest.raises(Exception):
        plan.join.kind = "LEFT"  # type: ignore[misc]
    assert replace(plan.join, kind="LEFT").kind == "LEFT" and plan.join.kind == "INNER"


def test_an_upsert_kafka_result_is_keyed_by_its_primary_key():
    from engine.query_handlers import ResultEncoder
    from engine.records import WindowResult

    pipeline = load("top-tracks.yaml")
    plan = plans(pipeline)["top-tracks-aggregate"]
    sink = pipeline.stream(plan.sink)
    out = ResultEncoder(plan, sink).encode(WindowResult(0, 30_000, (7, "Song", "jazz"), {"play_count": 4})).out
    assert json.loads(out.key) == {"window_start": "1970-01-01 00:00:00", "window_end": "1970-01-01 00:00:30",
                                   "track_id": 7, "style": "jazz"}
    assert json.loads(out.value) == {"window_start": "1970-01-01 00:00:00", "window_end": "1970-01-01 00:00:30",
                                     "track_id": 7, "title": "Song", "style": "jazz", "track_play_count": 4}


@pytest.mark.skipif(_mirror() is None, reason="no Streaming Runtime repository at STREAMING_RUNTIMES_REPO")
@pytest.mark.parametrize("sample", [s for s in SAMPLE_FILES if "avro-confluent" not in s])  # that one fetches at start
def test_the_streaming_runtime_samples_build_their_whole_dataflow(sample, tmp_path):
    """Every Processor of the sample in one dataflow: joins, chains, Top-N, the UDF stages."""
    from dataflows.iot import compile_plans
    from dataflows.wiring import build_flow
    from runtime.settings import RunOptions

    target = tmp_path / "sample.yaml"
    target.write_text(subprocess.run(["git", "-C", _mirror(), "show", f"HEAD:{sample}"], check=True,
                                     capture_output=True, text=True).stdout)
    pipeline = load_pipeline(target, env={})
    options = RunOptions.from_env({})
    plans_by_name = compile_plans(pipeline, options)
    flow = build_flow(pipeline, plans_by_name, options)
    steps = {step.step_id.split(".", 1)[1]: type(step).__name__ for step in flow.substeps}
    for name, plan in plans_by_name.items():
        assert steps[name] == ("join" if plan.join else "handed_over_query" if plan.source in {p.sink for p in plans_by_name.values()}
                               else "query")
    assert sum(kind == "udf_processor" for kind in steps.values()) == len(pipeline.udf_processors)
