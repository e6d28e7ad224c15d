"""Queries -> Plans, and the errors of the queries that cannot run.

Streams are built here directly, so these tests depend on nothing but the
SQL package. Expected plans are written out by hand; expected error
positions are found by searching the query text for the offending part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
import pytest

from config.pipeline import LOCAL_KAFKA, Pipeline, QueryProcessor, SchemaField, StreamSpec, TimeAttribute
from config.sql import SqlError, compile_query
from config.sql.plan import Plan

TS = SchemaField("ts", "long", "timestamp-millis")


def stream(name: str, *fields: SchemaField, modes: tuple[str, ...] = ("read",), time: str | None = None) -> StreamSpec:
    return StreamSpec(
        name=name,
        topic=name.removesuffix("-stream"),
        protocol="kafka",
        servers=LOCAL_KAFKA,
        modes=frozenset(modes),
        fields=fields,
        time_attribute=TimeAttribute(time, 3_000) if time else None,
    )


IOT = stream(
    "iot-monitoring-stream",
    *(SchemaField(n, "string") for n in ("error_code", "type", "application", "version", "description")),
    TS,
    time="ts",
)
ERROR_COUNT = stream(
    "error-count-stream",
    SchemaField("window_start", "long", "timestamp-millis"),
    SchemaField("window_end", "long", "timestamp-millis"),
    SchemaField("error_code", "string"),
    SchemaField("error_count", "long"),
    modes=("read", "write"),
)
SENSOR = stream(
    "sensor-stream",
    SchemaField("device", "string"),
    SchemaField("temperature", "double"),
    SchemaField("humidity", "float"),
    SchemaField("reading", "int"),
    SchemaField("ok", "boolean"),
    SchemaField("ingested", "long", "timestamp-millis"),
    TS,
    time="ts",
)
UNTIMED = stream("untimed-stream", SchemaField("error_code", "string"), SchemaField("ts", "long"))
OUT = stream("out", modes=("write",))  # no declared schema: any SELECT list fits
READ_ONLY = stream("read-only-stream", SchemaField("a", "string"))
WRITE_ONLY = stream("write-only-stream", SchemaField("error_code", "string"), modes=("write",))
AVG_OUT = stream(
    "avg-out",
    SchemaField("window_start", "long", "timestamp-millis"),
    SchemaField("window_end", "long", "timestamp-millis"),
    SchemaField("device", "string"),
    SchemaField("readings", "long"),
    modes=("write",),
)

PIPELINE = Pipeline(
    source_file="test.yaml",
    streams={s.name: s for s in (IOT, ERROR_COUNT, SENSOR, UNTIMED, OUT, READ_ONLY, WRITE_ONLY, AVG_OUT)},
    query_processors=(),
    udf_processors=(),
)

SEED_QUERY = """INSERT INTO `error-count-stream` 
  SELECT
    window_start, window_end, error_code, COUNT (*) AS error_count
  FROM
    TABLE(
      TUMBLE(
        TABLE `iot-monitoring-stream`,
        DESCRIPTOR (ts),
        INTERVAL '1' MINUTE
     )
   )
   WHERE type='ERROR'
   GROUP BY
     window_start, window_end, error_code"""

SEED_ONE_LINE = (
    "INSERT INTO `error-count-stream` "
    "SELECT window_start, window_end, error_code, COUNT(*) AS error_count "
    "FROM TABLE(TUMBLE(TABLE `iot-monitoring-stream`, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
    "WHERE type='ERROR' "
    "GROUP BY window_start, window_end, error_code"
)


def compile_text(query: str, pipeline: Pipeline = PIPELINE) -> Plan:
    return compile_query(QueryProcessor(name="q", query=query, raw_query=query), pipeline)


def tumble(stream_name: str, interval: str = "INTERVAL '1' MINUTE") -> str:
    return f"TABLE(TUMBLE(TABLE `{stream_name}`, DESCRIPTOR(ts), {interval}))"


WINDOW_COLUMNS = [
    ("window_start", "window_start", "window_start", "long_timestamp-millis"),
    ("window_end", "window_end", "window_end", "long_timestamp-millis"),
]


# -- the seed --------------------------------------------------------------------


def test_the_seed_query_compiles_to_filter_tumble_group_count_sink() -> None:
    plan = compile_text(SEED_QUERY)
    assert plan.source == "iot-monitoring-stream"
    assert plan.sink == "error-count-stream"
    assert plan.predicate is not None and plan.predicate.sql == "type = 'ERROR'"
    assert plan.predicate.columns == ("type",)
    assert (plan.window.kind, plan.window.time_column, plan.window.size_ms) == ("TUMBLE", "ts", 60 * 1000)
    assert plan.group_by == ("error_code",)
    assert [(a.function, a.column, a.alias, a.result_type) for a in plan.aggregates] == [
        ("COUNT", None, "error_count", "long")
    ]
    assert [c.name for c in plan.projection] == ["window_start", "window_end", "error_code", "error_count"]
    assert [(c.source, c.ref) for c in plan.projection] == [
        ("window_start", "window_start"),
        ("window_end", "window_end"),
        ("group", "error_code"),
        ("aggregate", "error_count"),
    ]
    assert set(plan.columns_needed) == {"ts", "type", "error_code"}


def test_the_seed_predicate_keeps_only_errors() -> None:
    predicate = compile_text(SEED_QUERY).predicate
    assert predicate is not None
    events = [{"type": t, "error_code": "C001_ABORTED"} for t in ("ERROR", "DEBUG", "INFO", "WARN", None)]
    assert [predicate.row(e) for e in events] == [True, False, False, False, False]
    frame = pl.DataFrame(events, schema={"type": pl.String, "error_code": pl.String})
    assert frame.filter(predicate.polars())["type"].to_list() == ["ERROR"]


def test_the_seed_describes_itself() -> None:
    lines = compile_text(SEED_QUERY).describe().splitlines()
    assert lines == [
        "source   iot-monitoring-stream",
        "filter   type = 'ERROR'",
        "window   TUMBLE on ts, size 60000 ms",
        "group by error_code",
        "aggregate COUNT(*) AS error_count",
        "select   window_start, window_end, error_code, error_count",
        "sink     error-count-stream",
    ]


def test_plans_are_immutable() -> None:
    plan = compile_text(SEED_QUERY)
    with pytest.raises(AttributeError):
        plan.sink = "elsewhere"  # type: ignore[misc]


# -- valid queries ---------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    source: str
    sink: str
    window: tuple | None  # (kind, time column, size, slide, step)
    group_by: tuple[str, ...] = ()
    aggregates: list[tuple] = field(default_factory=list)  # (function, column, alias, result type)
    projection: list[tuple] = field(default_factory=list)  # (name, source, ref, type)
    predicate: str | None = None
    predicate_columns: tuple[str, ...] = ()


VALID: dict[str, tuple[str, Expected]] = {
    "seed, one line as in the Processor resource": (
        SEED_ONE_LINE,
        Expected(
            "iot-monitoring-stream",
            "error-count-stream",
            ("TUMBLE", "ts", 60_000, None, None),
            ("error_code",),
            [("COUNT", None, "error_count", "long")],
            WINDOW_COLUMNS
            + [("error_code", "group", "error_code", "string"), ("error_count", "aggregate", "error_count", "long")],
            "type = 'ERROR'",
            ("type",),
        ),
    ),
    "HOP: slide then size, plural units": (
        "INSERT INTO `out` SELECT window_start, window_end, device, AVG(temperature) AS avg_temp "
        "FROM TABLE(HOP(TABLE `sensor-stream`, DESCRIPTOR(ts), INTERVAL '10' SECONDS, INTERVAL '1' MINUTES)) "
        "GROUP BY window_start, window_end, device",
        Expected(
            "sensor-stream",
            "out",
            ("HOP", "ts", 60_000, 10_000, None),
            ("device",),
            [("AVG", "temperature", "avg_temp", "double")],
            WINDOW_COLUMNS + [("device", "group", "device", "string"), ("avg_temp", "aggregate", "avg_temp", "double")],
        ),
    ),
    "CUMULATE: step then size": (
        "INSERT INTO `out` SELECT window_start, window_end, COUNT(*) AS n "
        "FROM TABLE(CUMULATE(TABLE `sensor-stream`, DESCRIPTOR(ts), INTERVAL '1' HOUR, INTERVAL '1' DAY)) "
        "GROUP BY window_start, window_end",
        Expected(
            "sensor-stream",
            "out",
            ("CUMULATE", "ts", 86_400_000, None, 3_600_000),
            (),
            [("COUNT", None, "n", "long")],
            WINDOW_COLUMNS + [("n", "aggregate", "n", "long")],
        ),
    ),
    "SUM/MIN/MAX/AVG/COUNT types over a numeric schema": (
        "INSERT INTO `out` SELECT device, window_start, SUM(reading) AS s_int, SUM(temperature) AS s_double, "
        "SUM(humidity) AS s_float, AVG(reading) AS a_int, MIN(temperature) AS lo, MAX(ts) AS last_ts, "
        "MIN(device) AS first_device, COUNT(device) AS devices, window_end "
        f"FROM {tumble('sensor-stream', chr(39).join(['INTERVAL ', '5', ' MINUTES']))} "
        "GROUP BY window_start, window_end, device",
        Expected(
            "sensor-stream",
            "out",
            ("TUMBLE", "ts", 300_000, None, None),
            ("device",),
            [
                ("SUM", "reading", "s_int", "long"),
                ("SUM", "temperature", "s_double", "double"),
                ("SUM", "humidity", "s_float", "double"),
                ("AVG", "reading", "a_int", "double"),
                ("MIN", "temperature", "lo", "double"),
                ("MAX", "ts", "last_ts", "long_timestamp-millis"),
                ("MIN", "device", "first_device", "string"),
                ("COUNT", "device", "devices", "long"),
            ],
            [
                ("device", "group", "device", "string"),
                WINDOW_COLUMNS[0],
                ("s_int", "aggregate", "s_int", "long"),
                ("s_double", "aggregate", "s_double", "double"),
                ("s_float", "aggregate", "s_float", "double"),
                ("a_int", "aggregate", "a_int", "double"),
                ("lo", "aggregate", "lo", "double"),
                ("last_ts", "aggregate", "last_ts", "long_timestamp-millis"),
                ("first_device", "aggregate", "first_device", "string"),
                ("devices", "aggregate", "devices", "long"),
                WINDOW_COLUMNS[1],
            ],
        ),
    ),
    "multi-column GROUP BY in another order than the SELECT list": (
        "INSERT INTO `out` SELECT window_start, window_end, application, error_code, COUNT(*) AS c "
        f"FROM {tumble('iot-monitoring-stream')} GROUP BY error_code, window_end, application, window_start",
        Expected(
            "iot-monitoring-stream",
            "out",
            ("TUMBLE", "ts", 60_000, None, None),
            ("error_code", "application"),
            [("COUNT", None, "c", "long")],
            WINDOW_COLUMNS
            + [
                ("application", "group", "application", "string"),
                ("error_code", "group", "error_code", "string"),
                ("c", "aggregate", "c", "long"),
            ],
        ),
    ),
    "aliases on window and group columns": (
        "INSERT INTO `out` SELECT window_start AS ws, window_end AS we, error_code AS code, COUNT(*) AS c "
        f"FROM {tumble('iot-monitoring-stream')} GROUP BY window_start, window_end, error_code",
        Expected(
            "iot-monitoring-stream",
            "out",
            ("TUMBLE", "ts", 60_000, None, None),
            ("error_code",),
            [("COUNT", None, "c", "long")],
            [
                ("ws", "window_start", "window_start", "long_timestamp-millis"),
                ("we", "window_end", "window_end", "long_timestamp-millis"),
                ("code", "group", "error_code", "string"),
                ("c", "aggregate", "c", "long"),
            ],
        ),
    ),
    "an aggregate without AS is named EXPR$<position>, as Flink names it": (
        f"INSERT INTO `out` SELECT window_start, COUNT(*), MAX(ts) FROM {tumble('iot-monitoring-stream')} "
        "GROUP BY window_start, window_end",
        Expected(
            "iot-monitoring-stream",
            "out",
            ("TUMBLE", "ts", 60_000, None, None),
            (),
            [("COUNT", None, "EXPR$1", "long"), ("MAX", "ts", "EXPR$2", "long_timestamp-millis")],
            [
                WINDOW_COLUMNS[0],
                ("EXPR$1", "aggregate", "EXPR$1", "long"),
                ("EXPR$2", "aggregate", "EXPR$2", "long_timestamp-millis"),
            ],
        ),
    ),
    "stateless filter and projection": (
        "INSERT INTO `out` SELECT error_code, application AS app, ts FROM `iot-monitoring-stream` "
        "WHERE type IN ('ERROR', 'WARN') AND application <> 'test'",
        Expected(
            "iot-monitoring-stream",
            "out",
            None,
            (),
            [],
            [
                ("error_code", "column", "error_code", "string"),
                ("app", "column", "application", "string"),
                ("ts", "column", "ts", "long_timestamp-millis"),
            ],
            "type IN ('ERROR', 'WARN') AND application <> 'test'",
            ("type", "application"),
        ),
    ),
    "stateless without WHERE, into a stream with a schema": (
        "INSERT INTO `write-only-stream` SELECT error_code FROM `untimed-stream`",
        Expected(
            "untimed-stream", "write-only-stream", None, (), [], [("error_code", "column", "error_code", "string")]
        ),
    ),
    "milliseconds": (
        f"INSERT INTO `out` SELECT window_start, COUNT(*) AS c FROM {tumble('sensor-stream', chr(39).join(['INTERVAL ', '500', ' MILLISECOND']))} "
        "GROUP BY window_start, window_end",
        Expected(
            "sensor-stream",
            "out",
            ("TUMBLE", "ts", 500, None, None),
            (),
            [("COUNT", None, "c", "long")],
            [WINDOW_COLUMNS[0], ("c", "aggregate", "c", "long")],
        ),
    ),
    "days and seconds beyond a minute": (
        "INSERT INTO `out` SELECT window_start, COUNT(*) AS c "
        "FROM TABLE(HOP(TABLE `sensor-stream`, DESCRIPTOR(ts), INTERVAL '90' SECOND, INTERVAL '2' DAYS)) "
        "GROUP BY window_start, window_end",
        Expected(
            "sensor-stream",
            "out",
            ("HOP", "ts", 2 * 86_400_000, 90_000, None),
            (),
            [("COUNT", None, "c", "long")],
            [WINDOW_COLUMNS[0], ("c", "aggregate", "c", "long")],
        ),
    ),
    "lower-case keywords": (
        "insert into `out` select window_start, window_end, count(*) as c "
        "from table(tumble(table `iot-monitoring-stream`, descriptor(ts), interval '3' hours)) "
        "where type = 'ERROR' group by window_start, window_end",
        Expected(
            "iot-monitoring-stream",
            "out",
            ("TUMBLE", "ts", 3 * 3_600_000, None, None),
            (),
            [("COUNT", None, "c", "long")],
            WINDOW_COLUMNS + [("c", "aggregate", "c", "long")],
            "type = 'ERROR'",
            ("type",),
        ),
    ),
    "backtick-quoted columns and a rich predicate": (
        "INSERT INTO `out` SELECT `device`, `temperature` FROM `sensor-stream` "
        "WHERE (`temperature` >= -10.5 OR `reading` != 3) AND `device` NOT LIKE 'test_%' AND humidity IS NOT NULL AND ok = TRUE",
        Expected(
            "sensor-stream",
            "out",
            None,
            (),
            [],
            [("device", "column", "device", "string"), ("temperature", "column", "temperature", "double")],
            "(`temperature` >= -10.5 OR `reading` <> 3) AND `device` NOT LIKE 'test_%' AND humidity IS NOT NULL AND ok = TRUE",
            ("temperature", "reading", "device", "humidity", "ok"),
        ),
    ),
    "comments and extra whitespace": (
        "-- errors per minute\nINSERT INTO `error-count-stream`\n\n  SELECT window_start, window_end, error_code,\n"
        "    COUNT(*) AS error_count -- the count\n"
        f"  FROM {tumble('iot-monitoring-stream')}\n  GROUP BY window_start, window_end, error_code\n",
        Expected(
            "iot-monitoring-stream",
            "error-count-stream",
            ("TUMBLE", "ts", 60_000, None, None),
            ("error_code",),
            [("COUNT", None, "error_count", "long")],
            WINDOW_COLUMNS
            + [("error_code", "group", "error_code", "string"), ("error_count", "aggregate", "error_count", "long")],
        ),
    ),
    "an int result widens into a declared long column": (
        "INSERT INTO `avg-out` SELECT window_start, window_end, device, MAX(reading) AS readings "
        f"FROM {tumble('sensor-stream')} GROUP BY window_start, window_end, device",
        Expected(
            "sensor-stream",
            "avg-out",
            ("TUMBLE", "ts", 60_000, None, None),
            ("device",),
            [("MAX", "reading", "readings", "int")],
            WINDOW_COLUMNS + [("device", "group", "device", "string"), ("readings", "aggregate", "readings", "int")],
        ),
    ),
    "COUNT(1) counts rows like COUNT(*)": (
        f"INSERT INTO `out` SELECT window_start, COUNT(1) AS c FROM {tumble('sensor-stream')} "
        "GROUP BY window_start, window_end",
        Expected(
            "sensor-stream",
            "out",
            ("TUMBLE", "ts", 60_000, None, None),
            (),
            [("COUNT", None, "c", "long")],
            [WINDOW_COLUMNS[0], ("c", "aggregate", "c", "long")],
        ),
    ),
    "a trailing semicolon": (
        SEED_ONE_LINE + ";",
        Expected(
            "iot-monitoring-stream",
            "error-count-stream",
            ("TUMBLE", "ts", 60_000, None, None),
            ("error_code",),
            [("COUNT", None, "error_count", "long")],
            WINDOW_COLUMNS
            + [("error_code", "group", "error_code", "string"), ("error_count", "aggregate", "error_count", "long")],
            "type = 'ERROR'",
            ("type",),
        ),
    ),
}


@pytest.mark.parametrize("query, expected", VALID.values(), ids=VALID.keys())
def test_valid_query_plans(query: str, expected: Expected) -> None:
    plan = compile_text(query)
    assert (plan.source, plan.sink) == (expected.source, expected.sink)
    window = plan.window and (
        plan.window.kind,
        plan.window.time_column,
        plan.window.size_ms,
        plan.window.slide_ms,
        plan.window.step_ms,
    )
    assert window == expected.window
    assert plan.group_by == expected.group_by
    assert [(a.function, a.column, a.alias, a.result_type) for a in plan.aggregates] == expected.aggregates
    assert [(c.name, c.source, c.ref, c.type) for c in plan.projection] == expected.projection
    assert (plan.predicate.sql if plan.predicate else None) == expected.predicate
    assert (plan.predicate.columns if plan.predicate else ()) == expected.predicate_columns


# -- invalid queries ---------------------------------------------------------------


def position(query: str, marker: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based line and column of the n-th occurrence of `marker` in `query`."""
    index = -1
    for _ in range(occurrence):
        index = query.index(marker, index + 1)
    before = query[:index]
    return before.count("\n") + 1, len(before.split("\n")[-1]) + 1


SELECT_SEED = "INSERT INTO `error-count-stream` SELECT window_start, window_end, error_code, COUNT(*) AS error_count "
WINDOWED_FROM = f"FROM {tumble('iot-monitoring-stream')} "
GROUP_SEED = "GROUP BY window_start, window_end, error_code"

# name: (query, text the message must contain, marker of the position, occurrence of the marker)
INVALID: dict[str, tuple[str, str, str, int]] = {
    "unknown input stream": (
        SELECT_SEED + "FROM TABLE(TUMBLE(TABLE `nope`, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) " + GROUP_SEED,
        "unknown stream `nope` in FROM",
        "`nope`",
        1,
    ),
    "unknown output stream": (
        "INSERT INTO `nowhere` SELECT error_code FROM `iot-monitoring-stream`",
        "unknown stream `nowhere` in INSERT INTO",
        "`nowhere`",
        1,
    ),
    "unknown column in SELECT": (
        "INSERT INTO `out` SELECT error_cod FROM `iot-monitoring-stream`",
        "unknown column `error_cod` in SELECT",
        "error_cod",
        1,
    ),
    "unknown column in a windowed SELECT": (
        f"INSERT INTO `out` SELECT window_start, window_time, COUNT(*) AS c {WINDOWED_FROM}GROUP BY window_start, window_end",
        "unknown column `window_time` in SELECT",
        "window_time",
        1,
    ),
    "unknown column in WHERE, with the right spelling suggested": (
        SELECT_SEED + WINDOWED_FROM + "WHERE Type = 'ERROR' " + GROUP_SEED,
        "did you mean `type`?",
        "Type",
        1,
    ),
    "unknown column in GROUP BY": (
        SELECT_SEED + WINDOWED_FROM + "GROUP BY window_start, window_end, error_code, severity",
        "unknown column `severity` in GROUP BY",
        "severity",
        1,
    ),
    "unknown column in DESCRIPTOR": (
        SELECT_SEED
        + "FROM TABLE(TUMBLE(TABLE `iot-monitoring-stream`, DESCRIPTOR(tss), INTERVAL '1' MINUTE)) "
        + GROUP_SEED,
        "unknown column `tss` in DESCRIPTOR",
        "tss",
        1,
    ),
    "unknown column in an aggregate": (
        f"INSERT INTO `out` SELECT window_start, SUM(temp) AS t FROM {tumble('sensor-stream')} GROUP BY window_start, window_end",
        "unknown column `temp` in SUM",
        "temp)",
        1,
    ),
    "DESCRIPTOR column is not the event-time attribute": (
        "INSERT INTO `out` SELECT window_start, COUNT(*) AS c "
        "FROM TABLE(TUMBLE(TABLE `sensor-stream`, DESCRIPTOR(ingested), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
        "DESCRIPTOR(ingested) is not the event-time attribute of `sensor-stream`; supported: DESCRIPTOR(ts)",
        "ingested",
        1,
    ),
    "windowing a stream without an event-time attribute": (
        "INSERT INTO `out` SELECT window_start, COUNT(*) AS c "
        "FROM TABLE(TUMBLE(TABLE `untimed-stream`, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
        "stream `untimed-stream` declares no event-time attribute",
        "ts)",
        1,
    ),
    "SUM of a string": (
        f"INSERT INTO `out` SELECT window_start, SUM(device) AS s FROM {tumble('sensor-stream')} GROUP BY window_start, window_end",
        "SUM(device) needs a numeric column; `device` is string",
        "SUM",
        1,
    ),
    "AVG of a timestamp": (
        f"INSERT INTO `out` SELECT window_start, AVG(ts) AS a FROM {tumble('sensor-stream')} GROUP BY window_start, window_end",
        "AVG(ts) needs a numeric column; `ts` is long_timestamp-millis",
        "AVG",
        1,
    ),
    "non-aggregated column missing from GROUP BY": (
        f"INSERT INTO `out` SELECT window_start, error_code, application, COUNT(*) AS c {WINDOWED_FROM}"
        "GROUP BY window_start, window_end, error_code",
        "column `application` is neither in GROUP BY nor aggregated",
        "application",
        1,
    ),
    "GROUP BY without window_end": (
        f"INSERT INTO `out` SELECT window_start, COUNT(*) AS c {WINDOWED_FROM}GROUP BY window_start",
        "window_end missing",
        "GROUP BY",
        1,
    ),
    "windowed query without GROUP BY": (
        f"INSERT INTO `out` SELECT window_start, error_code {WINDOWED_FROM}",
        "a windowed query must GROUP BY window_start, window_end",
        "TABLE(TUMBLE",
        1,
    ),
    "RIGHT JOIN": (
        "INSERT INTO `out` SELECT error_code FROM `iot-monitoring-stream` RIGHT JOIN `sensor-stream` ON error_code = device",
        "RIGHT JOIN is not supported; supported: swap the two inputs and write LEFT JOIN",
        "JOIN",
        1,
    ),
    "comma join": (
        "INSERT INTO `out` SELECT error_code FROM `iot-monitoring-stream`, `sensor-stream`",
        "a join without ON (a comma join) is not supported",
        "`sensor-stream`",
        1,
    ),
    "subquery in FROM over a subquery": (
        "INSERT INTO `out` SELECT error_code FROM (SELECT error_code FROM (SELECT * FROM `iot-monitoring-stream`))",
        "the subquery must read a stream, not another subquery",
        "SELECT",
        3,
    ),
    "subquery in WHERE": (
        "INSERT INTO `out` SELECT error_code FROM `iot-monitoring-stream`\n"
        "WHERE error_code IN (SELECT device FROM `sensor-stream`)",
        "subqueries are not supported",
        "SELECT",
        2,
    ),
    "ORDER BY": (
        SELECT_SEED + WINDOWED_FROM + GROUP_SEED + " ORDER BY error_count",
        "ORDER BY is not supported",
        "ORDER BY",
        1,
    ),
    "HAVING without a window": (
        "INSERT INTO `out` SELECT error_code FROM `iot-monitoring-stream`\nHAVING error_code = 'x'",
        "HAVING without a windowed GROUP BY is not supported",
        "HAVING",
        1,
    ),
    "LIMIT": (
        "INSERT INTO `out` SELECT error_code FROM `iot-monitoring-stream` LIMIT 10",
        "LIMIT is not supported",
        "LIMIT",
        1,
    ),
    "UNION": (
        "INSERT INTO `out` SELECT error_code FROM `iot-monitoring-stream` UNION ALL SELECT device FROM `sensor-stream`",
        "UNION is not supported",
        "UNION",
        1,
    ),
    "DISTINCT": (
        "INSERT INTO `out` SELECT DISTINCT error_code FROM `iot-monitoring-stream`",
        "SELECT DISTINCT is not supported",
        "DISTINCT",
        1,
    ),
    "COUNT(DISTINCT ...)": (
        f"INSERT INTO `out` SELECT window_start, COUNT(DISTINCT error_code) AS c {WINDOWED_FROM}GROUP BY window_start, window_end",
        "COUNT(DISTINCT ...) is not supported",
        "COUNT",
        1,
    ),
    "window function OVER": (
        "INSERT INTO `out` SELECT device, SUM(reading) OVER (PARTITION BY device ORDER BY ts) AS s FROM `sensor-stream`",
        "(OVER) is not supported",
        "OVER",
        1,
    ),
    "SELECT list types do not match the output schema": (
        "INSERT INTO `error-count-stream` SELECT window_start, window_end, error_code, MIN(application) AS error_count "
        + WINDOWED_FROM
        + GROUP_SEED,
        "column `error_count` is string, stream `error-count-stream` declares long",
        "MIN(application)",
        1,
    ),
    "SELECT list shorter than the output schema": (
        "INSERT INTO `error-count-stream` SELECT window_start, window_end, COUNT(*) AS error_count "
        + WINDOWED_FROM
        + "GROUP BY window_start, window_end",
        "the SELECT list has 3 column(s), stream `error-count-stream` declares 4",
        "SELECT",
        1,
    ),
    "output stream is not writable": (
        "INSERT INTO `read-only-stream` SELECT a FROM `read-only-stream`",
        "stream `read-only-stream` is not writable",
        "`read-only-stream`",
        1,
    ),
    "input stream is not readable": (
        "INSERT INTO `out` SELECT error_code FROM `write-only-stream`",
        "stream `write-only-stream` is not readable",
        "`write-only-stream`",
        1,
    ),
    "syntax error: unclosed parenthesis": (
        "INSERT INTO `out` SELECT error_code FROM `iot-monitoring-stream`\nWHERE (type = 'ERROR'",
        "syntax error: Expecting )",
        "'ERROR'",
        1,
    ),
    "syntax error on the third line": (
        "INSERT INTO `out`\nSELECT error_code\nFROM `iot-monitoring-stream` WHERE type = = 'x'",
        "syntax error",
        "= 'x'",
        1,
    ),
    "unterminated string": (
        "INSERT INTO `out` SELECT error_code FROM `iot-monitoring-stream` WHERE type = 'ERROR",
        "unterminated string",
        "'ERROR",
        1,
    ),
    "SELECT * in a windowed aggregate": (
        f"INSERT INTO `out` SELECT * {WINDOWED_FROM}GROUP BY window_start, window_end",
        "SELECT * is not supported in a windowed aggregate",
        "*",
        1,
    ),
    "HOP size not a multiple of the slide": (
        "INSERT INTO `out` SELECT window_start, COUNT(*) AS c "
        "FROM TABLE(HOP(TABLE `sensor-stream`, DESCRIPTOR(ts), INTERVAL '7' SECOND, INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
        "HOP size (60000 ms) must be a whole multiple of the slide (7000 ms)",
        "INTERVAL '1'",
        1,
    ),
    "TUMBLE with an offset": (
        "INSERT INTO `out` SELECT window_start, COUNT(*) AS c "
        "FROM TABLE(TUMBLE(TABLE `sensor-stream`, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '5' SECOND)) "
        "GROUP BY window_start, window_end",
        "window offsets are not supported",
        "INTERVAL '5'",
        1,
    ),
    "HOP with one interval": (
        "INSERT INTO `out` SELECT window_start, COUNT(*) AS c "
        "FROM TABLE(HOP(TABLE `sensor-stream`, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
        "HOP takes 2 interval argument(s) after DESCRIPTOR, found 1",
        "HOP",
        1,
    ),
    "unsupported interval unit": (
        f"INSERT INTO `out` SELECT window_start, COUNT(*) AS c FROM {tumble('sensor-stream', chr(39).join(['INTERVAL ', '1', ' MONTH']))} "
        "GROUP BY window_start, window_end",
        "unsupported interval INTERVAL '1' MONTH",
        "INTERVAL",
        1,
    ),
    "aggregate in a stateless query": (
        "INSERT INTO `out` SELECT COUNT(*) AS c FROM `iot-monitoring-stream`",
        "COUNT needs a window",
        "COUNT",
        1,
    ),
    "GROUP BY in a stateless query": (
        "INSERT INTO `out` SELECT error_code FROM `iot-monitoring-stream` GROUP BY error_code",
        "GROUP BY without a window function",
        "GROUP BY",
        1,
    ),
    "not an INSERT": (
        "SELECT error_code FROM `iot-monitoring-stream`",
        "a SELECT statement cannot run as a streaming query",
        "SELECT",
        1,
    ),
    "unsupported function": (
        "INSERT INTO `out` SELECT UPPER(error_code) AS e FROM `iot-monitoring-stream`",
        "unsupported function UPPER",
        "UPPER",
        1,
    ),
    "comparing a string column with a number": (
        "INSERT INTO `out` SELECT error_code FROM `iot-monitoring-stream` WHERE type = 1",
        "cannot compare string with number",
        "type = 1",
        1,
    ),
    "LIKE on a number": (
        "INSERT INTO `out` SELECT device FROM `sensor-stream` WHERE reading LIKE '1%'",
        "LIKE needs a string",
        "reading LIKE",
        1,
    ),
    "window function without TABLE(...)": (
        "INSERT INTO `out` SELECT window_start, COUNT(*) AS c "
        "FROM TUMBLE(TABLE `sensor-stream`, DESCRIPTOR(ts), INTERVAL '1' MINUTE) GROUP BY window_start, window_end",
        "TUMBLE(...) must be wrapped in TABLE(...)",
        "TUMBLE",
        1,
    ),
    "unknown table qualifier": (
        "INSERT INTO `out` SELECT t.error_code FROM `iot-monitoring-stream` AS s",
        "unknown table `t` in t.error_code",
        "t.error_code",
        1,
    ),
    "window function without TABLE before the stream": (
        "INSERT INTO `out` SELECT window_start FROM TABLE(TUMBLE(`iot-monitoring-stream`, DESCRIPTOR(ts), "
        "INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
        "Expecting TABLE <stream> as the first argument of TUMBLE",
        "`iot-monitoring-stream`",
        1,
    ),
    "window function without DESCRIPTOR": (
        "INSERT INTO `out` SELECT window_start FROM TABLE(TUMBLE(TABLE `iot-monitoring-stream`, ts, "
        "INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
        "Expecting DESCRIPTOR(<time column>) as the second argument of TUMBLE",
        "ts,",
        1,
    ),
    "window function left open": (
        "INSERT INTO `out` SELECT window_start FROM TABLE(TUMBLE(TABLE `iot-monitoring-stream`, DESCRIPTOR(ts), "
        "INTERVAL '1' MINUTE\nGROUP BY window_start, window_end",
        "Expecting ) to close TUMBLE",
        "GROUP",
        1,
    ),
    "two statements": (
        "INSERT INTO `out` SELECT error_code FROM `iot-monitoring-stream`; INSERT INTO `out` SELECT device FROM `sensor-stream`",
        "expected exactly one statement, found 2",
        ";",
        1,
    ),
    "duplicate output names": (
        "INSERT INTO `out` SELECT error_code, type AS error_code FROM `iot-monitoring-stream`",
        "duplicate output column `error_code`",
        "type AS",
        1,
    ),
}


@pytest.mark.parametrize("query, message, marker, occurrence", INVALID.values(), ids=INVALID.keys())
def test_invalid_query_errors(query: str, message: str, marker: str, occurrence: int) -> None:
    with pytest.raises(SqlError) as caught:
        compile_text(query)
    error = caught.value
    assert message in str(error)
    assert (error.line, error.column) == position(query, marker, occurrence)
    assert str(error).startswith(f"line {error.line}, column {error.column}: ")


def test_enough_cases() -> None:
    assert len(VALID) + len(INVALID) >= 30


def test_error_in_the_multi_line_seed_points_at_its_line() -> None:
    query = SEED_QUERY.replace("DESCRIPTOR (ts)", "DESCRIPTOR (error_code)")
    with pytest.raises(SqlError) as caught:
        compile_text(query)
    assert (caught.value.line, caught.value.column) == (8, len("        DESCRIPTOR (") + 1)
    assert caught.value.excerpt().splitlines() == ["        DESCRIPTOR (error_code),", " " * 20 + "^"]


def test_the_query_drives_the_plan() -> None:
    """Changing the query text changes what runs."""
    changed = SEED_QUERY.replace("TUMBLE", "HOP").replace(
        "INTERVAL '1' MINUTE", "INTERVAL '15' SECOND, INTERVAL '1' MINUTE"
    )
    changed = changed.replace("type='ERROR'", "type='WARN'")
    plan = compile_text(changed)
    assert (plan.window.kind, plan.window.slide_ms, plan.window.size_ms) == ("HOP", 15_000, 60_000)
    assert (
        plan.predicate is not None
        and plan.predicate.row({"type": "WARN"})
        and not plan.predicate.row({"type": "ERROR"})
    )


def test_error_positions_refer_to_the_query_as_written_with_placeholders() -> None:
    raw = (
        "INSERT INTO [[STREAM:error-count-stream]]\n"
        "SELECT window_start, window_end, error_code, COUNT(*) AS error_count\n"
        "FROM TABLE(TUMBLE(TABLE [[STREAM:iot-monitoring-stream]], DESCRIPTOR(ts), INTERVAL '1' MINUTE))\n"
        "WHERE typ = 'ERROR' GROUP BY window_start, window_end, error_code"
    )
    resolved = raw.replace("[[STREAM:error-count-stream]]", "`error-count-stream`")
    resolved = resolved.replace("[[STREAM:iot-monitoring-stream]]", "`iot-monitoring-stream`")
    with pytest.raises(SqlError) as caught:
        compile_query(QueryProcessor(name="q", query=resolved, raw_query=raw), PIPELINE)
    assert (caught.value.line, caught.value.column) == position(raw, "typ =")
    assert caught.value.excerpt().splitlines()[0] == raw.splitlines()[3]

    unknown = raw.replace("iot-monitoring-stream", "missing-stream")
    with pytest.raises(SqlError) as caught:
        compile_query(
            QueryProcessor(
                name="q",
                query=unknown.replace("[[STREAM:missing-stream]]", "`missing-stream`").replace(
                    "[[STREAM:error-count-stream]]", "`error-count-stream`"
                ),
                raw_query=unknown,
            ),
            PIPELINE,
        )
    assert "unknown stream `missing-stream`" in str(caught.value)
    assert (caught.value.line, caught.value.column) == position(unknown, "[[STREAM:missing-stream]]")
