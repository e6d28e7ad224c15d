"""`watch` reads the dataflow's Prometheus endpoint: sums over processors, the
largest watermark lag, and None when nothing answers."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from cli.watch_feeds import scrape_metrics


@pytest.fixture
def endpoint():
    """A registry like the dataflow's, served over HTTP on a free port."""
    registry = CollectorRegistry()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield registry, f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()


def test_counters_are_summed_over_processors_and_the_largest_lag_is_taken(endpoint):
    registry, url = endpoint
    late = Counter("iot_records_late", "late", ["processor"], registry=registry)
    dead = Counter("iot_records_dead_lettered", "dlq", ["processor"], registry=registry)
    records_in = Counter("iot_records_in", "in", ["processor"], registry=registry)
    lag = Gauge("iot_watermark_lag_seconds", "lag", ["processor"], registry=registry)
    open_windows = Gauge("iot_open_windows", "open", ["processor"], registry=registry)
    Counter("iot_records_filtered", "not shown", ["processor"], registry=registry).labels("a").inc(1000)
    late.labels("a").inc(3)
    late.labels("b").inc(4)
    dead.labels("a").inc(11)
    records_in.labels("a").inc(500)
    records_in.labels("b").inc(250)
    lag.labels("a").set(2.5)
    lag.labels("b").set(7.25)
    open_windows.labels("a").set(2)

    counters = scrape_metrics(url)
    assert counters is not None
    assert (counters.late_records, counters.dead_letters, counters.records_in) == (3 + 4, 11, 500 + 250)
    assert counters.watermark_lag_s == 7.25
    assert counters.open_windows == 2
    assert counters.source == "metrics"


def test_a_dataflow_before_its_first_watermark_has_no_lag(endpoint):
    registry, url = endpoint
    Counter("iot_records_in", "in", ["processor"], registry=registry).labels("a").inc(5)
    counters = scrape_metrics(url)
    assert counters is not None
    assert counters.watermark_lag_s is None and counters.records_in == 5 and counters.late_records == 0


def test_nothing_listening_gives_none():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again on leaving the block: nothing listens there
    assert scrape_metrics(f"http://127.0.0.1:{port}/metrics", timeout_s=1) is None
    assert scrape_metrics("not a url") is None
