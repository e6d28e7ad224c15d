"""Chains of Processors through intermediate Streams in one dataflow: the
order they are wired in, what cannot be handed over, and the handover step
itself (offsets that go on after a restart, late records that carry
themselves). No broker: the flow is only built."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from config import ConfigError, load_pipeline
from dataflows.iot import compile_plans
from dataflows.wiring import build_flow
from engine.records import KafkaOut, LateRecord, PartitionBatch, QueryResult, WindowedOutput
from operators.handover import HandoverLogic, late_of_handed_over
from runtime.settings import RunOptions

SHAPES = Path(__file__).resolve().parents[1] / "support" / "sr_shapes"


def stream(name: str, *fields: str, extra: str = "") -> str:
    listed = "".join(f"\n        - name: {f}\n          type: long" for f in fields)
    return f"""apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Stream
metadata:
  name: {name}
spec:
  name: {name}
  protocol: kafka
  dataSchemaContext:
    schema:
      namespace: org.example.chain
      name: {name.title().replace("-", "")}
      fields:{listed}{extra}
    options:
      ddl.value.format: json
"""


def processor(name: str, query: str) -> str:
    return f"""apiVersion: streaming.tanzu.vmware.com/v1alpha1
kind: Processor
metadata:
  name: {name}
spec:
  type: FSQL
  inlineQuery:
    - "{query}"
"""


def pipeline_of(tmp_path: Path, *docs: str):
    path = tmp_path / "p.yaml"
    path.write_text("---\n".join(docs))
    return load_pipeline(path, env={})


def test_readers_are_wired_after_their_writers_whatever_the_yaml_order(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((SHAPES / "top-tracks.yaml").read_text()))
    processors = [d for d in docs if d["kind"] == "Processor"]
    path = tmp_path / "reversed.yaml"
    path.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] != "Processor"] + processors[::-1]))
    pipeline = load_pipeline(path, env={})
    assert [p.name for p in pipeline.query_processors] == ["top-tracks-aggregate", "track-plays-join"]
    options = RunOptions.from_env({})
    flow = build_flow(pipeline, compile_plans(pipeline, options), options)
    ids = [step.step_id.split(".", 1)[1] for step in flow.substeps]
    assert ids.index("track-plays-join") < ids.index("top-tracks-aggregate") < ids.index("top-tracks-udf_top-tracks-per-style-stream")
    reads = [s.step_id for s in flow.substeps if s.step_id.endswith("top-tracks-aggregate")][0]
    inner = next(s for s in flow.substeps if s.step_id == reads)
    assert [s.step_id.rsplit(".", 1)[1] for s in inner.substeps][0] == "read"  # the handover, not a Kafka input
    assert type(inner.substeps[0]).__name__ == "handed_over"


def test_a_stream_three_queries_write_is_merged_once_for_the_query_that_reads_it(tmp_path: Path) -> None:
    writers = [processor(f"w{i}", f"INSERT INTO [[STREAM:both]] SELECT a FROM [[STREAM:in{i}]] WHERE a > {i}")
               for i in range(3)]
    reader = processor("r", "INSERT INTO [[STREAM:out]] SELECT a FROM [[STREAM:both]] WHERE a > 5")
    pipeline = pipeline_of(tmp_path, *(stream(f"in{i}", "a") for i in range(3)), stream("both", "a"), stream("out", "a"),
                           *writers, reader)
    options = RunOptions.from_env({})
    flow = build_flow(pipeline, compile_plans(pipeline, options), options)
    ids = [step.step_id.split(".", 1)[1] for step in flow.substeps]
    assert ids.count("both_written") == 1 and ids.index("both_written") < ids.index("r")


def test_a_cycle_of_queries_is_refused(tmp_path: Path) -> None:
    pipeline = pipeline_of(
        tmp_path, stream("one", "v"), stream("two", "v"),
        processor("forth", "INSERT INTO [[STREAM:two]] SELECT v FROM [[STREAM:one]]"),
        processor("back", "INSERT INTO [[STREAM:one]] SELECT v FROM [[STREAM:two]] WHERE v > 1"))
    with pytest.raises(ConfigError, match=r"the queries form a cycle through their Streams \(forth -> back -> forth\)"):
        compile_plans(pipeline, RunOptions.from_env({}))
    assert set(compile_plans(pipeline, RunOptions.from_env({"IOT_PROCESSORS": "back"}))) == {"back"}  # apart: fine


def test_kafka_only_metadata_of_a_handed_over_stream_is_refused_unless_run_apart(tmp_path: Path) -> None:
    stamped = "\n        - name: at\n          type: long_timestamp-millis\n          metadata:\n            from: timestamp\n" \
              "          watermark: \"`at` - INTERVAL '1' SECOND\""
    pipeline = pipeline_of(
        tmp_path, stream("raw", "v"), stream("mid", "v", extra=stamped), stream("counts", "n"),
        processor("copy", "INSERT INTO [[STREAM:mid]] SELECT v FROM [[STREAM:raw]]"),
        processor("count", "INSERT INTO [[STREAM:counts]] SELECT COUNT(*) AS n FROM TABLE(TUMBLE(TABLE [[STREAM:mid]],"
                           " DESCRIPTOR(at), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end"))
    with pytest.raises(ConfigError, match="Processor count: column 'at' of Stream 'mid' is the Kafka record timestamp, but copy"):
        compile_plans(pipeline, RunOptions.from_env({}))
    assert set(compile_plans(pipeline, RunOptions.from_env({"IOT_PROCESSORS": "count"}))) == {"count"}


class Recorder:
    """A handler that keeps what it was given."""

    def __init__(self, state: object = None):
        self.calls: list[tuple[list, bool]] = []
        self.state = state

    def handle(self, batch, end_of_input: bool, caught_up: bool):
        self.calls.append((batch.records(), end_of_input))
        return [WindowedOutput(PartitionBatch(("mid", -1), (), len(batch), 0, 0, None, None, {}), [])] if len(batch) else []

    def snapshot(self):
        return ("handler", len(self.calls))


def result(n: int) -> QueryResult:
    return QueryResult(KafkaOut("mid", b"k%d" % n, orjson.dumps({"n": n}), [("h", b"1")]), None, ("row", n))


def test_the_handover_counts_offsets_across_a_restart_and_ends_the_input_at_eof() -> None:
    logic = HandoverLogic(Recorder(), "mid", 0, 0.2)
    (items,), _ = logic.on_batch([result(0), result(1)])
    assert [r.offset for r in logic.handler.calls[0][0]] == [0, 1]
    assert items[0].batch.record_at(1).value == b'{"n":1}'  # carried, for the late output
    offset, handler_state = logic.snapshot()
    again = HandoverLogic(Recorder(handler_state), "mid", offset, 0.2)
    again.on_batch([result(2)])
    assert [(r.partition, r.offset, r.key, r.headers) for r in again.handler.calls[0][0]] == [(-1, 2, b"k2", [("h", b"1")])]
    again.on_notify()
    again.on_eof()
    assert [(records, end) for records, end in again.handler.calls[1:]] == [([], False), ([], True)]


def test_a_late_handed_over_record_is_written_from_itself() -> None:
    logic = HandoverLogic(Recorder(), "mid", 5, 0.2)
    (items,), _ = logic.on_batch([result(9)])
    carried = items[0].batch.record_at(5)
    late = late_of_handed_over(LateRecord("mid", -1, 5, 0, 60_000, 61_000, carried), "mid-late")
    headers = dict(late.headers)
    assert (late.topic, late.key, late.value, headers["h"]) == ("mid-late", b"k9", b'{"n":9}', b"1")
    assert headers["x-late-window-end"] == b"1970-01-01 00:01:00" and headers["x-source-offset"] == b"5"
