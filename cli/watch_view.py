"""What `iot-monitoring watch` shows: the state it keeps, and one frame of it.

`render(state)` is a pure function of a `WatchState`, so a frame can be drawn
to text without any broker (tests, `--once`, the bounded demo) and the live
view simply redraws it as the feeds update the state.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from rich.bar import Bar
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

WINDOW_BOUNDS = ("window_start", "window_end")
SEVERITY_STYLES = {"critical": "bold red", "warning": "yellow"}

Window = tuple[Any, Any]


@dataclass(frozen=True)
class Alert:
    """One UDF output message as received from RabbitMQ."""

    received_at: float  # epoch seconds
    routing_key: str
    error_code: str = ""
    severity: str = ""
    window_start: str = ""
    error_count: int | None = None
    reason: str = ""

    @classmethod
    def from_message(cls, body: bytes, routing_key: str, received_at: float | None = None) -> Alert:
        """An alert from the alerting UDF's JSON; any other payload is kept as text."""
        received_at = time.time() if received_at is None else received_at
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            return cls(received_at, routing_key, reason=body.decode("utf-8", "replace")[:200])
        count = value.get("error_count")
        return cls(
            received_at,
            routing_key,
            error_code=str(value.get("error_code", "")),
            severity=str(value.get("severity", "")),
            window_start=str(value.get("window_start", "")),
            error_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
            reason=str(value.get("reason", "")) or body.decode("utf-8", "replace")[:200],
        )


@dataclass(frozen=True)
class Counters:
    """Pipeline counters; `None` where the source that gives it is not reachable.

    `source` says where the late and dead-letter numbers come from: the side
    topics (records on them) or the dataflow's metrics endpoint.
    """

    late_records: int | None = None
    dead_letters: int | None = None
    records_in: int | None = None
    watermark_lag_s: float | None = None
    open_windows: int | None = None
    source: str = "side topics"


@dataclass
class WatchState:
    """Everything one frame needs; the feeds mutate it, `render` only reads it."""

    results_topic: str
    alerts_exchange: str | None = None
    windows: dict[Window, dict[str, int]] = field(default_factory=dict)
    alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=100))
    counters: Counters = field(default_factory=Counters)
    results_seen: int = 0
    alerts_received: int = 0
    unreadable_results: int = 0
    notes: dict[str, str] = field(default_factory=dict)  # source -> problem, shown until resolved
    hint: str = ""  # shown while no window has closed, e.g. when the first one will

    def add_result(self, value: Any) -> bool:
        """Take one result record; False (and counted) when it is not a window count."""
        parsed = split_result(value)
        if parsed is None:
            self.unreadable_results += 1
            return False
        window, label, count = parsed
        self.windows.setdefault(window, {})[label] = count  # a repeated result replaces the earlier one
        self.results_seen += 1
        return True

    def add_alert(self, alert: Alert) -> None:
        self.alerts.append(alert)
        self.alerts_received += 1


def split_result(value: Any) -> tuple[Window, str, int] | None:
    """(window, group label, count) of a result row.

    The count is `error_count` when present, else the first integer column;
    the label is every other non-window column (so a changed query still shows).
    """
    if not isinstance(value, Mapping) or not all(k in value for k in WINDOW_BOUNDS):
        return None
    rest = {k: v for k, v in value.items() if k not in WINDOW_BOUNDS}
    count_key = "error_count" if "error_count" in rest else next(
        (k for k, v in rest.items() if isinstance(v, int) and not isinstance(v, bool)), None
    )
    count = rest.pop(count_key, None) if count_key else None
    if not isinstance(count, int) or isinstance(count, bool):
        return None
    label = " / ".join(str(v) for v in rest.values()) or "(all)"
    return (value["window_start"], value["window_end"]), label, count


def _window_order(window: Window) -> tuple:
    start = window[0]
    return (0, start, "") if isinstance(start, (int, float)) else (1, 0, str(start))


def _window_table(window: Window, counts: Mapping[str, int], bar_width: int) -> Table:
    total = sum(counts.values())
    start, end = str(window[0]), str(window[1])
    if len(start) == len(end) > 10 and start[:10] == end[:10]:  # same day: show the end's time only
        end = end[11:]
    title = f"window {start} → {end} · total {total}"
    table = Table(title=title, title_justify="left", pad_edge=False, min_width=len(title))
    table.add_column("error code")
    table.add_column("count", justify="right")
    table.add_column("", width=bar_width, no_wrap=True)
    top = max(counts.values(), default=0) or 1
    for label, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(label, str(count), Bar(size=top, begin=0, end=max(count, 0), width=bar_width, color="cyan"))
    return table


def _short_time(value: str) -> str:
    """`yyyy-MM-dd HH:mm:ss` shortened to its time; anything else as it is."""
    return value[11:] if len(value) == 19 and value[10] == " " else value


def _alerts_lines(alerts: list[Alert], total: int) -> Group:
    """One line per alert, cut at the terminal's edge (a table would squeeze every column instead)."""
    code_width = max((len(a.error_code or a.routing_key) for a in alerts), default=10)
    header = f"{'received':8}  {'severity':8}  {'error code':{code_width}}  {'window':8}  {'count':>5}  reason"
    lines = [Text(f"alerts ({total} received, newest first)", style="bold"),
             Text(header, style="dim", no_wrap=True, overflow="ellipsis")]
    for alert in alerts:
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(datetime.fromtimestamp(alert.received_at).strftime("%H:%M:%S") + "  ")
        line.append(f"{alert.severity or '-':8}", style=SEVERITY_STYLES.get(alert.severity, ""))
        count = "" if alert.error_count is None else str(alert.error_count)
        line.append(f"  {alert.error_code or alert.routing_key:{code_width}}  {_short_time(alert.window_start):8}  {count:>5}  ")
        line.append(alert.reason)
        lines.append(line)
    return Group(*lines)


def _counters_line(c: Counters) -> Text:
    def show(value: int | None) -> str:
        return "n/a" if value is None else f"{value:,}"

    lag = "n/a" if c.watermark_lag_s is None else f"{c.watermark_lag_s:.1f} s"
    line = Text()
    line.append("late records ", style="bold").append(show(c.late_records))
    line.append("   dead-lettered ", style="bold").append(show(c.dead_letters))
    line.append("   watermark lag ", style="bold").append(lag)
    if c.records_in is not None:
        line.append("   records in ", style="bold").append(show(c.records_in))
    if c.open_windows is not None:
        line.append("   open windows ", style="bold").append(show(c.open_windows))
    line.append(f"   (late and dead-letter counts from {c.source})", style="dim")
    return line


def render(state: WatchState, max_windows: int = 3, max_alerts: int = 8, bar_width: int = 20) -> RenderableType:
    """One frame: the newest windows' counts with bars, recent alerts, counters."""
    parts: list[RenderableType] = []
    header = Text(f"error counts from Kafka topic {state.results_topic}", style="bold")
    if state.alerts_exchange:
        header.append(f" · alerts from RabbitMQ exchange {state.alerts_exchange}")
    parts.append(header)
    newest = sorted(state.windows, key=_window_order, reverse=True)
    if not newest:
        parts.append(Text("no window has closed yet" + (f"; {state.hint}" if state.hint else ""), style="dim"))
    if newest:  # side by side when the terminal is wide enough
        parts.append(Columns([_window_table(w, state.windows[w], bar_width) for w in newest[:max_windows]]))
    if len(newest) > max_windows:
        parts.append(Text(f"… and {len(newest) - max_windows} older windows", style="dim"))
    if state.alerts_exchange:
        recent = list(state.alerts)[-max_alerts:][::-1]
        parts.append(_alerts_lines(recent, state.alerts_received) if recent else Text("no alerts yet", style="dim"))
    parts.append(_counters_line(state.counters))
    if state.unreadable_results:
        parts.append(Text(f"{state.unreadable_results} result records were not window counts", style="yellow"))
    for source, problem in sorted(state.notes.items()):
        parts.append(Text(f"{source}: {problem}", style="yellow"))
    return Group(*parts)
