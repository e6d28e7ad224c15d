"""`iot-monitoring validate FILE...`: check pipeline files and show what they resolve to.

A user sees, before anything runs, which topics, formats, schemas, watermarks
and brokers the resources mean, the plan of each query (filter, window,
HAVING, join keys and state TTL, Top-N, how the SELECT list maps to the
output Stream) and what its debug attributes will log. Mistakes are printed
one per line with their file, document, line, resource and field; the exit
code is 2 when any file has a problem.

Validation reads no network: a schema kept in a registry subject is
fetched only with `--fetch-schemas`; without it the columns of that stream
are checked when the dataflow starts.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from config import DEFAULT_PIPELINE, ConfigError
from config.errors import Problem
from config.loader import load_resources
from config.pipeline import Pipeline, QueryProcessor, StreamSpec, UdfProcessor
from config.resolve import locate_query, resolve
from runtime.redact import redact_text

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
    parser.add_argument(
        "--fetch-schemas",
        action="store_true",
        help="fetch the schemas kept in a schema registry subject (inline avro-confluent) and check their columns too",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per schema registry request (default 10)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    files = args.files or [str(DEFAULT_PIPELINE)]
    failed = False
    fetch = getattr(args, "fetch_schemas", False)
    for index, file in enumerate(files):
        try:
            text = validate_file(file, compile_query, fetch_timeout_s=args.timeout if fetch else None)
        except ConfigError as exc:
            failed = True
            for problem in exc.problems:
                print(redact_text(str(problem)), file=sys.stderr)
            continue
        if index:
            print()
        print(text)
    return 2 if failed else 0


def validate_file(file: str, plan_fn: PlanFn | None, fetch_timeout_s: float | None = None) -> str:
    """The description of one file's pipeline; raises ConfigError with every problem.
    With `fetch_timeout_s`, the schemas of registry subjects are fetched first."""
    loaded = load_resources(file)
    pipeline = resolve(loaded, file)
    if fetch_timeout_s is not None:
        pipeline = _with_fetched_schemas(pipeline, fetch_timeout_s)
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
    if plan_fn is not None:  # what the dataflow refuses at start when every Processor runs in it
        from config.chains import chain_order, check_handed_over

        chain_order(pipeline, plans)
        check_handed_over(pipeline, plans)
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
            lines += _describe_chain(plans[query.name], plans, pipeline)
            lines += _describe_debug(query, plans[query.name], pipeline)
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
    return redact_text("\n".join(lines))  # a last guard: nothing printed repeats a secret


def _describe_stream(stream: StreamSpec) -> list[str]:
    return [f"  {stream.name}", *(f"    {line}" for line in stream.describe_lines())]


def _describe_chain(plan: Any, plans: dict[str, Any], pipeline: Pipeline) -> list[str]:
    """Inputs another query writes (handed over in one dataflow), and an upsert output's keys."""
    from config.chains import writers

    written = writers(plans)
    lines = [f"    input        {source} handed over from {', '.join(written[source])} in one dataflow"
             " (read back from Kafka when the Processors run apart)"
             for source in dict.fromkeys(plan.sources) if source in written]
    sink = pipeline.stream(plan.sink)
    if sink.upsert:
        lines.append(f"    output       upsert-kafka: keyed by {', '.join(sink.primary_key)} (JSON); a later row replaces"
                     " the earlier one of its key, a retraction (-D) is a tombstone; the topic is made compacted")
    return lines


def _describe_debug(query: QueryProcessor, plan: Any, pipeline: Pipeline) -> list[str]:
    if not query.debug.enabled and not query.debug.warnings:
        return []
    from config.sql.debug import debug_output

    debug = debug_output(query, plan, pipeline)
    lines = []
    if query.debug.explain_plan:
        lines.append("    debug        the plan is explained in the log at start (debugExplain)")
    if query.debug.explain_streams:
        lines.append(f"    debug        tables explained at start: {', '.join(query.debug.explain_streams)}")
    if debug.rows is not None:
        lines.append(f"    debug        output rows logged at debug level: {debug.rows.query}")
    lines += [f"    warning      {w}" for w in debug.warnings]
    return lines


def _with_fetched_schemas(pipeline: Pipeline, timeout_s: float) -> Pipeline:
    from config.resolve import with_registry_schemas
    from connectors.schema_registry import SchemaFetchError, fetch_registry_schemas

    try:
        return with_registry_schemas(pipeline, fetch_registry_schemas(pipeline, timeout_s))
    except SchemaFetchError as exc:
        raise ConfigError([Problem(pipeline.source_file, str(exc))]) from None


def _describe_udf(udf: UdfProcessor) -> list[str]:
    target = (
        f"{udf.udf.container} ({udf.udf.image or 'no image'}) at {udf.udf.address}" if udf.udf else "none (pass-through)"
    )
    channel = []
    if udf.udf is not None:
        channel = [f"    channel      {'TLS, ' + udf.udf.tls.describe() if udf.udf.tls else 'plaintext'}"]
    return [
        f"  udf {udf.name}",
        f"    inputs       {', '.join(udf.inputs)}",
        f"    function     {target}",
        *channel,
        f"    outputs      {', '.join(udf.outputs)}",
        f"    calls        at most {udf.tuning.max_in_flight} in flight, deadline {udf.tuning.deadline_ms} ms, "
        f"busy retries {'unlimited' if udf.tuning.busy_retries is None else udf.tuning.busy_retries}, "
        f"{'in key order' if udf.tuning.ordered_by_key else 'unordered'}",
    ]
