"""`iot-monitoring watch`: a live terminal view of the running pipeline.

Per window, the error counts per code with bars, updated as windows close
(from the results topic); the UDF's alerts as they arrive (from RabbitMQ);
late and dead-lettered record counts and the watermark lag (from the
dataflow's metrics endpoint when it answers, else from the side topics).
Topic and exchange names come from the pipeline YAML.
"""

from __future__ import annotations

import argparse
import logging

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live

from cli.main import UserError
from cli.watch_feeds import (
    AlertFeed,
    ResultFeed,
    TopicCounter,
    scrape_metrics,
)
from cli.watch_view import Counters, WatchState, render
from config.pipeline import TlsSettings
from runtime.redact import redact_url
from runtime.settings import pipeline_path

if TYPE_CHECKING:
    from config.pipeline import Pipeline
    from config.sql.plan import Plan

log = logging.getLogger(__name__)

DEFAULT_METRICS_URL = "http://127.0.0.1:3030/metrics"
REFRESH_S = 2.0  # how often side-topic counts and metrics are refreshed


@dataclass(frozen=True)
class WatchTargets:
    """What to watch, resolved from the pipeline and the options."""

    bootstrap: str
    results_topic: str
    late_topic: str
    dlq_topics: tuple[str, ...]  # the query's, then the UDF stage's
    rabbitmq_url: str | None
    exchange: str | None
    kafka_properties: tuple[tuple[str, str], ...] = ()
    rabbitmq_tls: TlsSettings | None = None  # for an amqps:// URL

    @property
    def side_topics(self) -> list[str]:
        return [self.late_topic, *self.dlq_topics]


def load_query(path: str | Path | None) -> tuple[Pipeline, Plan]:
    """The pipeline and the plan of its first query, or a UserError saying what is wrong."""
    from config import DEFAULT_PIPELINE, ConfigError, load_pipeline
    from config.sql import SqlError, compile_query

    try:
        pipeline = load_pipeline(path or DEFAULT_PIPELINE)
        if not pipeline.query_processors:
            raise UserError(f"{pipeline.source_file} has no Processor with a query to watch")
        return pipeline, compile_query(pipeline.query_processors[0], pipeline)
    except ConfigError as exc:
        raise UserError("; ".join(str(p) for p in exc.problems)) from None
    except SqlError as exc:
        raise UserError(str(exc)) from None


def targets_from_pipeline(path: str | Path | None, bootstrap: str | None = None, rabbitmq_url: str | None = None) -> WatchTargets:
    """Topics and exchange of the pipeline's first query and its UDF stage."""
    pipeline, plan = load_query(path)
    source, sink = pipeline.stream(plan.source), pipeline.stream(plan.sink)
    if sink.protocol != "kafka":
        raise UserError(f"the query writes to {sink.protocol} stream {sink.name}; watch reads results from Kafka")
    dlq_topics = [pipeline.dlq_topic(source)]
    exchange, url, tls = None, None, None
    for processor in pipeline.udf_processors:
        for name in processor.inputs:
            stream = pipeline.streams.get(name)
            if stream is not None and stream.protocol == "kafka" and pipeline.dlq_topic(stream) not in dlq_topics:
                dlq_topics.append(pipeline.dlq_topic(stream))
        for output in processor.outputs:
            stream = pipeline.streams.get(output)
            if stream is not None and stream.protocol == "rabbitmq":
                exchange, url, tls = stream.topic, stream.servers, stream.tls
                break
        if exchange:
            break
    return WatchTargets(
        bootstrap=bootstrap or sink.servers,
        results_topic=sink.topic,
        late_topic=pipeline.late_topic(source),
        dlq_topics=tuple(dlq_topics),
        rabbitmq_url=rabbitmq_url or url,
        exchange=exchange,
        kafka_properties=tuple(sorted(sink.kafka_properties.items())),
        rabbitmq_tls=tls,
    )


class Watcher:
    """Feeds in, `WatchState` out. Open it before the pipeline runs to see
    every alert: RabbitMQ only delivers what is published after binding."""

    def __init__(self, targets: WatchTargets, *, from_beginning: bool, metrics_url: str | None) -> None:
        self.targets = targets
        self.metrics_url = metrics_url
        self.state = WatchState(targets.results_topic, targets.exchange)
        extra = dict(targets.kafka_properties)
        self.results = ResultFeed(targets.bootstrap, targets.results_topic, from_beginning, extra)
        self.side_counts = TopicCounter(targets.bootstrap, targets.side_topics, from_beginning, extra)
        self.alerts = (AlertFeed(targets.rabbitmq_url, targets.exchange, targets.rabbitmq_tls)
                       if targets.exchange and targets.rabbitmq_url else None)
        self._last_refresh = 0.0

    def open(self) -> None:
        """Fix the reading positions and bind the alert queue."""
        self.results.start()
        if self.alerts is not None:
            self.alerts.connect()
        self.refresh_counters()

    def step(self, timeout_s: float = 0.25) -> None:
        """Read what arrived within about `timeout_s` into the state."""
        for value in self.results.poll(timeout_s / 2):
            if not self.state.add_result(value):
                log.debug("skipped a result that is not a window count: %r", value)
        if self.alerts is not None:
            for alert in self.alerts.poll(timeout_s / 2):
                self.state.add_alert(alert)
        if time.monotonic() - self._last_refresh >= REFRESH_S:
            self.refresh_counters()
        self._set_note("results", self.results.problem)
        self._set_note("alerts", self.alerts.problem if self.alerts else None)

    def refresh_counters(self) -> None:
        """Late and dead-letter counts from the side topics (they hold every
        processor's), the metrics endpoint's numbers when Kafka cannot be asked;
        watermark lag, input and open windows from the metrics endpoint only."""
        self._last_refresh = time.monotonic()
        metrics = scrape_metrics(self.metrics_url) if self.metrics_url else None
        counts = self.side_counts.counts()
        if counts is not None:
            late, dead, source = counts[self.targets.late_topic], sum(counts[t] for t in self.targets.dlq_topics), "side topics"
        elif metrics is not None:
            late, dead, source = metrics.late_records, metrics.dead_letters, "metrics"
        else:
            late, dead, source = None, None, "nowhere: Kafka does not answer"
        self.state.counters = Counters(
            late_records=late, dead_letters=dead, source=source,
            records_in=metrics.records_in if metrics else None,
            watermark_lag_s=metrics.watermark_lag_s if metrics else None,
            open_windows=metrics.open_windows if metrics else None,
        )

    def drain(self, timeout_s: float, quiet_s: float = 1.0) -> None:
        """Read until the results topic is caught up and no alert came for `quiet_s`."""
        deadline = time.monotonic() + timeout_s
        last_alert = time.monotonic()
        while time.monotonic() < deadline:
            alerts_before = self.state.alerts_received
            self.step(0.2)
            if self.state.alerts_received != alerts_before:
                last_alert = time.monotonic()
            if self.results.caught_up() and time.monotonic() - last_alert >= quiet_s:
                break
        else:
            log.warning("stopped reading after %.0f s; the frame may be incomplete", timeout_s)
        self.refresh_counters()

    def _set_note(self, source: str, problem: str | None) -> None:
        if problem:
            self.state.notes[source] = problem
        else:
            self.state.notes.pop(source, None)

    def close(self) -> None:
        for feed in (self.results, self.side_counts, self.alerts):
            if feed is not None:
                feed.close()


def run_live(watcher: Watcher, timeout_s: float | None = None, on_tick: Callable[[], None] = lambda: None,
             console: Console | None = None) -> None:
    """Redraw the view as the state changes until Ctrl-C or `timeout_s`;
    `on_tick` runs every step (the demo checks its processes there)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with Live(render(watcher.state), console=console, refresh_per_second=4, screen=False) as live:
        while deadline is None or time.monotonic() < deadline:
            on_tick()
            watcher.step(0.25)
            live.update(render(watcher.state))


def print_frame(watcher: Watcher, console: Console | None = None) -> None:
    (console or Console()).print(render(watcher.state))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("watch", help="live terminal view of window counts, alerts and pipeline counters",
                              description=__doc__.splitlines()[0])
    add_connection_options(p)
    p.add_argument("--metrics-url", default=DEFAULT_METRICS_URL,
                   help="the dataflow's Prometheus endpoint; '' to not use it (default: %(default)s)")
    p.add_argument("--from-beginning", action="store_true", help="read the results topic from its beginning, not its end")
    p.add_argument("--once", action="store_true",
                   help="read what is on the results topic (from its beginning), print one frame and exit")
    p.add_argument("--timeout", type=float,
                   help="stop after this many seconds (default: until Ctrl-C; with --once: 30)")
    p.set_defaults(func=run)


def add_connection_options(p: argparse.ArgumentParser) -> None:
    """Options shared with `demo`: where the brokers are and which pipeline."""
    # no environment defaults here: the pipeline resolves its ClusterStreams first, then the environment
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the pipeline's ClusterStream, "
                                       "else $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)")
    p.add_argument("--rabbitmq-url", help="RabbitMQ AMQP URL (default: the pipeline's ClusterStream, "
                                          "else $RABBITMQ_URL, else the local stack's)")
    p.add_argument("--pipeline", default=pipeline_path(),
                   help="pipeline YAML naming the topics and exchange (default: $IOT_PIPELINE, else the built-in one)")
    p.add_argument("--connect-timeout", type=float, default=15.0,
                   help="seconds to wait for Kafka at start (default: %(default)s)")


def log_targets(targets: WatchTargets) -> None:
    log.info("results from topic %s, late records from %s, dead letters from %s at %s", targets.results_topic,
             targets.late_topic, ", ".join(targets.dlq_topics), targets.bootstrap)
    if targets.exchange and targets.rabbitmq_url:
        log.info("alerts from exchange %s at %s", targets.exchange, redact_url(targets.rabbitmq_url))


def check_kafka(targets: WatchTargets, timeout_s: float) -> None:
    """Fail early, with a clear message, when Kafka does not answer at all."""
    from connectors.kafka_admin import BrokerUnavailable, wait_for_kafka

    try:
        wait_for_kafka(targets.bootstrap, timeout_s, dict(targets.kafka_properties))
    except BrokerUnavailable as exc:
        raise UserError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    if args.timeout is not None and args.timeout <= 0:
        raise UserError("--timeout must be positive")
    targets = targets_from_pipeline(args.pipeline, args.bootstrap, args.rabbitmq_url)
    log_targets(targets)
    check_kafka(targets, args.connect_timeout)
    watcher = Watcher(targets, from_beginning=args.from_beginning or args.once, metrics_url=args.metrics_url or None)
    try:
        watcher.open()
        if args.once:
            watcher.drain(args.timeout or 30.0)
            print_frame(watcher)
        else:
            run_live(watcher, args.timeout)
    except KeyboardInterrupt:  # the way to leave the live view
        pass
    finally:
        watcher.close()
    return 0
