"""Stream-stream joins end to end on real Kafka, in the shapes of the
Streaming Runtime's clickstream sample (INNER JOIN on the schemas' record
names, WHERE on the joined input) and a LEFT JOIN into upsert-kafka.

Each runs twice, bounded, on one recovery store: the rows of the first run
stay in the join's state, so in the second run the pair's second row
arrives on the left for some keys and on the right for others, in an order
the test decides. Expected rows come from Flink's regular-join rules
(docs/semantics.md): a pair is emitted once, when its second row arrives,
whichever input that is."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from engine.serde import encode_confluent_avro, format_timestamp_ms
from tests.support.kafka_io import produce, read_all
from tests.support.pipeline import REPO, run_dataflow
from tests.support.shapes import shape

pytestmark = pytest.mark.broker

BASE = 1_645_020_000_000
GARBAGE = b"\x00\x00\x00\x00\x01\xff not avro"


def recovery_store(tmp_path: Path) -> tuple[str, ...]:
    store = tmp_path / "recovery"
    store.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(store), "1"], check=True, cwd=REPO)
    return ("-r", str(store), "-s", "1", "-b", "0")


def joined(tmp_path: Path, new_topic, name: str, left: str, right: str, out: str):
    """The shape with its topics for this test: (shape, (left, right, output topic), (left, right Avro schema))."""
    run = shape(tmp_path, name)
    pipeline = run.pipeline()
    for stream in (left, right):
        new_topic(name=run.topic(stream))
    return (run, (run.topic(left), run.topic(right), run.topic(out)),
            (pipeline.stream(left).avro_schema_json, pipeline.stream(right).avro_schema_json))


def send(bootstrap: str, topic: str, schema: str, rows: list[dict], stamps: list[int] | None = None,
         garbage: bytes | None = None) -> None:
    """The rows as the Streams' producers write them (Confluent-framed Avro) to partition 0, then `garbage`."""
    values = encode_confluent_avro(schema, 1, rows) + ([garbage] if garbage is not None else [])
    if stamps is not None and garbage is not None:
        stamps = [*stamps, BASE]
    produce(bootstrap, topic, values, partition=0, timestamps=stamps)


def totals(stderr: str, processor: str) -> dict[str, int]:
    line = [line for line in stderr.splitlines() if f"query {processor}: end of input:" in line][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.split("end of input:", 1)[1])}


def bounded(path: Path, bootstrap: str, args: tuple[str, ...]) -> str:
    result = run_dataflow(path, bootstrap, args=args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def test_inner_join_pairs_whichever_side_comes_second(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    run, (views_topic, members_topic, out_topic), (view_schema, member_schema) = joined(
        tmp_path, new_topic, "member-clicks.yaml", "page-view-stream", "member-stream", "gold-view-stream")

    def views(rows: list[tuple[str, int, int]]) -> None:  # (member, page, Kafka timestamp), then a dead letter
        send(kafka_bootstrap, views_topic, view_schema, [{"member_id": m, "page": p, "gesture": "click", "browser": "x"}
                                                         for m, p, _ in rows], [t for *_, t in rows], GARBAGE)

    def members(rows: list[tuple[str, str]]) -> None:  # (member, tier), then a dead letter
        send(kafka_bootstrap, members_topic, member_schema, [{"member_id": m, "display_name": m.upper(), "tier": t}
                                                             for m, t in rows], None, GARBAGE)

    # first run: views whose member comes later, members whose views come later, a member who never views
    first_views = [("m1", 1, BASE + 1), ("m2", 2, BASE + 2), ("m1", 3, BASE + 3), ("m3", 4, BASE + 4), ("m9", 5, BASE + 5)]
    first_members = [("m4", "GOLD"), ("m5", "SILVER"), ("m6", "GOLD")]
    # second run: the other side of each, and a second row for m4 (each of its rows pairs with each view)
    second_members = [("m1", "GOLD"), ("m2", "SILVER"), ("m3", "GOLD"), ("m4", "GOLD")]
    second_views = [("m4", 6, BASE + 6), ("m5", 7, BASE + 7), ("m1", 8, BASE + 8), ("m4", 9, BASE + 9)]
    views(first_views)
    members(first_members)
    args = recovery_store(tmp_path)
    bounded(run.path, kafka_bootstrap, args)
    after_first = read_all(kafka_bootstrap, out_topic)
    assert after_first == []  # no pair has both rows yet (m4 and m6 have no views, m1..m3 no member)
    members(second_members)
    views(second_views)
    stderr = bounded(run.path, kafka_bootstrap, args)

    member_rows = first_members + second_members
    view_rows = first_views + second_views
    expected = Counter(
        orjson.dumps({"member_id": m, "display_name": m.upper(), "page": page, "gesture": "click",
                      "viewed_at": format_timestamp_ms(ts)})
        for m, page, ts in view_rows for member, tier in member_rows if member == m and tier == "GOLD"
    )
    records = read_all(kafka_bootstrap, out_topic)
    assert Counter(value for _, value, _, _, _ in records) == expected
    assert all(orjson.loads(key) == {"member_id": orjson.loads(value)["member_id"]} for key, value, _, _, _ in records)
    assert sum(expected.values()) == 8  # m1: 3 views, m3: 1, m4: 2 views x 2 rows

    t = totals(stderr, "gold-member-views")  # both runs: the counters live in the recovery store
    sent = len(view_rows) + len(member_rows) + 4  # one dead letter per batch sent
    assert t["records_in"] == sent == t["filtered"] + t["counted"] + t["dead_lettered"]
    assert (t["filtered"], t["dead_lettered"], t["results_out"]) == (2, 4, 8)  # the SILVER members; the garbage
    assert len(read_all(kafka_bootstrap, views_topic + "-dlq")) == 2
    assert len(read_all(kafka_bootstrap, members_topic + "-dlq")) == 2


def test_left_join_into_upsert_kafka_retracts_the_padded_row(tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    run, (orders_topic, shipments_topic, out_topic), (order_schema, shipment_schema) = joined(
        tmp_path, new_topic, "order-shipments.yaml", "orders-stream", "shipments-stream", "order-status-stream")

    def orders(rows: list[tuple[str, str, int, int]]) -> None:
        send(kafka_bootstrap, orders_topic, order_schema, [{"order_id": o, "item": i, "quantity": q} for o, i, q, _ in rows],
             [t for *_, t in rows])

    def shipments(rows: list[tuple[str, str]]) -> None:
        send(kafka_bootstrap, shipments_topic, shipment_schema, [{"order_id": o, "carrier": c} for o, c in rows])

    orders([("o1", "lamp", 1, BASE + 1), ("o2", "desk", 2, BASE + 2), ("o3", "pen", 0, BASE + 3)])  # o3 fails WHERE
    shipments([("o4", "dhl")])  # its order comes later: no padded row ever
    args = recovery_store(tmp_path)
    bounded(run.path, kafka_bootstrap, args)

    def row(order: str, item: str, quantity: int, carrier: str | None, ts: int) -> bytes:
        return orjson.dumps({"order_id": order, "item": item, "quantity": quantity, "carrier": carrier,
                             "placed_at": format_timestamp_ms(ts)})

    def key(order: str) -> bytes:
        return orjson.dumps({"order_id": order})

    first = [(k, v) for k, v, _, _, _ in read_all(kafka_bootstrap, out_topic)]
    assert first == [(key("o1"), row("o1", "lamp", 1, None, BASE + 1)), (key("o2"), row("o2", "desk", 2, None, BASE + 2))]

    shipments([("o1", "ups")])  # o1's padded row is retracted: a tombstone, then the pair
    orders([("o4", "chair", 1, BASE + 4)])  # its shipment is in state: the pair at once
    bounded(run.path, kafka_bootstrap, args)
    second = [(k, v) for k, v, _, _, _ in read_all(kafka_bootstrap, out_topic)][len(first):]
    assert sorted(second, key=lambda kv: (kv[0], kv[1] is not None)) == [
        (key("o1"), None), (key("o1"), row("o1", "lamp", 1, "ups", BASE + 1)), (key("o4"), row("o4", "chair", 1, "dhl", BASE + 4))]
    assert second.index((key("o1"), None)) < second.index((key("o1"), row("o1", "lamp", 1, "ups", BASE + 1)))

    # what a compacting consumer keeps: the last value per key, a tombstone removing the key
    final: dict[bytes, bytes] = {}
    for k, v in first + second:
        if v is None:
            final.pop(k, None)
        else:
            final[k] = v
    assert final == {key("o1"): row("o1", "lamp", 1, "ups", BASE + 1), key("o2"): row("o2", "desk", 2, None, BASE + 2),
                     key("o4"): row("o4", "chair", 1, "dhl", BASE + 4)}
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, out_topic)
    assert admin.describe_configs([resource])[resource].result(timeout=10)["cleanup.policy"].value == "compact"
