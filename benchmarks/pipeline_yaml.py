"""The seed pipeline, rewritten for one benchmark run: its input and output
topics renamed, and the input's value format set (the seed's Avro, or JSON)."""

from __future__ import annotations

from pathlib import Path

from config import load_pipeline

REPO = Path(__file__).resolve().parents[1]
SEED_YAML = REPO / "config" / "iot-monitoring.yaml"
INPUT_STREAM = "iot-monitoring-stream"
STARTUP_OPTION = "      ddl.scan.startup.mode: earliest-offset\n"


def seed_schema_json() -> str:
    """The input Stream's Avro schema: the writer schema of the benchmark's records."""
    schema = load_pipeline(str(SEED_YAML), env={}).streams[INPUT_STREAM].avro_schema_json
    assert schema, "the seed's input stream has an Avro schema"
    return schema


def write_pipeline(directory: Path, input_topic: str, output_topic: str, value_format: str,
                   consumer_properties: dict[str, str] | None = None, exchange: str | None = None) -> Path:
    """The rewritten YAML; `consumer_properties` become the input Stream's
    `ddl.properties.*` options (the Streaming Runtime's way to set Kafka client properties)."""
    text = SEED_YAML.read_text()
    renames = [("name: iot-monitoring\n", f"name: {input_topic}\n"), ("name: error-count\n", f"name: {output_topic}\n")]
    if exchange is not None:
        renames.append(("name: udf-output-error-count\n", f"name: {exchange}\n"))
    for old, new in renames:
        if old not in text:
            raise RuntimeError(f"the seed pipeline no longer has {old.strip()!r}; update benchmarks/pipeline_yaml.py")
        text = text.replace(old, new, 1)
    if STARTUP_OPTION not in text:
        raise RuntimeError("the seed pipeline's input stream options moved; update benchmarks/pipeline_yaml.py")
    options = {"value.format": "json"} if value_format == "json" else {}
    options.update({f"properties.{k}": v for k, v in (consumer_properties or {}).items()})
    added = "".join(f'      ddl.{k}: "{v}"\n' for k, v in options.items())
    text = text.replace(STARTUP_OPTION, STARTUP_OPTION + added, 1)
    path = directory / f"pipeline-{value_format}-{output_topic}.yaml"
    path.write_text(text)
    stream = load_pipeline(str(path), env={}).streams[INPUT_STREAM]
    if stream.value_format != value_format or stream.topic != input_topic:
        raise RuntimeError(f"the rewritten pipeline reads {stream.topic!r} as {stream.value_format!r}")
    return path
