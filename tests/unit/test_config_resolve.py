"""Resources -> Pipeline: the seed's values, both forms equal, and each rule and its errors."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from textwrap import dedent, indent

import fastavro
import pytest

from config import ConfigError, load_pipeline
from config.pipeline import LOCAL_KAFKA, LOCAL_RABBITMQ, Pipeline, UdfTuning
from tests.support.seed_schema import SEED_SCHEMA

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
SEED = CONFIG_DIR / "iot-monitoring.yaml"
REPOSITORY_FORM = CONFIG_DIR / "streaming-pipeline.yaml"
HEADER = "apiVersion: streaming.tanzu.vmware.com/v1alpha1\n"
NO_ENV: dict[str, str] = {}


def doc(body: str) -> str:
    return HEADER + dedent(body)


def stream(name: str, *, protocol: str = "kafka", modes: str = "[read, write]", context: str = "", extra: str = "") -> str:
    text = f"kind: Stream\nmetadata:\n  name: {name}\nspec:\n  protocol: {protocol}\n  streamMode: {modes}\n"
    text += extra  # spec-level lines, indented by two spaces
    if context:
        text += "  dataSchemaContext:\n" + indent(dedent(context), "    ")
    return HEADER + text


EVENTS_SCHEMA = """\
    schema:
      namespace: test
      name: Event
      fields:
        - name: code
          type: string
        - name: at
          type: long_timestamp-millis
          watermark: "`at` - INTERVAL '2' SECONDS"
"""


def fsql(query: str, name: str = "q", attributes: str = "") -> str:
    text = f'kind: Processor\nmetadata: {{name: {name}}}\nspec:\n  type: FSQL\n  inlineQuery:\n    - "{query}"\n'
    if attributes:
        text += "  attributes:\n" + indent(dedent(attributes), "    ")
    return HEADER + text


COUNT_QUERY = "INSERT INTO [[STREAM:counts]] SELECT code, COUNT(*) AS n FROM [[STREAM:events]] GROUP BY code"


def write(tmp_path: Path, *documents: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text("---\n".join(documents))
    return path


def resolve_docs(tmp_path: Path, *documents: str, env: dict[str, str] | None = None) -> Pipeline:
    return load_pipeline(write(tmp_path, *documents), env=NO_ENV if env is None else env)


def problems(tmp_path: Path, *documents: str) -> list:
    with pytest.raises(ConfigError) as caught:
        resolve_docs(tmp_path, *documents)
    return caught.value.problems


def minimal(context: str = EVENTS_SCHEMA, extra: str = "", counts_modes: str = "[read, write]") -> list[str]:
    return [
        stream("events", modes="[read]", context=context, extra=extra),
        stream("counts", modes=counts_modes),
        fsql(COUNT_QUERY),
    ]


# --- the seed ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed() -> Pipeline:
    return load_pipeline(SEED, env=NO_ENV)


def test_seed_topics_are_the_spec_names(seed):
    assert {name: s.topic for name, s in seed.streams.items()} == {
        "iot-monitoring-stream": "iot-monitoring",
        "error-count-stream": "error-count",
        "udf-output-error-count-stream": "udf-output-error-count",
    }
    assert seed.stream("udf-output-error-count-stream").protocol == "rabbitmq"


def test_seed_input_is_avro_confluent_with_a_three_second_watermark_on_ts(seed):
    source = seed.stream("iot-monitoring-stream")
    assert source.value_format == "avro-confluent"
    assert source.time_attribute.column == "ts"
    assert source.time_attribute.watermark_delay_ms == 3 * 1000
    assert source.time_attribute.source == "field"
    assert source.startup_mode == "earliest-offset"
    assert source.modes == frozenset({"read"})
    ts = source.field_named("ts")
    assert (ts.type, ts.logical_type) == ("long", "timestamp-millis")


def test_seed_output_is_keyed_json_read_from_earliest(seed):
    counts = seed.stream("error-count-stream")
    assert counts.value_format == "json"
    assert counts.key_fields == ("error_code",)
    assert counts.startup_mode == "earliest-offset"
    assert dict(counts.kafka_properties) == {"allow.auto.create.topics": "true"}
    assert counts.options["value.format"] == "json"  # ddl. prefix removed
    assert counts.writable and counts.readable


def test_seed_avro_schema_decodes_a_record_written_with_the_seed_field_order(seed):
    """The record schema must read what the generator writes (its own field order)."""
    writer = SEED_SCHEMA  # the seed document's schema, in its own field order
    event = {"error_code": "C009_OUT_OF_RANGE", "ts": 1645020042399, "type": "ERROR",
             "application": "Hatity", "version": "1.16.4 ", "description": "d"}
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(writer), event)
    reader = fastavro.parse_schema(json.loads(seed.stream("iot-monitoring-stream").avro_schema_json))
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, fastavro.parse_schema(writer), reader, return_record_name=False)
    assert decoded["error_code"] == "C009_OUT_OF_RANGE"
    assert decoded["ts"].timestamp() * 1000 == 1645020042399
    assert json.loads(seed.stream("iot-monitoring-stream").avro_schema_json)["name"] == "MonitoringStream"


def test_seed_query_has_placeholders_replaced_by_quoted_stream_names(seed):
    (query,) = seed.query_processors
    assert "[[STREAM:" in query.raw_query
    assert "[[" not in query.query
    assert "INSERT INTO `error-count-stream`" in query.query
    assert "TABLE `iot-monitoring-stream`" in query.query


def test_seed_udf_stage(seed):
    (udf,) = seed.udf_processors
    assert udf.inputs == ("error-count-stream",)
    assert udf.outputs == ("udf-output-error-count-stream",)
    assert udf.udf.container == "iot-monitoring-error-code-udf"
    assert udf.udf.address == "localhost:55554"
    assert udf.tuning == UdfTuning()


def normalised_sql(text: str) -> str:
    return " ".join(text.split())


def equivalent(a: Pipeline, b: Pipeline) -> bool:
    """Equal as pipelines: same streams, same queries (whitespace aside), same UDF stages
    (names aside, since one form names one Processor and the other two)."""

    def udfs(p: Pipeline) -> list:
        return [(u.inputs, u.outputs, u.udf, u.tuning) for u in p.udf_processors]

    return (
        dict(a.streams) == dict(b.streams)
        and [normalised_sql(q.query) for q in a.query_processors] == [normalised_sql(q.query) for q in b.query_processors]
        and udfs(a) == udfs(b)
        and a.settings == b.settings
    )


def test_both_forms_resolve_to_equal_pipelines(seed):
    repository = load_pipeline(REPOSITORY_FORM, env=NO_ENV)
    assert equivalent(seed, repository)
    assert repository.query_processors[0].attributes["debugExplain"] == "2"


def test_equivalence_notices_a_difference(seed, tmp_path):
    changed = REPOSITORY_FORM.read_text().replace("INTERVAL '3' SECONDS", "INTERVAL '4' SECONDS")
    path = tmp_path / "changed.yaml"
    path.write_text(changed)
    assert not equivalent(seed, load_pipeline(path, env=NO_ENV))


# --- brokers -------------------------------------------------------------------------


def test_brokers_default_to_the_local_stack(seed):
    assert seed.stream("iot-monitoring-stream").servers == LOCAL_KAFKA
    assert seed.stream("udf-output-error-count-stream").servers == LOCAL_RABBITMQ


def test_brokers_from_the_environment():
    env = {"KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092", "RABBITMQ_URL": "amqp://u:p@rabbit:5672/%2F"}
    pipeline = load_pipeline(SEED, env=env)
    assert pipeline.stream("error-count-stream").servers == "kafka-1:9092,kafka-2:9092"
    assert pipeline.stream("udf-output-error-count-stream").servers == "amqp://u:p@rabbit:5672/%2F"


def test_cluster_stream_server_url_wins_over_the_environment(tmp_path):
    cluster = doc(
        """\
        kind: ClusterStream
        metadata: {name: main-kafka}
        spec:
          storage:
            server: {url: "kafka://broker.svc:9092", protocol: kafka}
        """
    )
    docs = minimal(extra="  storage: {clusterStream: main-kafka}\n")
    pipeline = resolve_docs(tmp_path, cluster, *docs, env={"KAFKA_BOOTSTRAP_SERVERS": "env:9092"})
    assert pipeline.stream("events").servers == "broker.svc:9092"
    assert pipeline.stream("counts").servers == "env:9092"  # names no ClusterStream


# --- schemas and time ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "expected_ms"),
    [
        ("'3' SECONDS", 3_000),
        ("'3' SECOND", 3_000),
        ("'250' MILLISECONDS", 250),
        ("'1' MILLISECOND", 1),
        ("'2' MINUTE", 2 * 60_000),
        ("'2' minutes", 2 * 60_000),
        ("'1' HOUR", 60 * 60_000),
    ],
)
def test_watermark_interval_units(tmp_path, interval, expected_ms):
    context = EVENTS_SCHEMA.replace("'2' SECONDS", interval)
    pipeline = resolve_docs(tmp_path, *minimal(context))
    assert pipeline.stream("events").time_attribute.watermark_delay_ms == expected_ms


def test_malformed_watermark_expression(tmp_path):
    context = EVENTS_SCHEMA.replace("`at` - INTERVAL '2' SECONDS", "`at` - 2 SECONDS")
    (problem,) = problems(tmp_path, *minimal(context))
    assert problem.resource == "Stream/events"
    assert problem.field == "spec.dataSchemaContext.schema.fields.1.watermark"
    assert "malformed watermark expression '`at` - 2 SECONDS'" in problem.message


def test_watermark_unit_that_is_not_a_time_unit(tmp_path):
    context = EVENTS_SCHEMA.replace("SECONDS", "FORTNIGHTS")
    (problem,) = problems(tmp_path, *minimal(context))
    assert "unknown interval unit 'FORTNIGHTS'" in problem.message


def test_event_time_must_be_a_timestamp(tmp_path):
    context = EVENTS_SCHEMA.replace("long_timestamp-millis", "string")
    (problem,) = problems(tmp_path, *minimal(context))
    assert "event-time attribute 'at' must be a timestamp" in problem.message


def test_optional_and_metadata_fields(tmp_path):
    context = """\
        schema:
          namespace: test
          name: Event
          fields:
            - name: code
              type: string
              optional: true
            - name: at
              type: long_timestamp-millis
              metadata: {from: timestamp}
              watermark: "`at` - INTERVAL '1' SECOND"
        """
    pipeline = resolve_docs(tmp_path, *minimal(context))
    events = pipeline.stream("events")
    assert events.field_named("code").optional
    assert events.time_attribute.source == "kafka-timestamp"
    record = json.loads(events.avro_schema_json)
    assert [f["name"] for f in record["fields"]] == ["code"]  # the metadata column is not in the record
    assert record["fields"][0]["type"] == ["null", "string"]


def test_inline_avro_schema_with_time_attributes(tmp_path):
    context = """\
        inline:
          type: avro
          schema: |
            {"type": "record", "name": "Event", "namespace": "test",
             "fields": [{"name": "code", "type": ["null", "string"]},
                        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
        timeAttributes:
          - name: at
            watermark: "`at` - INTERVAL '5' SECONDS"
        """
    events = resolve_docs(tmp_path, *minimal(context)).stream("events")
    assert [(f.name, f.type, f.logical_type, f.optional) for f in events.fields] == [
        ("code", "string", None, True),
        ("at", "long", "timestamp-millis", False),
    ]
    assert events.time_attribute.watermark_delay_ms == 5_000
    assert (events.schema_namespace, events.schema_name) == ("test", "Event")


def test_inline_sql_schema(tmp_path):
    context = """\
        inline:
          type: sql
          schema: |
            CREATE TABLE Event (
              `code` STRING NOT NULL,
              `n` BIGINT,
              `at` TIMESTAMP(3) NOT NULL
            )
        timeAttributes:
          - name: at
            watermark: "`at` - INTERVAL '1' SECOND"
        """
    events = resolve_docs(tmp_path, *minimal(context)).stream("events")
    assert [(f.name, f.type, f.logical_type, f.optional) for f in events.fields] == [
        ("code", "string", None, False),
        ("n", "long", None, True),
        ("at", "long", "timestamp-millis", False),
    ]
    assert events.schema_name == "Event"


def test_inline_avro_that_is_not_a_record(tmp_path):
    context = 'inline: {type: avro, schema: "\\"string\\""}\n'
    (problem,) = problems(tmp_path, *minimal(context))
    assert problem.field == "spec.dataSchemaContext.inline.schema"
    assert "must be a record" in problem.message


def test_proctime_type(tmp_path):
    context = EVENTS_SCHEMA + "        - name: seen\n          type: proctime\n"
    events = resolve_docs(tmp_path, *minimal(context)).stream("events")
    seen = events.field_named("seen")
    assert seen.proctime and not seen.in_record
    assert "seen" not in events.avro_schema_json


# --- options ---------------------------------------------------------------------------


def with_options(options: str) -> str:
    return dedent(EVENTS_SCHEMA) + "options:\n" + indent(dedent(options), "  ")


def test_explicit_formats_and_registry(tmp_path):
    events = resolve_docs(tmp_path, *minimal(with_options("ddl.value.format: avro\n"))).stream("events")
    assert events.value_format == "avro"
    registry = with_options("ddl.value.avro-confluent.url: http://registry:8081\n")
    events = resolve_docs(tmp_path, *minimal(registry)).stream("events")
    assert (events.value_format, events.schema_registry_url) == ("avro-confluent", "http://registry:8081")


def test_rabbitmq_stream_with_schema_defaults_to_plain_avro(tmp_path):
    docs = [stream("events", protocol="rabbitmq", modes="[read]", context=EVENTS_SCHEMA), *minimal()[1:]]
    assert resolve_docs(tmp_path, *docs).stream("events").value_format == "avro"


def test_unsupported_value_format(tmp_path):
    (problem,) = problems(tmp_path, *minimal(with_options("ddl.value.format: csv\n")))
    assert problem.field == "spec.dataSchemaContext.options.ddl.value.format"
    assert "unsupported value format 'csv'" in problem.message


def test_key_fields_option_overrides_keys(tmp_path):
    extra = "  keys: [code]\n"
    pipeline = resolve_docs(tmp_path, *minimal(EVENTS_SCHEMA, extra))
    assert pipeline.stream("events").key_fields == ("code",)
    options = with_options("ddl.key.fields: 'code;at'\n")
    assert resolve_docs(tmp_path, *minimal(options, extra)).stream("events").key_fields == ("code", "at")


def test_key_field_that_is_not_in_the_schema(tmp_path):
    (problem,) = problems(tmp_path, *minimal(with_options("ddl.key.fields: code, nope\n")))
    assert "key field 'nope' is not a field of the schema" in problem.message


def test_startup_modes(tmp_path):
    default = resolve_docs(tmp_path, *minimal()).stream("events")
    assert (default.startup_mode, default.startup_timestamp_ms) == ("group-offsets", None)
    options = with_options("ddl.scan.startup.mode: timestamp\nddl.scan.startup.timestamp-millis: '1645020042399'\n")
    events = resolve_docs(tmp_path, *minimal(options)).stream("events")
    assert (events.startup_mode, events.startup_timestamp_ms) == ("timestamp", 1645020042399)


def test_timestamp_startup_without_a_timestamp(tmp_path):
    (problem,) = problems(tmp_path, *minimal(with_options("ddl.scan.startup.mode: timestamp\n")))
    assert "needs ddl.scan.startup.timestamp-millis" in problem.message


def test_unknown_startup_mode(tmp_path):
    (problem,) = problems(tmp_path, *minimal(with_options("ddl.scan.startup.mode: earliest\n")))
    assert "unsupported startup mode 'earliest'" in problem.message


def test_stream_mode_absent_means_read_and_write(tmp_path):
    text = stream("counts").replace("  streamMode: [read, write]\n", "")
    pipeline = resolve_docs(tmp_path, minimal()[0], text, minimal()[2])
    assert pipeline.stream("counts").modes == frozenset({"read", "write"})


# --- processors ------------------------------------------------------------------------


def test_unknown_stream_placeholder(tmp_path):
    query = COUNT_QUERY.replace("[[STREAM:events]]", "[[stream:evnets]]")
    docs = [*minimal()[:2], fsql(query)]
    (problem,) = problems(tmp_path, *docs)
    assert problem.resource == "Processor/q"
    assert problem.field == "spec.inlineQuery.0"
    assert problem.message == "unknown stream 'evnets' in [[stream:evnets]] (did you mean 'events'?)"


def test_placeholders_are_case_insensitive(tmp_path):
    query = COUNT_QUERY.replace("[[STREAM:events]]", "[[Stream:events]]")
    pipeline = resolve_docs(tmp_path, *minimal()[:2], fsql(query))
    assert "FROM `events`" in pipeline.query_processors[0].query


def test_query_output_stream_that_is_not_writable(tmp_path):
    (problem,) = problems(tmp_path, *minimal(counts_modes="[read]"))
    assert problem.field == "spec.inlineQuery.0"
    assert problem.message == "stream 'counts' cannot be written: its streamMode is [read], add 'write'"


def test_udf_output_stream_that_is_not_writable(tmp_path):
    srp = doc(
        """\
        kind: Processor
        metadata: {name: udf}
        spec:
          inputs: [{name: counts}]
          outputs: [{name: events}]
        """
    )
    (problem,) = problems(tmp_path, *minimal(), srp)
    assert (problem.resource, problem.field) == ("Processor/udf", "spec.outputs.0.name")
    assert "stream 'events' cannot be written" in problem.message


def test_srp_attributes(tmp_path):
    srp = doc(
        """\
        kind: Processor
        metadata: {name: udf}
        spec:
          type: SRP
          inputs: [{name: counts}]
          outputs: [{name: counts}]
          attributes: {srp.grpcPort: "50051", srp.udf.maxInFlight: "4", srp.udf.deadline: "30 s",
                       srp.udf.busyRetries: unlimited, srp.udf.orderedByKey: "false", input.batchSize: "500"}
          template: {spec: {containers: [{name: fn, image: "example/fn:1"}]}}
        """
    )
    (udf,) = resolve_docs(tmp_path, *minimal(), srp).udf_processors
    assert (udf.udf.port, udf.udf.image) == (50051, "example/fn:1")
    assert udf.tuning == UdfTuning(max_in_flight=4, deadline_ms=30_000, busy_retries=None, ordered_by_key=False)
    assert udf.batch_size == 500


def test_bad_srp_attributes(tmp_path):
    srp = doc(
        """\
        kind: Processor
        metadata: {name: udf}
        spec:
          inputs: [{name: counts}]
          outputs: [{name: counts}]
          attributes: {srp.grpcPort: "http", srp.udf.maxInFlight: "0", srp.udf.deadline: "soon",
                       srp.udf.busyRetries: "-1", srp.udf.orderedByKey: "maybe", input.batchSize: "lots"}
        """
    )
    found = {p.field: p.message for p in problems(tmp_path, *minimal(), srp)}
    assert "srp.grpcPort must be a port number" in found["spec.attributes.srp.grpcPort"]
    assert "positive whole number" in found["spec.attributes.srp.udf.maxInFlight"]
    assert "malformed duration" in found["spec.attributes.srp.udf.deadline"]
    assert "'unlimited'" in found["spec.attributes.srp.udf.busyRetries"]
    assert "true or false" in found["spec.attributes.srp.udf.orderedByKey"]
    assert "positive whole number" in found["spec.attributes.input.batchSize"]


def test_fsql_processor_without_a_query(tmp_path):
    text = doc("kind: Processor\nmetadata: {name: q}\nspec:\n  type: FSQL\n")
    (problem,) = problems(tmp_path, *minimal()[:2], text)
    assert "a FSQL Processor needs its SQL in spec.inlineQuery" in problem.message


# --- engine settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "idle_ms", "skew_ms", "quiet"),
    [
        ("table.exec.source.idle-timeout: '5 min'\n", 5 * 60_000, 600_000, True),
        ("idle-timeout: 5min\nmax-future-skew: 'off'\n", 5 * 60_000, None, True),
        ("idle-timeout: '5000 ms'\nquiet-advance: 'false'\n", 5_000, 600_000, False),
        ("idle-timeout: '7 s'\nmax-future-skew: '10 min'\n", 7_000, 10 * 60_000, True),
    ],
)
def test_engine_settings_from_processor_attributes(tmp_path, attributes, idle_ms, skew_ms, quiet):
    docs = [*minimal()[:2], fsql(COUNT_QUERY, attributes=attributes)]
    settings = resolve_docs(tmp_path, *docs).settings
    assert (settings.idle_timeout_ms, settings.max_future_skew_ms, settings.quiet_advance) == (idle_ms, skew_ms, quiet)


@pytest.mark.parametrize(
    ("options", "drift_ms"),
    [
        ("", 60_000),
        ("ddl.scan.watermark.alignment.max-drift: '2 min'\n", 120_000),
        ("scan.watermark.alignment.max-drift: '30 s'\n", 30_000),
        ("watermark-alignment-max-drift: 'off'\n", None),
    ],
)
def test_watermark_alignment_drift_from_stream_options(tmp_path, options, drift_ms):
    settings = resolve_docs(tmp_path, *(minimal(with_options(options)) if options else minimal())).settings
    assert settings.max_watermark_drift_ms == drift_ms


def test_engine_setting_from_stream_options(tmp_path):
    settings = resolve_docs(tmp_path, *minimal(with_options("idle-timeout: '2 s'\n"))).settings
    assert settings.idle_timeout_ms == 2_000


def test_conflicting_and_malformed_engine_settings(tmp_path):
    docs = [
        stream("events", modes="[read]", context=with_options("idle-timeout: '2 s'\n")),
        stream("counts"),
        fsql(COUNT_QUERY, attributes="idle-timeout: '3 s'\nquiet-advance: maybe\n"),
    ]
    messages = [p.message for p in problems(tmp_path, *docs)]
    assert any(re.search(r"'3 s' conflicts with '2 s' set in Stream/events", m) for m in messages)
    assert any("expected true or false, got 'maybe'" in m for m in messages)


def test_resolution_collects_problems_from_several_resources(tmp_path):
    bad_stream = stream("events", modes="[read]", context=EVENTS_SCHEMA.replace("INTERVAL", "INTERVALL"))
    bad_query = fsql(COUNT_QUERY.replace("[[STREAM:counts]]", "[[STREAM:nowhere]]"))
    found = {p.resource for p in problems(tmp_path, bad_stream, stream("counts"), bad_query)}
    assert found == {"Stream/events", "Processor/q"}


def test_cluster_stream_of_another_protocol(tmp_path):
    cluster = doc(
        """\
        kind: ClusterStream
        metadata: {name: rabbit}
        spec:
          storage:
            server: {url: "rabbit:5672", protocol: rabbitmq}
        """
    )
    docs = minimal(extra="  storage: {clusterStream: rabbit}\n")
    (problem,) = problems(tmp_path, cluster, *docs)
    assert (problem.resource, problem.field) == ("Stream/events", "spec.storage.clusterStream")
    assert "serves protocol 'rabbitmq', but the stream uses 'kafka'" in problem.message


def test_schema_registry_uri_and_inline_avro_confluent(tmp_path):
    context = dedent(EVENTS_SCHEMA) + "schemaRegistryUri: http://registry:8081\n"
    events = resolve_docs(tmp_path, *minimal(context)).stream("events")
    assert (events.value_format, events.schema_registry_url) == ("avro-confluent", "http://registry:8081")
    inline = 'inline:\n  type: avro-confluent\n  schema: \'{"type":"record","name":"E","fields":[{"name":"code","type":"string"}]}\'\n'
    docs = [stream("events", protocol="rabbitmq", modes="[read]", context=inline), *minimal()[1:]]
    assert resolve_docs(tmp_path, *docs).stream("events").value_format == "avro-confluent"


def test_more_than_one_schema_form(tmp_path):
    (problem,) = problems(tmp_path, *minimal(dedent(EVENTS_SCHEMA) + "schemaless: application/octet-stream\n"))
    assert problem.field == "spec.dataSchemaContext"
    assert "give only one of schema, inline or schemaless (found schema, schemaless)" == problem.message


def test_twa_is_the_earlier_name_of_srp_and_its_window_is_refused(tmp_path):
    twa = doc(
        """\
        kind: Processor
        metadata: {name: udf}
        spec:
          type: TWA
          inputs: [{name: counts}]
          outputs: [{name: counts}]
        """
    )
    (udf,) = resolve_docs(tmp_path, *minimal(), twa).udf_processors
    assert (udf.inputs, udf.outputs, udf.udf) == (("counts",), ("counts",), None)
    windowed = twa.replace("outputs: [{name: counts}]", "outputs: [{name: counts}]\n  attributes: {srp.window: 1m}")
    (problem,) = problems(tmp_path, *minimal(), windowed)
    assert problem.field == "spec.attributes.srp.window"
    assert "not supported" in problem.message
