"""The IoT monitoring dataflow: `python -m bytewax.run dataflows.iot`.

Importing this module does nothing. Asking it for `flow` (what
`bytewax.run` does) runs the start-up, once:

1. the run's settings, read from the environment (`runtime.settings`);
2. the pipeline YAML (`IOT_PIPELINE`, default `config/iot-monitoring.yaml`),
   resolved, the schemas of registry subjects fetched, and each selected
   Processor's SQL compiled into a plan (a chain of them ordered, writers
   before readers);
3. the preflight: wait for the brokers, create the topics and exchanges the
   plans need (`config.needs`, `connectors.preflight`);
4. the dataflow, built without any I/O (`dataflows.wiring`).

A user error (the YAML, the SQL, a setting, a broker that does not answer)
exits with status 2 and one clear line instead of a traceback.
"""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from bytewax.dataflow import Dataflow

    from config.pipeline import Pipeline
    from config.sql.plan import Plan
    from runtime.settings import RunOptions


def compile_plans(pipeline: Pipeline, options: RunOptions) -> dict[str, Plan]:
    """The plan of every query Processor the run selects, by Processor name;
    a chain of them that cannot run in one dataflow is refused (`config.chains`)."""
    from config.chains import chain_order, check_handed_over
    from config.sql import compile_query

    plans = {p.name: compile_query(p, pipeline) for p in pipeline.query_processors if options.runs("sql", p.name)}
    chain_order(pipeline, plans)
    check_handed_over(pipeline, plans)
    return plans


def start_up_errors() -> tuple[type[Exception], ...]:
    """The errors of a start that are the user's to fix: printed as one line."""
    from config import ConfigError
    from config.sql import SqlError
    from connectors.kafka_admin import BrokerUnavailable
    from connectors.schema_registry import SchemaFetchError
    from runtime.logs import FatalError  # RabbitMQConfigError, UdfConfigError, SchemaRegistryConfigError, TLS
    from runtime.settings import SettingsError

    return (SettingsError, ConfigError, SqlError, BrokerUnavailable, FatalError, SchemaFetchError)


def prepare_run(env: Mapping[str, str]) -> tuple[Pipeline, dict[str, Plan], RunOptions]:
    """Steps 1-3: settings, the pipeline and its plans, the preflight. Raises
    one of `start_up_errors()` for what the user must fix."""
    from config import load_pipeline
    from config.needs import needs_of, plan_sources
    from config.resolve import with_registry_schemas
    from connectors.preflight import check_schema_registries, check_udf_channels, prepare
    from connectors.schema_registry import fetch_registry_schemas
    from dataflows.wiring import selected_udf_processors, udf_settings
    from runtime.logs import configure_logging
    from runtime.settings import RunOptions

    options = RunOptions.from_env(env)
    configure_logging(options.log.format, options.log.level)
    pipeline = load_pipeline(options.pipeline_path, env) if options.pipeline_path else load_pipeline(env=env)
    # Streams whose schema is a registry subject get their columns now, before the SQL is checked against them.
    pipeline = with_registry_schemas(pipeline, fetch_registry_schemas(pipeline, options.connect_timeout_s))
    plans = compile_plans(pipeline, options)
    udf_processors = selected_udf_processors(pipeline, options)
    prepare(needs_of(pipeline, plans.values(), udf_processors), options.connect_timeout_s)
    check_schema_registries(pipeline.stream(name) for plan in plans.values() for name in plan_sources(plan))
    check_udf_channels(s for p in udf_processors if (s := udf_settings(p, options)) is not None)
    return pipeline, plans, options


def start(env: Mapping[str, str] | None = None) -> Dataflow:
    """Settings, pipeline, plans, preflight, then the flow (steps 1-4 above)."""
    from dataflows.wiring import build_flow
    from runtime.settings import environment

    try:
        pipeline, plans, options = prepare_run(environment() if env is None else env)
        return build_flow(pipeline, plans, options)
    except start_up_errors() as exc:
        print(f"iot-monitoring: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _settled_start() -> Dataflow:
    """The start-up with Python's cyclic collector off (it would only walk
    objects that live as long as the process: the modules imported and the
    plans), then the start-up heap settled (`runtime.heap`). A failed start
    re-enables the collector: a process that asked for the flow goes on (a test)."""
    gc.disable()
    try:
        built = start()
    except BaseException:
        gc.enable()
        raise
    from runtime.heap import settle_startup_heap
    from runtime.stop import install_stop_handlers

    settle_startup_heap()
    install_stop_handlers()
    return built


def __getattr__(name: str) -> Any:
    if name == "flow":
        built = _settled_start()
        globals()["flow"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
