"""Chains of Processors through intermediate Streams, as one dataflow runs them.

When a query of the run writes a Stream that another query (or a UDF stage)
of the same run reads, the reader takes the writer's rows as they are
emitted (handed over in-process, `operators.handover`) instead of reading
the topic back; the rows are still written to the topic. So the queries run
in an order where every writer comes before its readers, and a cycle cannot
run. A handed-over row has no Kafka partition, offset or record timestamp
yet (the producer assigns them when it writes): a reader that needs one of
those columns is refused, with what to write instead.
"""

from __future__ import annotations

from typing import Mapping

from config.errors import ConfigError, Problem
from config.pipeline import Pipeline
from config.sql.plan import Plan

NOT_HANDED_OVER = {
    "timestamp": "the Kafka record timestamp",
    "partition": "the Kafka partition",
    "offset": "the Kafka offset",
}


def writers(plans: Mapping[str, Plan]) -> dict[str, list[str]]:
    """Stream name -> the queries (Processor names) of `plans` that write it."""
    out: dict[str, list[str]] = {}
    for name, plan in plans.items():
        out.setdefault(plan.sink, []).append(name)
    return out


def chain_order(pipeline: Pipeline, plans: Mapping[str, Plan]) -> list[str]:
    """The queries of `plans`, each after every query that writes one of its
    inputs (otherwise in the YAML's order); a cycle is a `ConfigError`."""
    written = writers(plans)
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            cycle = " -> ".join([*path[path.index(name):], name])
            raise ConfigError([Problem(pipeline.source_file, f"the queries form a cycle through their Streams ({cycle}); "
                                       "a chain of Processors must end: write the last one to a Stream no query of the chain reads")])
        state[name] = "open"
        for source in plans[name].sources:
            for writer in written.get(source, ()):
                visit(writer, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in plans:
        visit(name, [])
    return order


def check_handed_over(pipeline: Pipeline, plans: Mapping[str, Plan]) -> None:
    """Refuse a query that reads Kafka-only metadata of a Stream handed over to it."""
    written = writers(plans)
    problems = []
    for name, plan in plans.items():
        for source in dict.fromkeys(plan.sources):
            if source not in written:
                continue
            stream = pipeline.stream(source)
            for column in plan.columns_read(source):
                field = stream.field_named(column)
                origin = field.metadata_from if field is not None else None
                if origin in NOT_HANDED_OVER:
                    problems.append(Problem(
                        pipeline.source_file,
                        f"Processor {name}: column {column!r} of Stream {source!r} is {NOT_HANDED_OVER[origin]}, but"
                        f" {', '.join(written[source])} of this dataflow writes that Stream and hands its rows over"
                        " before Kafka assigns one; declare it as a column the writer selects (its event time, say),"
                        " or run the Processors apart (IOT_PROCESSORS) so that it is read back from Kafka",
                    ))
    if problems:
        raise ConfigError(problems)
