"""`iot-monitoring validate`: the resolved pipeline on success, one line per problem (exit 2) on error."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from cli.validate import validate_file
from config import DEFAULT_PIPELINE

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(autouse=True)
def no_broker_environment(monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("RABBITMQ_URL", raising=False)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def field_line(out: str, stream: str, label: str) -> str:
    """The `label` line inside `stream`'s block of the output."""
    lines = out.splitlines()
    start = lines.index(f"  {stream}")
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        if line.strip().startswith(label):
            return line.strip()
    raise AssertionError(f"no {label!r} line for {stream}")


@pytest.mark.parametrize("name", ["iot-monitoring.yaml", "streaming-pipeline.yaml"])
def test_shipped_pipelines_validate(capsys, name):
    code, out, err = run(capsys, str(CONFIG_DIR / name))
    assert (code, err) == (0, "")
    assert field_line(out, "iot-monitoring-stream", "topic") == "topic        iot-monitoring (kafka at 127.0.0.1:9092)"
    assert field_line(out, "iot-monitoring-stream", "format") == "format       avro-confluent"
    assert field_line(out, "iot-monitoring-stream", "event time").endswith("watermark delay 3000 ms")
    assert field_line(out, "iot-monitoring-stream", "startup") == "startup      earliest-offset"
    assert field_line(out, "error-count-stream", "format") == "format       json"
    assert field_line(out, "error-count-stream", "key fields") == "key fields   error_code"
    assert field_line(out, "udf-output-error-count-stream", "topic").startswith("topic        udf-output-error-count (rabbitmq")
    assert "localhost:55554" in out


def test_the_plan_of_the_query_is_printed(capsys):
    pytest.importorskip("config.sql")
    code, out, _ = run(capsys, str(CONFIG_DIR / "iot-monitoring.yaml"))
    assert code == 0
    assert "TUMBLE on ts, size 60000 ms" in out
    assert "sink     error-count-stream" in out


def test_without_the_planner_queries_are_shown_as_text():
    text = validate_file(str(CONFIG_DIR / "iot-monitoring.yaml"), plan_fn=None)
    assert "INSERT INTO `error-count-stream`" in text
    assert "(SQL planner not installed)" in text


def test_no_file_means_the_default_pipeline(capsys):
    code, out, _ = run(capsys)
    assert code == 0
    assert out.startswith(f"{DEFAULT_PIPELINE}: valid")


def test_problems_are_printed_one_per_line_with_exit_code_2(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (CONFIG_DIR / "iot-monitoring.yaml")
        .read_text()
        .replace('protocol: "kafka"', 'protocol: "kafak"', 1)
        .replace("[[STREAM:iot-monitoring-stream]]", "[[STREAM:iot-monitoring]]")
    )
    code, out, err = run(capsys, str(bad))
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1  # the bad protocol stops the loader before resolution
    assert lines[0].startswith(f"{bad}, document 1 (line ")
    assert "Stream/iot-monitoring-stream: spec.protocol:" in lines[0]
    assert "Traceback" not in err


def test_resolution_problems_are_each_reported(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (CONFIG_DIR / "iot-monitoring.yaml")
        .read_text()
        .replace("INTERVAL '3' SECONDS", "INTERVAL 3 SECONDS")
        .replace("[[STREAM:iot-monitoring-stream]]", "[[STREAM:iot-monitoring]]")
    )
    code, _, err = run(capsys, str(bad))
    lines = err.splitlines()
    assert code == 2
    assert len(lines) == 2
    assert "Stream/iot-monitoring-stream: spec.dataSchemaContext.schema.fields.5.watermark: malformed" in lines[0]
    assert "spec.inputs.query.0: unknown stream 'iot-monitoring'" in lines[1]


def test_sql_error_is_a_clean_user_error(capsys, tmp_path):
    pytest.importorskip("config.sql")
    bad = tmp_path / "bad-sql.yaml"
    source = (CONFIG_DIR / "streaming-pipeline.yaml").read_text()
    bad.write_text(source.replace("WHERE type='ERROR'", "WHERE typo='ERROR'"))
    query_line = next(i for i, line in enumerate(source.splitlines(), 1) if line.strip().startswith('- "INSERT INTO'))
    code, out, err = run(capsys, str(bad))
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith(f"{bad}, document 4 (line {query_line}), Processor/iot-monitoring-sql-aggregation: spec.inlineQuery.0: SQL error")
    assert "typo" in line


def test_a_good_and_a_bad_file_together(capsys, tmp_path):
    missing = tmp_path / "missing.yaml"
    code, out, err = run(capsys, str(CONFIG_DIR / "iot-monitoring.yaml"), str(missing))
    assert code == 2
    assert "valid" in out.splitlines()[0]
    assert err.strip() == f"{missing}: cannot read the file: No such file or directory"


SHAPES = Path(__file__).resolve().parents[1] / "support" / "sr_shapes"


def test_a_chain_shows_its_handed_over_input_and_upsert_output(capsys):
    assert main(["validate", str(SHAPES / "top-tracks.yaml")]) == 0
    out = capsys.readouterr().out
    aggregate = out[out.index("query top-tracks-aggregate"):out.index("udf top-tracks-udf")]
    assert "input        track-plays-stream handed over from track-plays-join in one dataflow" in aggregate
    assert "output       upsert-kafka: keyed by window_start, window_end, track_id, style (JSON)" in aggregate
    join = out[out.index("query track-plays-join"):out.index("query top-tracks-aggregate")]
    assert "keys     Plays.track_id = Tracks.track_id" in join and "state    both sides per key; TTL none" in join
    assert "input  " not in join  # its inputs are read from Kafka


def test_a_cycle_of_processors_is_refused_as_at_start(capsys, tmp_path):
    text = (SHAPES / "top-tracks.yaml").read_text().replace(
        "FROM(SELECT * FROM [[STREAM:listens-stream]] WHERE listened_ms >= 20000) AS Plays",
        "FROM(SELECT * FROM [[STREAM:track-plays-stream]] WHERE listened_ms >= 20000) AS Plays")
    path = tmp_path / "cycle.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    assert "the queries form a cycle through their Streams (track-plays-join -> track-plays-join)" in capsys.readouterr().err
