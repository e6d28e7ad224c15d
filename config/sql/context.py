"""What every part of the query compiler shares: the query text and tokens,
the pipeline's streams, and errors that point at the place in the query."""

from __future__ import annotations

from typing import Iterable

from sqlglot import exp
from sqlglot.tokens import TokenType

from config.pipeline import Pipeline, QueryProcessor, SchemaField, StreamSpec
from config.sql.errors import SqlError
from config.sql.parser import ParsedQuery, offset_of, to_sql
from config.sql.predicate import ANY_TYPE

SHAPES = (
    "INSERT INTO <stream> SELECT ... FROM TABLE(TUMBLE|HOP|CUMULATE(TABLE <stream>, DESCRIPTOR(<time column>), "
    "INTERVAL ...)) [WHERE ...] GROUP BY window_start, window_end[, columns] [HAVING ...], "
    "INSERT INTO <stream> SELECT <columns> FROM <stream> [WHERE ...], "
    "a JOIN b ON a.k = b.k, or a Window Top-N (ROW_NUMBER() OVER (PARTITION BY window_start, window_end ...))"
)


def type_name(field: SchemaField) -> str:
    """A column's type as plans write it: Avro type, `_logical-type` appended."""
    return f"{field.type}_{field.logical_type}" if field.logical_type else field.type


def field_of_type(name: str, type_text: str) -> SchemaField:
    """The field a plan's type text (`long_timestamp-millis`) stands for."""
    base, _, logical = type_text.partition("_")
    return SchemaField(name, base, logical or None)


class OpenFields(dict):
    """The columns of a stream whose record schema is fetched from a registry
    at start: the known ones (metadata, time attributes), and any other name,
    typed `any`, to be checked again once the schema is known."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> SchemaField:
        return SchemaField(key, ANY_TYPE)

    def get(self, key: str, default: object = None) -> SchemaField:  # type: ignore[override]
        return self[key]


def fields_of(stream: StreamSpec) -> dict[str, SchemaField]:
    """A stream's columns by name (open when its schema is still to be fetched)."""
    known = {f.name: f for f in stream.fields}
    return OpenFields(known) if stream.schema_pending else known


class QueryContext:
    """One query being compiled."""

    def __init__(self, parsed: ParsedQuery, pipeline: Pipeline, processor: QueryProcessor | None = None) -> None:
        self.parsed = parsed
        self.query = parsed.text
        self.pipeline = pipeline
        self.processor = processor
        self.pending: list[str] = []  # streams read or written whose schema comes from a registry

    def error(
        self,
        message: str,
        node: exp.Expr | None = None,
        *,
        construct: str | None = None,
        supported: str | None = None,
        offset: int | None = None,
    ) -> SqlError:
        if offset is None and node is not None:
            offset = offset_of(node)
        if construct is None and node is not None:
            construct = to_sql(node)
        return SqlError(self.query, message, construct=construct, supported=supported, offset=offset)

    # -- positions of keywords, which the tree does not record ----------------

    def first_keyword(self, *token_types: TokenType) -> int | None:
        for token in self.parsed.tokens:
            if token.token_type in token_types:
                return token.start
        return None

    def keyword_before(self, node: exp.Expr, token_type: TokenType) -> int | None:
        """The last keyword of a kind before a node's first positioned part:
        where a subquery's SELECT is, since the tree does not record it."""
        start = offset_of(node)
        if start is None:
            return None
        before = [t.start for t in self.parsed.tokens if t.token_type == token_type and t.start <= start]
        return before[-1] if before else start

    def keyword_in(self, node: exp.Expr, *token_types: TokenType) -> int | None:
        """The first keyword of a kind inside a node's span (a clause of a nested SELECT)."""
        starts = [n.meta["start"] for n in node.walk() if n.meta and "start" in n.meta]
        ends = [n.meta["end"] for n in node.walk() if n.meta and "end" in n.meta]
        if not starts:
            return self.first_keyword(*token_types)
        low, high = min(starts), max(ends)
        select_start = self.keyword_before(node, TokenType.SELECT) if isinstance(node, exp.Select) else None
        low = min(low, select_start) if select_start is not None else low
        for token in self.parsed.tokens:
            if token.token_type in token_types and low <= token.start <= high:
                return token.start
        return None

    # -- streams ----------------------------------------------------------------

    def stream_of(self, table: exp.Expr, clause: str, mode: str) -> StreamSpec:
        """The stream a table name in the query means: its `metadata.name`
        (what [[STREAM:name]] became), else its schema's record name (the
        Streaming Runtime named Flink's table after it)."""
        supported = SHAPES if clause != "FROM" else "a stream name, or (SELECT ... FROM <stream> [WHERE ...]) AS alias"
        if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
            raise self.error(f"{clause} needs a stream name, not {to_sql(table)}", table, supported=supported)
        if table.args.get("db") or table.args.get("catalog"):
            raise self.error(
                f"qualified stream name {to_sql(table)} is not supported",
                table,
                supported=f"the Stream's name alone, `{table.name}`",
            )
        name = table.name
        stream = self.find_stream(name, table)
        if stream is None:
            known = ", ".join(f"`{s}`" for s in self.pipeline.streams) or "none"
            raise self.error(
                f"unknown stream `{name}` in {clause}",
                table,
                construct=name,
                supported=f"the pipeline's streams: {known}",
            )
        if mode == "write" and not stream.writable:
            raise self.error(
                f"stream `{stream.name}` is not writable (streamMode {sorted(stream.modes)})",
                table,
                construct=name,
                supported="a Stream whose streamMode includes write",
            )
        if mode == "read" and not stream.readable:
            raise self.error(
                f"stream `{stream.name}` is not readable (streamMode {sorted(stream.modes)})",
                table,
                construct=name,
                supported="a Stream whose streamMode includes read",
            )
        if mode == "read" and stream.upsert:
            raise self.error(
                f"stream `{stream.name}` is an upsert-kafka changelog; reading one is not supported",
                table,
                construct=name,
                supported="read an append-only kafka Stream",
            )
        if stream.schema_pending and stream.name not in self.pending:
            self.pending.append(stream.name)
        return stream

    def find_stream(self, name: str, node: exp.Expr | None = None) -> StreamSpec | None:
        stream = self.pipeline.streams.get(name)
        if stream is not None:
            return stream
        named = [s for s in self.pipeline.streams.values() if s.schema_name == name]
        if len(named) > 1:
            raise self.error(
                f"`{name}` is the schema name of several streams ({', '.join(s.name for s in named)})",
                node,
                construct=name,
                supported="name the stream with [[STREAM:<metadata.name>]]",
            )
        return named[0] if named else None

    def refuse_subqueries(self, nodes: Iterable[exp.Expr | None], where: str) -> None:
        """Subqueries and OVER windows inside expressions (WHERE, ON, HAVING, SELECT items)."""
        for root in nodes:
            if root is None:
                continue
            for node in root.walk():
                if isinstance(node, (exp.Select, exp.Subquery)):
                    raise self.error(
                        f"subqueries are not supported in {where}",
                        node,
                        construct="subquery",
                        offset=self.keyword_before(node, TokenType.SELECT),
                        supported="columns and literals; a filtered subquery goes in FROM: (SELECT * FROM s WHERE ...) AS a",
                    )
                if isinstance(node, exp.Window):
                    raise self.error(
                        f"window function {to_sql(node)} (OVER) is not supported here",
                        node,
                        construct="OVER",
                        offset=self.keyword_in(node, TokenType.OVER) or offset_of(node),
                        supported="ROW_NUMBER() OVER (PARTITION BY window_start, window_end ... ORDER BY ...) in a"
                        " Window Top-N over a windowed aggregate",
                    )

