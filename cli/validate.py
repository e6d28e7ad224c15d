"""`iot-monitoring validate FILE...`: check pipeline files and show what they resolve to.

A user sees, before anything runs, which topics, formats, schemas, watermarks
and brokers the resources mean, and the plan of each query. Mistakes are
printed one per line with their file, document, line, resource and field;
the exit code is 2 when any file has a problem.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from config import DEFAULT_PIPELINE, ConfigError
from config.errors import Problem
from config.kafka_security import is_secret_key
from config.loader import load_resources
from config.pipeline import Pipeline, QueryProcessor, SchemaField, StreamSpec, UdfProcessor
from config.resolve import locate_query, resolve

try:  # the SQL planner is optional for validation: without it, queries are shown as text only
    from config.sql import SqlError, compile_query
except ImportError:  # pragma: no cover - depends on the build
    compile_query = None  # type: ignore[assignment]
    SqlError = None  # type: ignore[assignment,misc]

PlanFn = Callable[[QueryProcessor, Pipeline], Any]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check pipeline YAML files and print the resolved pipeline",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help=f"pipeline YAML (default: {DEFAULT_PIPELINE.name})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    files = args.files or [str(DEFAULT_PIPELINE)]
    failed = False
    for index, file in enumerate(files):
        try:
            text = validate_file(file, compile_query)
        except ConfigError as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        if index:
            print()
        print(text)
    return 2 if failed else 0


def validate_file(file: str, plan_fn: PlanFn | None) -> str:
    """The description of one file's pipeline; raises ConfigError with every problem."""
    loaded = load_resources(file)
    pipeline = resolve(loaded, file)
    plans: dict[str, Any] = {}
    problems: list[Problem] = []
    for processor in pipeline.query_processors:
        if plan_fn is None:
            continue
        try:
            plans[processor.name] = plan_fn(processor, pipeline)
        except ConfigError as exc:
            problems.extend(exc.problems)
        except Exception as exc:
            if SqlError is None or not isinstance(exc, SqlError):
                raise
            where = locate_query(loaded, processor.raw_query)
            message = f"SQL error: {exc}"
            problems.append(where[0].problem(message, where[1]) if where else Problem(file, message))
    if problems:
        raise ConfigError(problems)
    return describe_pipeline(pipeline, plans, planner_available=plan_fn is not None)


def describe_pipeline(pipeline: Pipeline, plans: dict[str, Any], planner_available: bool = True) -> str:
    """Plain text, one fact per line, stable enough to read in a terminal or a test."""
    lines = [f"{pipeline.source_file}: valid", "", "streams"]
    for stream in pipeline.streams.values():
        lines += _describe_stream(stream)
    lines += ["", "processors"]
    for query in pipeline.query_processors:
        lines.append(f"  query {query.name}")
        lines.append(f"    sql          {' '.join(query.query.split())}")
        if query.name in plans:
            plan_lines = plans[query.name].describe().splitlines()
            lines.append(f"    plan         {plan_lines[0]}")
            lines += [f"                 {line}" for line in plan_lines[1:]]
        elif not planner_available:
            lines.append("    plan         (SQL planner not installed)")
    for udf in pipeline.udf_processors:
        lines += _describe_udf(udf)
    s = pipeline.settings
    skew = "off" if s.max_future_skew_ms is None else f"{s.max_future_skew_ms} ms"
    lines += [
        "",
        "engine",
        f"  idle timeout     {s.idle_timeout_ms} ms",
        f"  max future skew  {skew}",
        f"  quiet advance    {'on' if s.quiet_advance else 'off'}",
        f"  late topics      <input topic>{s.late_topic_suffix}",
        f"  dead letters     <input topic>{s.dlq_topic_suffix}",
    ]
    return "\n".join(lines)


def _describe_stream(stream: StreamSpec) -> list[str]:
    lines = [
        f"  {stream.name}",
        f"    topic        {stream.topic} ({stream.protocol} at {stream.servers})",
        f"    mode         {', '.join(sorted(stream.modes))}",
        f"    format       {stream.value_format}"
        + (f" (registry {stream.schema_registry_url})" if stream.schema_registry_url else ""),
    ]
    if stream.keys:
        lines.append(f"    keys         {', '.join(stream.keys)}")
    if stream.key_fields:
        lines.append(f"    key fields   {', '.join(stream.key_fields)}")
    if stream.fields:
        title = ".".join(p for p in (stream.schema_namespace, stream.schema_name) if p)
        lines.append(f"    schema       {title}")
        lines += [f"                   {_describe_field(f)}" for f in stream.fields]
    else:
        lines.append("    schema       none (payload passed as bytes)")
    if stream.time_attribute:
        t = stream.time_attribute
        origin = "Kafka record timestamp" if t.source == "kafka-timestamp" else "record field"
        lines.append(f"    event time   {t.column} ({origin}), watermark delay {t.watermark_delay_ms} ms")
    if stream.protocol == "kafka":
        startup = stream.startup_mode
        if stream.startup_timestamp_ms is not None:
            startup += f" at {stream.startup_timestamp_ms}"
        lines.append(f"    startup      {startup}")
    if stream.partition_count:
        lines.append(f"    partitions   {stream.partition_count}")
    for key, value in stream.kafka_properties.items():
        lines.append(f"    kafka        {key}={'***' if is_secret_key(key) else value}")
    return lines


def _describe_field(field: SchemaField) -> str:
    kind = field.type + (f" ({field.logical_type})" if field.logical_type else "")
    notes = []
    if field.optional:
        notes.append("optional")
    if field.metadata_from:
        notes.append(f"from metadata {field.metadata_from}")
    if field.proctime:
        notes.append("processing time")
    return f"{field.name}: {kind}" + (f" [{', '.join(notes)}]" if notes else "")


def _describe_udf(udf: UdfProcessor) -> list[str]:
    target = (
        f"{udf.udf.container} ({udf.udf.image or 'no image'}) at {udf.udf.address}" if udf.udf else "none (pass-through)"
    )
    return [
        f"  udf {udf.name}",
        f"    inputs       {', '.join(udf.inputs)}",
        f"    function     {target}",
        f"    outputs      {', '.join(udf.outputs)}",
        f"    calls        at most {udf.tuning.max_in_flight} in flight, deadline {udf.tuning.deadline_ms} ms, "
        f"busy retries {'unlimited' if udf.tuning.busy_retries is None else udf.tuning.busy_retries}, "
        f"{'in key order' if udf.tuning.ordered_by_key else 'unordered'}",
    ]
