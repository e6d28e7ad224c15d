"""Every schema form a Stream may use, primary keys and upsert-kafka, the
debug and state-TTL attributes, and fetching a registry subject at start
(from a real HTTP server in a thread, shaped like a schema registry)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from textwrap import dedent, indent

import pytest

from config import ConfigError, load_pipeline
from config.pipeline import Pipeline
from config.resolve import with_registry_schemas
from connectors.schema_registry import SchemaFetchError, fetch_registry_schemas, fetch_subject_schema
from tests.support.registry import reply_json

HEADER = "apiVersion: streaming.tanzu.vmware.com/v1alpha1\n"
QUERY = "INSERT INTO [[STREAM:out]] SELECT code FROM [[STREAM:events]]"


def stream(name: str, context: str = "", spec: str = "") -> str:
    text = HEADER + f"kind: Stream\nmetadata:\n  name: {name}\nspec:\n  protocol: kafka\n" + spec
    if context:
        text += "  dataSchemaContext:\n" + indent(dedent(context), "    ")
    return text


def processor(query: str = QUERY, attributes: str = "") -> str:
    text = HEADER + f'kind: Processor\nmetadata: {{name: q}}\nspec:\n  type: FSQL\n  inlineQuery:\n    - "{query}"\n'
    if attributes:
        text += "  attributes:\n" + indent(dedent(attributes), "    ")
    return text


def resolve(tmp_path: Path, context: str, *, out: str = "", query: str = QUERY, attributes: str = "", spec: str = "") -> Pipeline:
    path = tmp_path / "pipeline.yaml"
    path.write_text("---\n".join([stream("events", context, spec), stream("out", out), processor(query, attributes)]))
    return load_pipeline(path, env={})


def problems(tmp_path: Path, context: str, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        resolve(tmp_path, context, **kwargs)
    return [f"{p.field}: {p.message}" for p in caught.value.problems]


# --- inline SQL -------------------------------------------------------------------------------

SQL_TABLE = """\
    inline:
      type: sql
      schema: |
        CREATE TABLE Readings (
          `code` STRING NOT NULL,
          `value` DOUBLE,
          `count` INT,
          `stamp` TIMESTAMP(3) METADATA FROM 'timestamp',
          `part` INT METADATA FROM 'partition' VIRTUAL,
          `offset` BIGINT METADATA VIRTUAL,
          `seen` AS PROCTIME(),
          WATERMARK FOR `stamp` AS `stamp` - INTERVAL '4' SECOND,
          PRIMARY KEY (`code`) NOT ENFORCED
        )
    options:
      ddl.connector: upsert-kafka
      ddl.value.format: json
"""


def test_inline_sql_with_metadata_watermark_and_primary_key(tmp_path):
    events = resolve(tmp_path, SQL_TABLE).stream("events")
    assert [(f.name, f.type, f.logical_type, f.optional, f.metadata_from, f.proctime) for f in events.fields] == [
        ("code", "string", None, False, None, False),
        ("value", "double", None, True, None, False),
        ("count", "int", None, True, None, False),
        ("stamp", "long", "timestamp-millis", True, "timestamp", False),
        ("part", "int", None, True, "partition", False),
        ("offset", "long", None, True, "offset", False),
        ("seen", "long", "timestamp-millis", False, None, True),
    ]
    assert (events.time_attribute.column, events.time_attribute.source, events.time_attribute.watermark_delay_ms) == (
        "stamp", "kafka-timestamp", 4_000)
    assert events.primary_key == ("code",) and events.upsert and events.key_fields == ("code",)
    assert [f["name"] for f in json.loads(events.avro_schema_json)["fields"]] == ["code", "value", "count"]


def test_inline_sql_primary_key_must_be_not_enforced(tmp_path):
    context = SQL_TABLE.replace(") NOT ENFORCED", ")")
    (problem,) = problems(tmp_path, context)
    assert problem.startswith("spec.dataSchemaContext.inline.schema: PRIMARY KEY must be declared NOT ENFORCED")


def test_inline_sql_refuses_what_it_cannot_represent(tmp_path):
    context = SQL_TABLE.replace("`seen` AS PROCTIME()", "`half` AS `value` / 2").replace("INT,", "DECIMAL(10, 2),", 1)
    found = problems(tmp_path, context)
    assert any("computed column" in p and "only AS PROCTIME() is" in p for p in found)
    assert any("SQL type DECIMAL(10, 2) is not supported" in p for p in found)


def test_inline_sql_syntax_error_names_its_line(tmp_path):
    context = SQL_TABLE.replace("WATERMARK FOR `stamp` AS", "WATERMARK `stamp` AS").replace("upsert-kafka", "kafka")
    (problem,) = problems(tmp_path, context)
    assert "inline SQL schema does not parse: line 9" in problem and "FOR <column> AS" in problem


# --- inline Avro, registry subjects, schemaless --------------------------------------------------


def test_inline_avro_as_yaml_text(tmp_path):
    context = """\
        inline:
          type: avro
          schema: |
            type: record
            name: Events
            fields:
            - name: code
              type: string
            - name: level
              type: ["null", int]
        timeAttributes:
          - name: arrived
        """
    events = resolve(tmp_path, context).stream("events")
    assert events.schema_name == "Events" and events.table_names == ("events", "Events")
    assert [(f.name, f.optional, f.proctime) for f in events.fields] == [("code", False, False), ("level", True, False), ("arrived", False, True)]


def test_a_registry_subject_is_recorded_not_fetched(tmp_path):
    context = """\
        inline:
          type: avro-confluent
          schema: https://user:secret@registry.test:8081/subjects/events-value/versions/7
        """
    events = resolve(tmp_path, context).stream("events")
    assert events.schema_pending and events.value_format == "avro-confluent"
    assert events.schema_registry_subject_url == "https://user:secret@registry.test:8081/subjects/events-value/versions/7"
    # the credentials leave the URL for the registry client's settings
    assert events.schema_registry_url == "https://registry.test:8081"
    assert events.schema_registry_settings["basic.auth.user.info"] == "user:secret"
    assert "secret" not in "\n".join(events.describe_lines())


def test_a_default_subject_is_the_topic_value_subject_of_the_registry(tmp_path):
    context = "inline: {type: avro-confluent, schema: default}\nschemaRegistryUri: http://registry.test:8081\n"
    events = resolve(tmp_path, context, spec="  name: events-topic\n").stream("events")
    assert events.schema_registry_subject_url == "http://registry.test:8081/subjects/events-topic-value/versions/latest"
    (problem,) = problems(tmp_path, "inline: {type: avro-confluent, schema: default}\n")
    assert "needs a schema registry" in problem
    (problem,) = problems(tmp_path, "inline: {type: avro-confluent, schema: 'http://registry.test:8081/schemas/3'}\n")
    assert "is not a schema registry subject version URL" in problem


def test_avro_confluent_with_the_schema_itself_inline(tmp_path):
    schema = json.dumps({"type": "record", "name": "E", "fields": [{"name": "code", "type": "string"}]})
    events = resolve(tmp_path, f"inline:\n  type: avro-confluent\n  schema: '{schema}'\n").stream("events")
    assert not events.schema_pending and [f.name for f in events.fields] == ["code"]


def test_schemaless_with_a_header_time_attribute(tmp_path):
    context = 'schemaless: "application/json"\ntimeAttributes:\n  - name: header.eventtime\n'
    events = resolve(tmp_path, context, spec="  keys: [user]\n", query="INSERT INTO [[STREAM:out]] SELECT proc FROM [[STREAM:events]]".replace("proc", "`header.eventtime`")).stream("events")
    attribute = events.time_attribute
    assert (attribute.column, attribute.source, attribute.header, attribute.watermark_delay_ms) == (
        "header.eventtime", "header", "eventtime", 0)
    assert events.value_format == "raw" and events.avro_schema_json is None


@pytest.mark.parametrize("context, source, header, delay", [
    ("timeAttributes:\n  - name: header.timestamp\n    watermark: \"`header.timestamp` - INTERVAL '3' SECOND\"\n",
     "kafka-timestamp", None, 3_000),
    ("metadataFields:\n  - name: ingest\n    type: long_timestamp-millis\n    metadata: {from: header.ingest-time}\n"
     "    watermark: \"`ingest` - INTERVAL '2' SECONDS\"\n", "header", "ingest-time", 2_000),
])
def test_event_time_from_kafka_headers(tmp_path, context, source, header, delay):
    schema = "schema:\n  namespace: t\n  name: E\n  fields:\n    - name: code\n      type: string\n"
    attribute = resolve(tmp_path, schema + context).stream("events").time_attribute
    assert (attribute.source, attribute.header, attribute.watermark_delay_ms) == (source, header, delay)


# --- primary keys and upsert-kafka -----------------------------------------------------------------

RECORD = "schema:\n  namespace: t\n  name: E\n  fields:\n    - name: code\n      type: string\n    - name: n\n      type: long\n"


@pytest.mark.parametrize("context, message", [
    (RECORD + "primaryKey: [code]\n", "spec.dataSchemaContext.primaryKey: a primary key needs ddl.connector: upsert-kafka"),
    (RECORD + "options:\n  ddl.connector: upsert-kafka\n", "an upsert-kafka stream needs a primary key"),
    (RECORD + "primaryKey: [code, nope]\noptions:\n  ddl.connector: upsert-kafka\n",
     "spec.dataSchemaContext.primaryKey.1: primary key column 'nope' is not a field of the schema"),
    (RECORD + "primaryKey: [code]\noptions:\n  ddl.connector: upsert-kafka\n  ddl.key.fields: code\n",
     "upsert-kafka writes the primary key as the Kafka key; remove ddl.key.fields"),
    (RECORD + "options:\n  ddl.connector: filesystem\n", "unsupported connector 'filesystem' for a kafka stream"),
])
def test_primary_key_and_connector_rules(tmp_path, context, message):
    found = problems(tmp_path, context)
    assert any(message in p for p in found), found


def test_upsert_kafka_keys_are_the_primary_key(tmp_path):
    out = resolve(tmp_path, RECORD, out=RECORD + "primaryKey: [code]\noptions:\n  ddl.connector: upsert-kafka\n  ddl.value.format: json\n").stream("out")
    assert (out.connector, out.primary_key, out.key_fields) == ("upsert-kafka", ("code",), ("code",))


# --- Processor attributes ------------------------------------------------------------------------------


def test_debug_explain_numbers_statements_as_the_streaming_runtime_did(tmp_path):
    pipeline = resolve(tmp_path, RECORD, attributes='debugQuery: "SELECT * FROM out"\ndebugExplain: " 0, 2,7"\n')
    debug = pipeline.query_processors[0].debug
    assert debug.explain == (0, 2, 7) and debug.explain_plan  # 0: out's table, 1: events' table, 2: the query
    assert debug.explain_streams == ("out",) and debug.outputs == ("out",)
    (warning,) = debug.warnings
    assert "statement 7, which does not exist" in warning and "0 to 1: the tables of out, events; 2: its query" in warning


def test_debug_explain_must_be_numbers(tmp_path):
    (problem,) = problems(tmp_path, RECORD, attributes='debugExplain: "2,x"\n')
    assert problem.startswith("spec.attributes.debugExplain: debugExplain lists statement numbers")


@pytest.mark.parametrize("text, ttl", [("1 h", 3_600_000), ("90000", 90_000), ("0", None)])
def test_state_ttl_attribute(tmp_path, text, ttl):
    pipeline = resolve(tmp_path, RECORD, attributes=f"table.exec.state.ttl: '{text}'\n")
    assert pipeline.query_processors[0].state_ttl_ms == ttl


def test_state_ttl_must_be_a_duration(tmp_path):
    (problem,) = problems(tmp_path, RECORD, attributes="table.exec.state.ttl: 'a while'\n")
    assert problem.startswith("spec.attributes.table.exec.state.ttl: table.exec.state.ttl: malformed duration")


# --- fetching registry subjects --------------------------------------------------------------------------

EVENTS_SCHEMA = json.dumps({"type": "record", "name": "Events", "namespace": "t",
                            "fields": [{"name": "code", "type": "string"}, {"name": "n", "type": ["null", "long"]}]})


class _Registry(BaseHTTPRequestHandler):
    """The schema registry's subject version endpoint, for two subjects."""

    subjects = {"events-value": EVENTS_SCHEMA}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = self.path.split("?")[0].strip("/").split("/")
        found = len(parts) == 4 and parts[0] == "subjects" and parts[2] == "versions" and parts[1] in self.subjects
        if found and parts[3] in ("latest", "3"):
            status, body = 200, {"subject": parts[1], "version": 3, "id": 11, "schema": self.subjects[parts[1]]}
        elif found:
            status, body = 404, {"error_code": 40402, "message": f"Version {parts[3]} not found."}
        else:
            status, body = 404, {"error_code": 40401, "message": f"Subject '{parts[1] if len(parts) > 1 else ''}' not found."}
        reply_json(self, status, body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_fetching_a_subject_version(registry):
    assert json.loads(fetch_subject_schema(f"{registry}/subjects/events-value/versions/latest", 5)) == json.loads(EVENTS_SCHEMA)
    assert fetch_subject_schema(f"{registry}/subjects/events-value/versions/3", 5) == EVENTS_SCHEMA
    with pytest.raises(SchemaFetchError, match="has no such subject"):
        fetch_subject_schema(f"{registry}/subjects/other-value/versions/latest", 5)
    with pytest.raises(SchemaFetchError, match="has no such version"):
        fetch_subject_schema(f"{registry}/subjects/events-value/versions/9", 5)


def test_an_unreachable_registry_is_a_clear_error_without_credentials():
    with ThreadingHTTPServer(("127.0.0.1", 0), _Registry) as closed:
        port = closed.server_address[1]  # bound, then closed: nothing listens there
    with pytest.raises(SchemaFetchError) as caught:
        fetch_subject_schema(f"http://user:secret@127.0.0.1:{port}/subjects/events-value/versions/latest", 2)
    assert f"the schema registry at http://127.0.0.1:{port} did not answer within 2 s or is unreachable" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_the_preflight_completes_the_pipeline(tmp_path, registry):
    context = f"inline: {{type: avro-confluent, schema: '{registry}/subjects/events-value/versions/latest'}}\n"
    pipeline = resolve(tmp_path, context)
    completed = with_registry_schemas(pipeline, fetch_registry_schemas(pipeline, 5))
    events = completed.stream("events")
    assert not events.schema_pending and [f.name for f in events.fields] == ["code", "n"]
    assert events.schema_name == "Events" and json.loads(events.avro_schema_json)["name"] == "Events"


def test_a_missing_fetch_fails_the_completion(tmp_path):
    pipeline = resolve(tmp_path, "inline: {type: avro-confluent, schema: 'http://registry.test/subjects/e/versions/1'}\n")
    with pytest.raises(ConfigError, match="the schema of http://registry.test/subjects/e/versions/1 was not fetched"):
        with_registry_schemas(pipeline, {})


def test_validate_reads_no_network_unless_asked(tmp_path, registry, capsys):
    from cli.main import main

    context = f"inline: {{type: avro-confluent, schema: '{registry}/subjects/events-value/versions/latest'}}\n"
    resolve(tmp_path, context)  # writes pipeline.yaml
    path = str(tmp_path / "pipeline.yaml")
    assert main(["validate", path]) == 0
    out = capsys.readouterr().out
    assert "events-value/versions/latest, fetched at start" in out
    assert "pending  columns of events come from the schema registry at start" in out
    assert main(["validate", "--fetch-schemas", path]) == 0
    out = capsys.readouterr().out
    assert "code: string" in out and "n: long [optional]" in out and "pending" not in out


def test_validate_names_a_subject_it_cannot_fetch(tmp_path, registry, capsys):
    from cli.main import main

    resolve(tmp_path, f"inline: {{type: avro-confluent, schema: '{registry}/subjects/gone-value/versions/latest'}}\n")
    assert main(["validate", "--fetch-schemas", str(tmp_path / "pipeline.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Stream events:" in err and "gone-value/versions/latest: the registry has no such subject" in err
