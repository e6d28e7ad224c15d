"""`iot-monitoring demo`: the whole pipeline on the local stack, watched live.

It creates the topics, then starts the `alerting` UDF, the dataflow (every
processor, metrics on) and the generator as child processes, with their logs
in `.stack/demo/`, and opens the `watch` view. Ctrl-C stops everything it
started. `--bounded-demo` is a short, non-interactive run instead: a few
seconds of historical events, the dataflow to the end of them, one frame.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cli.demo_processes import ChildFailed, Children, wait_for_port
from cli.local_stack import REPO_ROOT, StackConfig
from cli.main import UserError
from cli.watch import (
    Watcher,
    WatchTargets,
    add_connection_options,
    load_query,
    log_targets,
    print_frame,
    run_live,
    targets_from_pipeline,
)
from udf.sdk import DEFAULT_PORT

log = logging.getLogger(__name__)

STEP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class DemoSetup:
    """Everything the children need, resolved once from the options."""

    pipeline: Path
    targets: WatchTargets
    source_stream: str
    input_topic: str
    window_ms: int
    watermark_delay_ms: int
    udf_port: int
    metrics_port: int
    log_dir: Path
    log_format: str

    def env(self, **extra: str) -> dict[str, str]:
        """The children's environment: this one, pointed at the chosen brokers and pipeline."""
        env = dict(os.environ, IOT_PIPELINE=str(self.pipeline), KAFKA_BOOTSTRAP_SERVERS=self.targets.bootstrap,
                   IOT_LOG_FORMAT=self.log_format, PYTHONUNBUFFERED="1")
        if self.targets.rabbitmq_url:
            env["RABBITMQ_URL"] = self.targets.rabbitmq_url
        env.update(extra)
        return env

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cli.main", "--log-format", self.log_format, *args]

    def dataflow_env(self, processors: str, bounded: bool) -> dict[str, str]:
        env = self.env(IOT_PROCESSORS=processors, IOT_BOUNDED="1" if bounded else "",
                       IOT_UDF_ADDRESS=f"127.0.0.1:{self.udf_port}")
        for name in ("BYTEWAX_DATAFLOW_API_ENABLED", "BYTEWAX_DATAFLOW_API_PORT", "BYTEWAX_DATAFLOW_API_CACHE_PATH"):
            env.pop(name, None)  # Bytewax reads their mere presence
        if not bounded:  # metrics for the live view; a bounded run exits before anyone could read them
            env.update(BYTEWAX_DATAFLOW_API_ENABLED="true", BYTEWAX_DATAFLOW_API_PORT=str(self.metrics_port),
                       BYTEWAX_DATAFLOW_API_CACHE_PATH=str(self.log_dir))  # a folder: it writes dataflow.json there
        return env


DATAFLOW = [sys.executable, "-m", "bytewax.run", "dataflows.iot"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run generator, dataflow and alerting UDF on the local stack and watch them",
                              description=__doc__.splitlines()[0])
    add_connection_options(p)
    p.add_argument("--rate", type=float, default=25.0, help="generated events per second (default: %(default)s, as the original)")
    p.add_argument("--late-fraction", type=float, default=0.0, help="fraction of events sent 2 minutes late (default: %(default)s)")
    p.add_argument("--malformed-fraction", type=float, default=0.0, help="fraction of malformed events (default: %(default)s)")
    p.add_argument("--udf-port", type=int, default=DEFAULT_PORT, help="port of the alerting UDF (default: %(default)s)")
    p.add_argument("--metrics-port", type=int, default=3030, help="port of the dataflow's metrics endpoint (default: %(default)s)")
    p.add_argument("--log-dir", type=Path, default=StackConfig.from_env().home / "demo", help="where the children's logs go (default: %(default)s)")
    p.add_argument("--duration", type=float, help="stop after this many seconds and print the last frame (default: until Ctrl-C)")
    bounded = p.add_argument_group("bounded demo (short, non-interactive)")
    bounded.add_argument("--bounded-demo", action="store_true",
                         help="generate --count historical events, run the dataflow to their end, print one frame, exit")
    bounded.add_argument("--count", type=int, default=12_000, help="events to generate, 1 ms apart (default: %(default)s)")
    bounded.add_argument("--start-ms", type=int,
                         help="event time of the first event (default: ten minutes ago, so the events straddle a minute)")
    bounded.add_argument("--seed", type=int, help="generator seed, for repeatable runs")
    bounded.add_argument("--timeout", type=float, default=STEP_TIMEOUT_S, help="seconds each step may take (default: %(default)s)")
    p.set_defaults(func=run)


def setup_from(args: argparse.Namespace) -> DemoSetup:
    for name in ("rate", "late_fraction", "malformed_fraction"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must not be negative")
    for name in ("late_fraction", "malformed_fraction"):
        if getattr(args, name) > 1:
            raise UserError(f"--{name.replace('_', '-')} is a fraction: at most 1")
    if args.bounded_demo and args.count <= 0:
        raise UserError("--count must be positive")
    if (args.duration is not None and args.duration <= 0) or args.timeout <= 0:
        raise UserError("--duration and --timeout must be positive")
    for name in ("udf_port", "metrics_port"):
        if not 0 < getattr(args, name) < 65536:
            raise UserError(f"--{name.replace('_', '-')} {getattr(args, name)} is not a TCP port")
    from config import DEFAULT_PIPELINE

    pipeline_path = Path(args.pipeline or DEFAULT_PIPELINE).resolve()
    pipeline, plan = load_query(pipeline_path)
    source = pipeline.stream(plan.source)
    if plan.window is None or source.time_attribute is None:
        raise UserError("the demo shows windowed counts; the pipeline's query has no window")
    return DemoSetup(
        pipeline=pipeline_path,
        targets=targets_from_pipeline(pipeline_path, args.bootstrap, args.rabbitmq_url),
        source_stream=source.name,
        input_topic=source.topic,
        window_ms=plan.window.size_ms,
        watermark_delay_ms=source.time_attribute.watermark_delay_ms,
        udf_port=args.udf_port,
        metrics_port=args.metrics_port,
        log_dir=args.log_dir.resolve(),
        log_format=getattr(args, "log_format", None) or "text",
    )


def create_topics(setup: DemoSetup, timeout_s: float) -> None:
    """The dataflow's own preflight, as the dataflow will run it, so that
    every reader (the view included) finds its topics from the start."""
    from dataflows.iot import prepare_run, start_up_errors

    env = setup.dataflow_env("all", bounded=True)
    env["IOT_CONNECT_TIMEOUT"] = str(timeout_s)
    try:
        prepare_run(env)
    except start_up_errors() as exc:
        raise UserError(str(exc)) from None


def warn_about_earlier_records(setup: DemoSetup) -> None:
    """The input's startup mode may replay what earlier runs left on the topic: say so."""
    from cli.watch_feeds import TopicCounter

    counter = TopicCounter(setup.targets.bootstrap, [setup.input_topic], from_beginning=True,
                           extra=dict(setup.targets.kafka_properties))
    try:
        earlier = (counter.counts() or {}).get(setup.input_topic, 0)
    finally:
        counter.close()
    if earlier:
        log.warning("topic %s already holds %d records from earlier runs; the dataflow may read them first "
                    "(see the stream's startup mode), so older windows and their alerts show up too",
                    setup.input_topic, earlier)


def first_window_closes_at(now_ms: int, window_ms: int, delay_ms: int) -> int:
    """When the first window of events stamped from `now_ms` on can fire: its end
    plus the allowed out-of-orderness (the watermark has to pass the end)."""
    return (now_ms // window_ms + 1) * window_ms + delay_ms


def default_start_ms(now_ms: int, count: int, window_ms: int) -> int:
    """Ten windows back, placed so the events (1 ms apart) straddle a window boundary."""
    boundary = (now_ms // window_ms - 10) * window_ms
    return boundary - min(count // 2, window_ms // 2)


def start_udf(children: Children, setup: DemoSetup) -> None:
    udf = children.start("udf", setup.cli("udf", "serve", "alerting", "--host", "127.0.0.1", "--port", str(setup.udf_port)),
                         setup.env())
    wait_for_port("127.0.0.1", setup.udf_port, 30.0, udf)


def run_bounded(setup: DemoSetup, args: argparse.Namespace) -> int:
    """Historical events through the whole pipeline, then one frame."""
    start_ms = args.start_ms if args.start_ms is not None else default_start_ms(time.time_ns() // 1_000_000, args.count, setup.window_ms)
    create_topics(setup, args.connect_timeout)
    warn_about_earlier_records(setup)
    watcher = Watcher(setup.targets, from_beginning=False, metrics_url=None)
    with Children(setup.log_dir, REPO_ROOT) as children:
        try:
            watcher.open()  # before anything runs, so that no alert is missed
            start_udf(children, setup)
            generate = ["generate", "--config", str(setup.pipeline), "--stream", setup.source_stream,
                        "--bootstrap", setup.targets.bootstrap, "--rate", "0", "--count", str(args.count),
                        "--start-ms", str(start_ms), "--late-fraction", str(args.late_fraction),
                        "--malformed-fraction", str(args.malformed_fraction), "--no-progress"]
            if args.seed is not None:
                generate += ["--seed", str(args.seed)]
            log.info("generating %d events from %s", args.count, _clock(start_ms))
            children.run("generator", setup.cli(*generate), setup.env(), args.timeout)
            # the query to its end first, then the UDF stage over everything it wrote
            children.run("dataflow-sql", DATAFLOW, setup.dataflow_env("sql", bounded=True), args.timeout)
            children.run("dataflow-udf", DATAFLOW, setup.dataflow_env("udf", bounded=True), args.timeout)
            watcher.drain(args.timeout)
        except ChildFailed as exc:
            log.error("%s", exc)
            return 1
        finally:
            watcher.close()
    print_frame(watcher)
    return 0


def run_interactive(setup: DemoSetup, args: argparse.Namespace) -> int:
    """Live events through the whole pipeline, watched until Ctrl-C (or --duration)."""
    create_topics(setup, args.connect_timeout)
    warn_about_earlier_records(setup)
    watcher = Watcher(setup.targets, from_beginning=False, metrics_url=f"http://127.0.0.1:{setup.metrics_port}/metrics")
    closes_at = first_window_closes_at(time.time_ns() // 1_000_000, setup.window_ms, setup.watermark_delay_ms)
    watcher.state.hint = f"the first one closes at about {_clock(closes_at)} (window end + allowed lateness)"
    with Children(setup.log_dir, REPO_ROOT) as children:
        try:
            watcher.open()
            start_udf(children, setup)
            children.start("dataflow", DATAFLOW, setup.dataflow_env("all", bounded=False))
            children.start("generator", setup.cli(
                "generate", "--config", str(setup.pipeline), "--stream", setup.source_stream,
                "--bootstrap", setup.targets.bootstrap, "--rate", str(args.rate),
                "--late-fraction", str(args.late_fraction), "--malformed-fraction", str(args.malformed_fraction),
                "--no-progress"), setup.env())
            wait_s = max(0, closes_at - time.time_ns() // 1_000_000) / 1000
            log.info("generating %g events/s; the first window closes at about %s, in %.0f s (window end + allowed "
                     "lateness); Ctrl-C stops everything (logs in %s)", args.rate, _clock(closes_at), wait_s, setup.log_dir)
            run_live(watcher, args.duration, on_tick=children.check)
        except ChildFailed as exc:
            log.error("%s", exc)
            return 1
        except KeyboardInterrupt:
            log.info("stopping the demo")
        finally:
            watcher.close()
    return 0  # the live view leaves its last frame on the screen


def _clock(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000).strftime("%H:%M:%S")


def _stop_on_sigterm() -> None:
    """SIGTERM and SIGHUP end the demo like Ctrl-C, so the children are stopped too."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def run(args: argparse.Namespace) -> int:
    setup = setup_from(args)
    log.info("pipeline %s; logs of the processes in %s", setup.pipeline, setup.log_dir)
    log_targets(setup.targets)
    _stop_on_sigterm()
    if args.bounded_demo:
        return run_bounded(setup, args)
    return run_interactive(setup, args)
