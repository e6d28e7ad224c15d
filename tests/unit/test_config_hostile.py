"""Configuration mistakes that used to end in a traceback are problems with
the file, the document and, where there is one, the field; an AMQP URL's
password never appears in them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config import ConfigError, load_pipeline
from config import loader
from config.loader import parse_resources
from connectors.rabbitmq import RabbitMQConfigError, RabbitPublisher
from tests.unit.test_config_resolve import COUNT_QUERY, EVENTS_SCHEMA, HEADER, fsql, stream, with_options, write

SPEC = HEADER + "kind: Stream\nmetadata:\n  name: x\nspec:\n  protocol: kafka\n"


def flow_nesting(levels: int) -> str:
    return SPEC + "  keys: " + "[" * levels + "]" * levels + "\n"


def block_nesting(levels: int) -> str:
    lines = "".join(" " * (2 * i + 2) + f"k{i}:\n" for i in range(levels))
    return SPEC + "  attributes:\n" + lines.replace("  k0:", "    k0:", 1) + " " * (2 * levels + 4) + "v: 1\n"


def aliases(levels: int) -> str:
    text = SPEC + "  keys: &l0 [a, a, a, a, a, a, a, a, a, a]\n"
    for i in range(1, levels):
        text += f"  k{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n"
    return text


@pytest.fixture(params=["libyaml", "python"])
def yaml_reader(request, monkeypatch):
    """Both parsers: libyaml when PyYAML has it, and the pure-Python one."""
    if request.param == "python":
        monkeypatch.setattr(loader, "FAST_LOADER", yaml.SafeLoader)
    elif loader.FAST_LOADER is yaml.SafeLoader:
        pytest.skip("PyYAML is built without libyaml")


@pytest.mark.parametrize("text", [flow_nesting(1_000), flow_nesting(100_000), block_nesting(1_200), block_nesting(70),
                                  aliases(7), SPEC + "  keys: [" + "{a: " * 900 + "1" + "}" * 900 + "]\n"],
                         ids=["flow-1000", "flow-100000", "block-1200", "block-70", "aliases", "mappings-900"])
def test_a_document_too_deep_or_too_large_is_one_clear_problem(yaml_reader, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_resources(text, "deep.yaml")
    (problem,) = caught.value.problems
    assert (problem.file, problem.document) == ("deep.yaml", 1)
    assert "nest" in problem.message or "values" in problem.message


def test_a_deep_document_among_good_ones_is_named_by_its_number(yaml_reader) -> None:
    text = SPEC + "---\n" + flow_nesting(70).replace("name: x", "name: y")
    with pytest.raises(ConfigError) as caught:
        parse_resources(text, "two.yaml")
    assert [(p.document, p.resource) for p in caught.value.problems] == [(2, "Stream/y")]


def test_a_list_of_schema_ids_must_be_numbers_separated_by_commas(tmp_path: Path) -> None:
    documents = [stream("events", modes="[read]", context=with_options('ddl.value.avro-confluent.schema-id: "1;2"\n')),
                 stream("counts"), fsql(COUNT_QUERY)]
    with pytest.raises(ConfigError) as caught:
        load_pipeline(write(tmp_path, *documents), env={})
    (problem,) = caught.value.problems
    assert problem.resource == "Stream/events"
    assert problem.field == "spec.dataSchemaContext.options.ddl.value.avro-confluent.schema-id"
    assert "'1;2'" in problem.message
    fine = with_options('ddl.value.avro-confluent.schema-id: "1, 2"\n')
    load_pipeline(write(tmp_path, stream("events", modes="[read]", context=fine), stream("counts"), fsql(COUNT_QUERY)), env={})


def rabbit_pipeline(cluster_url: str | None) -> list[str]:
    cluster = "" if cluster_url is None else (
        HEADER + "kind: ClusterStream\nmetadata:\n  name: rabbit\nspec:\n  storage:\n    server:\n"
        f"      url: \"{cluster_url}\"\n      protocol: rabbitmq\n")
    storage = "  storage:\n    clusterStream: rabbit\n" if cluster_url is not None else ""
    docs = [stream("events", modes="[read]", context=EVENTS_SCHEMA), stream("counts"), fsql(COUNT_QUERY),
            stream("alerts", protocol="rabbitmq", extra=storage)]
    return docs + ([cluster] if cluster else [])


BAD_URLS = ["amqp://user:s3cret@host:notaport/%2F", "amqp://user:s3cret@host:99999/", "http://user:s3cret@host/",
            "amqp://user:s3cret@/", "amqp://user:s3cret@host/a/b", "amqp://user:s3cret@host/?nosuch=1",
            "amqp://user:s3cret@[::1", "amqp://user:s3cret@ho st/"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_amqp_url_in_a_cluster_stream_is_a_problem_without_the_password(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_pipeline(write(tmp_path, *rabbit_pipeline(url)), env={})
    (problem,) = caught.value.problems
    assert problem.resource == "Stream/alerts" and "ClusterStream 'rabbit'" in problem.message
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_rabbitmq_url_variable_is_a_problem_without_the_password(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_pipeline(write(tmp_path, *rabbit_pipeline(None)), env={"RABBITMQ_URL": url})
    (problem,) = caught.value.problems
    assert "RABBITMQ_URL" in problem.message and "s3cret" not in str(caught.value)


def test_good_amqp_urls_pass(tmp_path: Path) -> None:
    for url in ["amqp://user:s3cret@rabbit.example.com:5672/%2F", "amqps://rabbit/vhost?heartbeat=30", "rabbit:5672"]:
        load_pipeline(write(tmp_path, *rabbit_pipeline(url)), env={})


@pytest.mark.parametrize("url", ["amqp://user:s3cret@host/%2F?heartbeat=abc", "not a url at all"])
def test_the_sink_refuses_what_the_check_cannot_see_with_a_configuration_error(url: str) -> None:
    with pytest.raises(RabbitMQConfigError) as caught:
        RabbitPublisher(url, "exchange")
    assert "s3cret" not in str(caught.value)
