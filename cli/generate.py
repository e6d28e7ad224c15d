"""`iot-monitoring generate`: write MonitoringStream events to Kafka.

Like the Streaming Runtime's IoT generator (unkeyed, Avro with the Confluent
framing, about 25 events/s), with what testing a streaming pipeline needs on
top: any rate up to as fast as the producer goes, bounded runs with a
progress bar, keys, JSON, out-of-order and late events, malformed records,
and repeatable output (`--seed` with `--start-ms`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cli.datagen import (
    MONITORING_SCHEMA,
    EventGenerator,
    GeneratorSettings,
    Message,
    event_times,
)
from cli.main import UserError
from config.kafka_security import is_security_key
from config.pipeline import LOCAL_KAFKA, StreamSpec

log = logging.getLogger(__name__)

DEFAULT_STREAM = "iot-monitoring-stream"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="write IoT monitoring events to Kafka", description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", LOCAL_KAFKA), help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or %(default)s)")
    p.add_argument("--topic", help="topic to write to (default: the stream's topic, iot-monitoring)")
    p.add_argument("--config", help="pipeline YAML whose stream gives the schema, topic and format (default: the built-in pipeline)")
    p.add_argument("--stream", default=DEFAULT_STREAM, help="the Stream resource to generate for (default: %(default)s)")
    p.add_argument("--rate", type=float, default=25.0, help="events per second; 0 = as fast as possible (default: %(default)s)")
    bound = p.add_mutually_exclusive_group()
    bound.add_argument("--count", type=int, help="stop after this many events")
    bound.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--partitions", type=int, help="create the topic with this many partitions if it is missing (default 1)")
    p.add_argument("--keyed", action="store_true", help="key each event by its error_code (the original is unkeyed)")
    p.add_argument("--format", dest="value_format", choices=("avro-confluent", "json"), help="value format (default: the stream's, else avro-confluent)")
    p.add_argument("--schema-id", type=int, default=1, help="schema id in the Confluent header (default: %(default)s)")
    p.add_argument("--jitter-ms", type=int, default=0, help="move each event time back by up to this much (out-of-order events)")
    p.add_argument("--late-fraction", type=float, default=0.0, help="fraction of events sent --late-by-ms in the past")
    p.add_argument("--late-by-ms", type=int, default=120_000, help="how far late events lag (default: %(default)s)")
    p.add_argument("--malformed-fraction", type=float, default=0.0, help="fraction of values replaced by garbage, truncated or mis-framed bytes")
    p.add_argument("--seed", type=int, help="random seed: the same seed (with --start-ms) gives the same records")
    p.add_argument("--start-ms", type=int, help="event time of the first event (epoch ms); later ones follow the rate. Default: the clock")
    p.add_argument("--connect-timeout", type=float, default=15.0, help="seconds to wait for the broker (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


@dataclass
class Tally:
    """What the producer confirmed, by kind of message."""

    delivered: int = 0
    failed: int = 0
    first_error: str | None = None
    kinds: dict[str, int] = field(default_factory=dict)

    def on_delivery(self, err, _msg) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.first_error = self.first_error or str(err)


def run(args: argparse.Namespace) -> int:
    settings, stream, topic = _settings(args)
    if args.rate < 0:
        raise UserError("--rate must be 0 (unbounded) or more")
    if (args.count is not None and args.count < 0) or (args.duration is not None and args.duration <= 0):
        raise UserError("--count must not be negative and --duration must be positive")
    from config.needs import stream_needs
    from connectors.kafka_admin import BrokerUnavailable
    from connectors.preflight import prepare

    try:
        prepare(stream_needs(stream, args.partitions, topic=topic, servers=args.bootstrap), args.connect_timeout)
    except BrokerUnavailable as exc:
        raise UserError(str(exc)) from None
    generator = EventGenerator(settings, args.seed)
    next_times = _clock_times if args.start_ms is None else lambda i, n: event_times(args.start_ms, args.rate, i, n)
    tally = Tally()
    started = time.monotonic()
    interrupted = False
    with _progress(args) as advance:
        try:
            produce(args.bootstrap, topic, generator, next_times, args.rate, args.count, args.duration, tally, advance,
                    {k: v for k, v in stream.kafka_properties.items() if is_security_key(k)})
        except KeyboardInterrupt:
            interrupted = True
    elapsed = max(time.monotonic() - started, 1e-9)
    extra = ", ".join(f"{n} {k}" for k, n in sorted(tally.kinds.items()) if k != "event")
    print(
        f"sent {tally.delivered} events to {topic} at {args.bootstrap} in {elapsed:.1f} s "
        f"({tally.delivered / elapsed:,.0f}/s){f'; of them {extra}' if extra else ''}"
    )
    if tally.failed:
        print(f"{tally.failed} events were not delivered: {tally.first_error}")
        return 1
    return 130 if interrupted else 0


def _settings(args: argparse.Namespace) -> tuple[GeneratorSettings, StreamSpec, str]:
    """Schema, topic and format from the pipeline's stream, overridden by options."""
    from config import DEFAULT_PIPELINE, ConfigError, load_pipeline

    try:
        pipeline = load_pipeline(args.config or DEFAULT_PIPELINE)
    except ConfigError as exc:
        raise UserError("; ".join(str(p) for p in exc.problems)) from None
    stream = pipeline.streams.get(args.stream)
    if stream is None:
        raise UserError(f"no Stream named {args.stream!r} in {pipeline.source_file} (streams: {', '.join(pipeline.streams)})")
    stream_format = stream.value_format if stream.value_format in ("avro-confluent", "json") else "avro-confluent"
    try:
        settings = GeneratorSettings(
            value_format=args.value_format or stream_format,
            schema_json=stream.avro_schema_json or json.dumps(MONITORING_SCHEMA),
            schema_id=args.schema_id,
            keyed=args.keyed,
            jitter_ms=args.jitter_ms,
            late_fraction=args.late_fraction,
            late_by_ms=args.late_by_ms,
            malformed_fraction=args.malformed_fraction,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return settings, stream, args.topic or stream.topic


def _clock_times(first: int, count: int) -> list[int]:
    now = time.time_ns() // 1_000_000
    return [now] * count


def produce(
    bootstrap: str,
    topic: str,
    generator: EventGenerator,
    next_times: Callable[[int, int], list[int]],
    rate: float,
    count: int | None,
    duration: float | None,
    tally: Tally,
    advance: Callable[[int], None] = lambda n: None,
    security: dict[str, str] | None = None,
) -> None:
    """Produce paced chunks until `count` events or `duration` seconds, then flush."""
    from confluent_kafka import Producer

    # No sticky partitioning: unkeyed events go to a random partition each, so
    # every partition carries data (and moves its watermark) even in short runs.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "sticky.partitioning.linger.ms": 0, "log_level": 0,
                         **(security or {})})
    chunk = 5000 if rate <= 0 else max(1, min(5000, int(rate / 20)))
    started = time.monotonic()
    sent = 0
    try:
        while count is None or sent < count:
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            if rate > 0:
                due = started + sent / rate
                if due > time.monotonic():
                    time.sleep(min(due - time.monotonic(), 0.5))
                    continue
            n = chunk if count is None else min(chunk, count - sent)
            for message in generator.messages(next_times(sent, n)):
                _send(producer, topic, message, tally)
            sent += n
            producer.poll(0)
            advance(n)
    finally:
        remaining = producer.flush(30)
        if remaining:
            tally.failed += remaining
            tally.first_error = tally.first_error or f"{remaining} still queued after 30 s"


def _send(producer, topic: str, message: Message, tally: Tally) -> None:
    tally.kinds[message.kind.split(":")[0]] = tally.kinds.get(message.kind.split(":")[0], 0) + 1
    while True:
        try:
            producer.produce(topic, message.value, message.key, on_delivery=tally.on_delivery)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.05)


class _progress:
    """A rich progress bar for bounded runs (by count or by time); a no-op otherwise."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._bar = None
        if args.no_progress or (args.count is None and args.duration is None):
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._by_time = args.count is None
        self._total = float(args.duration) if self._by_time else args.count
        done = TimeElapsedColumn() if self._by_time else MofNCompleteColumn()
        self._bar = Progress("{task.description}", BarColumn(), done, TimeRemainingColumn(), transient=True)

    def __enter__(self) -> Callable[[int], None]:
        bar = self._bar
        if bar is None:
            return lambda n: None
        bar.start()
        task = bar.add_task("generating", total=self._total)
        if self._by_time:
            started = time.monotonic()
            return lambda n: bar.update(task, completed=min(self._total, time.monotonic() - started))
        return lambda n: bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
