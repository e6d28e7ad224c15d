"""YAML -> resource models: both Processor forms load, and every mistake is reported where it is."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent, indent

import pytest
import yaml

from config.errors import ConfigError
from config.loader import load_resources, parse_resources
from config.resources import ClusterStream, Processor, QueryInputs, Stream

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
HEADER = "apiVersion: streaming.tanzu.vmware.com/v1alpha1\n"


def problems_of(text: str, file: str = "x.yaml") -> list:
    with pytest.raises(ConfigError) as caught:
        parse_resources(dedent(text), file)
    return caught.value.problems


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing `needle`, computed from the fixture itself."""
    return next(i for i, line in enumerate(dedent(text).splitlines(), 1) if needle in line)


GOOD_STREAM = HEADER + dedent(
    """\
    kind: Stream
    metadata:
      name: in-stream
    spec:
      name: in
      protocol: kafka
    """
)


# --- both shipped forms ----------------------------------------------------------


def test_seed_form_loads_three_streams_and_a_query_processor_with_sources():
    loaded = load_resources(CONFIG_DIR / "iot-monitoring.yaml")

    streams = [item.resource for item in loaded if isinstance(item.resource, Stream)]
    processors = [item.resource for item in loaded if isinstance(item.resource, Processor)]
    assert [s.metadata.name for s in streams] == [
        "iot-monitoring-stream",
        "error-count-stream",
        "udf-output-error-count-stream",
    ]
    assert [s.spec.name for s in streams] == ["iot-monitoring", "error-count", "udf-output-error-count"]
    (processor,) = processors
    assert isinstance(processor.spec.inputs, QueryInputs)
    assert len(processor.spec.inputs.query) == 1
    assert [ref.name for ref in processor.spec.inputs.sources] == ["error-count-stream"]
    assert [ref.name for ref in processor.spec.outputs] == ["udf-output-error-count-stream"]
    assert processor.spec.containers[0].name == "iot-monitoring-error-code-udf"


def test_repository_form_loads_fsql_and_srp_processors():
    loaded = load_resources(CONFIG_DIR / "streaming-pipeline.yaml")

    processors = {item.name: item.resource for item in loaded if isinstance(item.resource, Processor)}
    fsql, srp = processors["iot-monitoring-sql-aggregation"], processors["iot-monitoring-udf"]
    assert fsql.spec.type == "FSQL"
    assert fsql.spec.attributes == {"debugQuery": "SELECT * FROM ErrorCount", "debugExplain": "2"}
    assert "[[STREAM:error-count-stream]]" in fsql.spec.inline_query[0]
    assert srp.spec.type == "SRP"
    assert [ref.name for ref in srp.spec.inputs] == ["error-count-stream"]


def test_processor_type_defaults_to_srp_and_scalar_attributes_become_strings():
    text = HEADER + dedent(
        """\
        kind: Processor
        metadata: {name: p}
        spec:
          inputs: [{name: a}]
          outputs: [{name: b}]
          attributes:
            srp.grpcPort: 50051
            srp.skipUdf: true
        """
    )
    (item,) = parse_resources(text, "p.yaml")
    assert item.resource.spec.type == "SRP"
    assert item.resource.spec.attributes == {"srp.grpcPort": "50051", "srp.skipUdf": "true"}


def test_cluster_stream_loads_with_server_url():
    text = HEADER + dedent(
        """\
        kind: ClusterStream
        metadata: {name: kafka-cluster}
        spec:
          streamModes: [read, write]
          storage:
            server: {url: "broker:9092", protocol: kafka}
            reclaimPolicy: Retain
        """
    )
    (item,) = parse_resources(text, "c.yaml")
    assert isinstance(item.resource, ClusterStream)
    assert item.resource.spec.storage.first_server.url == "broker:9092"


def test_kubernetes_metadata_and_container_extras_are_tolerated():
    text = HEADER + dedent(
        """\
        kind: Processor
        metadata:
          name: p
          namespace: streaming-runtime
          uid: 1234
        spec:
          inputs: [{name: a}]
          outputs: [{name: b}]
          template:
            spec:
              containers:
                - name: udf
                  image: example/udf:1
                  ports: [{containerPort: 55554}]
        """
    )
    (item,) = parse_resources(text, "p.yaml")
    assert item.resource.spec.containers[0].image == "example/udf:1"


# --- one test per kind of mistake ------------------------------------------------------


def test_yaml_syntax_error_names_the_line():
    text = GOOD_STREAM + "---\n" + HEADER + "kind: Stream\nmetadata:\n  name: [unclosed\nspec: {}\n"
    (problem,) = problems_of(text, "broken.yaml")
    bad_line = line_of(text, "spec: {}")  # where the parser notices the unclosed flow sequence
    assert problem.file == "broken.yaml"
    assert problem.document == 2
    assert problem.line == bad_line
    assert "YAML syntax error" in problem.message
    assert str(problem).startswith(f"broken.yaml, document 2 (line {bad_line}): YAML syntax error")


def test_unknown_kind_is_named_with_a_suggestion():
    text = GOOD_STREAM + "---\n" + HEADER + "kind: Strem\nmetadata: {name: typo}\nspec: {}\n"
    (problem,) = problems_of(text)
    assert problem.document == 2
    assert problem.line == line_of(text, "kind: Strem")
    assert problem.resource == "Strem/typo"
    assert problem.field == "kind"
    assert "unknown kind 'Strem'" in problem.message and "did you mean 'Stream'?" in problem.message


def test_missing_required_field():
    text = HEADER + "kind: Stream\nmetadata: {name: s}\nspec:\n  name: s\n"
    (problem,) = problems_of(text)
    assert (problem.resource, problem.field, problem.message) == ("Stream/s", "spec.protocol", "required field is missing")
    assert str(problem) == "x.yaml, document 1 (line 5), Stream/s: spec.protocol: required field is missing"


def test_wrong_type_names_the_value():
    text = GOOD_STREAM + "  partitionCount: three\n"
    (problem,) = problems_of(text)
    assert problem.field == "spec.partitionCount"
    assert problem.line == line_of(text, "partitionCount")
    assert "valid integer" in problem.message and "'three'" in problem.message


def test_a_string_where_a_list_is_expected_is_a_wrong_type():
    text = GOOD_STREAM + "  streamMode: read\n"
    (problem,) = problems_of(text)
    assert problem.field == "spec.streamMode"
    assert "valid list" in problem.message


def test_protocol_outside_the_vocabulary_is_rejected():
    text = GOOD_STREAM.replace("protocol: kafka", "protocol: kafak")
    (problem,) = problems_of(text)
    assert problem.field == "spec.protocol"
    assert "'kafka' or 'rabbitmq'" in problem.message and "'kafak'" in problem.message


def test_misspelt_key_is_an_unknown_field_with_a_suggestion():
    text = GOOD_STREAM + "  streamMdoe: [read]\n"
    (problem,) = problems_of(text)
    assert problem.field == "spec.streamMdoe"
    assert problem.message == "unknown field 'streamMdoe' (did you mean 'streamMode'?)"


def test_unknown_schema_type():
    text = GOOD_STREAM + indent(
        dedent(
            """\
            dataSchemaContext:
              schema:
                namespace: n
                name: R
                fields:
                  - name: a
                    type: strnig
            """
        ),
        "  ",
    )
    (problem,) = problems_of(text)
    assert problem.field == "spec.dataSchemaContext.schema.fields.0.type"
    assert problem.line == line_of(text, "type: strnig")
    assert "unknown schema type 'strnig'" in problem.message


def test_unknown_inline_schema_type():
    text = GOOD_STREAM + "  dataSchemaContext:\n    inline: {type: protobuf, schema: 'x'}\n"
    (problem,) = problems_of(text)
    assert problem.field == "spec.dataSchemaContext.inline.type"
    assert "'avro', 'avro-confluent' or 'sql'" in problem.message


def test_duplicate_resource_names_point_at_the_first_definition():
    text = GOOD_STREAM + "---\n" + GOOD_STREAM
    (problem,) = problems_of(text)
    assert problem.document == 2
    assert problem.resource == "Stream/in-stream"
    assert problem.message == "duplicate Stream name 'in-stream': already defined in document 1 (line 1)"


def test_same_name_in_different_kinds_is_allowed():
    cluster = HEADER + "kind: ClusterStream\nmetadata: {name: in-stream}\nspec: {}\n"
    loaded = parse_resources(GOOD_STREAM + "---\n" + cluster, "x.yaml")
    assert [item.kind for item in loaded] == ["Stream", "ClusterStream"]


def test_duplicate_yaml_keys_are_reported():
    text = GOOD_STREAM + "  protocol: rabbitmq\n"
    (problem,) = problems_of(text)
    assert problem.field == "spec.protocol"
    assert problem.line == line_of(text, "protocol: rabbitmq")
    assert "duplicate key 'protocol'" in problem.message


def test_wrong_api_version():
    text = GOOD_STREAM.replace("v1alpha1", "v1")
    (problem,) = problems_of(text)
    assert problem.field == "apiVersion"
    assert "streaming.tanzu.vmware.com/v1alpha1" in problem.message


def test_a_document_that_is_not_a_mapping():
    (problem,) = problems_of("- just\n- a list\n")
    assert "must be a mapping" in problem.message and "a list" in problem.message


def test_processor_inputs_of_neither_form():
    text = HEADER + "kind: Processor\nmetadata: {name: p}\nspec:\n  inputs: error-count-stream\n"
    (problem,) = problems_of(text)
    assert problem.field == "spec.inputs"
    assert "list of {name: <stream>} or a mapping with query/sources" in problem.message


def test_every_problem_in_every_document_is_collected():
    bad_stream = GOOD_STREAM.replace("protocol: kafka", "protocol: 7") + "  keys: error_code\n"
    bad_processor = HEADER + "kind: Processor\nmetadata: {name: p}\nspec:\n  outputs: [{nam: b}]\n"
    problems = problems_of(bad_stream + "---\n" + bad_processor)
    found = {(p.document, p.field) for p in problems}
    assert {(1, "spec.protocol"), (1, "spec.keys"), (2, "spec.outputs.0.name"), (2, "spec.outputs.0.nam")} <= found
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_empty_file_and_unreadable_file(tmp_path):
    (problem,) = problems_of("# nothing here\n")
    assert "no resources found" in problem.message
    with pytest.raises(ConfigError) as caught:
        load_resources(tmp_path / "missing.yaml")
    assert str(caught.value).startswith(str(tmp_path / "missing.yaml") + ": cannot read the file")


def test_error_string_has_one_line_per_problem():
    text = GOOD_STREAM + "  partitionCount: x\n  streamMode: read\n"
    with pytest.raises(ConfigError) as caught:
        parse_resources(text, "x.yaml")
    lines = str(caught.value).splitlines()
    assert len(lines) == len(caught.value.problems) == 2
    assert all(line.startswith("x.yaml, document 1 (line ") for line in lines)


# --- which parser reads the file ---------------------------------------------------------


class RefusedLoader:
    def __init__(self, text: str) -> None:
        raise AssertionError("the pure-Python parser read a file that libyaml could read")


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML is built without libyaml")
def test_libyaml_reads_a_good_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml, "SafeLoader", RefusedLoader)
    (item,) = parse_resources(GOOD_STREAM, "x.yaml")
    assert item.name == "in-stream"
    assert item.origin.line == 1 and item.origin.line_of(["spec", "protocol"]) == 7


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: *x\n", "YAML syntax error: found undefined alias 'x' (column 4)", 1),
        ('a: "\\q"\n', ("YAML syntax error: while scanning a double-quoted scalar, "
                        "found unknown escape character 'q' (column 6)"), 1),
        ("a:\n\t- b\n", ("YAML syntax error: while scanning for the next token, "
                        "found character '\\t' that cannot start any token (column 1)"), 2),
    ],
)
def test_a_syntax_error_names_what_is_wrong(text: str, message: str, line: int) -> None:
    (problem,) = problems_of(text)
    assert (problem.message, problem.document, problem.line) == (message, 1, line)


def test_a_control_character_is_a_problem_not_a_traceback() -> None:
    (problem,) = problems_of(GOOD_STREAM + "  name2: \x07\n")
    assert problem.message.startswith("YAML error: unacceptable character #x0007")
