"""FROM items and the columns they make visible.

A relation is a stream read as a table (`` `songs-stream` ``, `Songs`,
`` `songs-stream` AS s ``) or a filtered subquery over one
(`(SELECT * FROM s WHERE duration >= 30000) AS Plays`). A scope is the
relations of one SELECT; it decides what a column reference means:
qualified by an alias or a table name, or bare when exactly one relation
has it, as Flink (Calcite) resolves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.tokens import TokenType

from config.pipeline import SchemaField, StreamSpec
from config.sql.context import QueryContext, fields_of
from config.sql.parser import to_sql
from config.sql.predicate import unknown_column

SUBQUERY_SHAPE = "(SELECT * | <columns> FROM <stream> [WHERE ...]) AS <alias>"
SUBQUERY_CLAUSES = {"expressions", "from_", "where"}


@dataclass
class Relation:
    """A stream as one FROM item sees it.

    `columns` maps the visible names to the stream's fields (a subquery may
    rename them: `origin` gives the stream column of each); `filters` are
    the subquery's WHERE conditions, over the stream's own columns.
    """

    stream: StreamSpec
    name: str
    qualifiers: frozenset[str]
    columns: dict[str, SchemaField]
    origin: dict[str, str]
    node: exp.Expr
    filters: list[exp.Expr] = field(default_factory=list)
    inner: "Scope | None" = None  # how the subquery's own WHERE resolves its columns

    def column(self, name: str) -> SchemaField | None:
        return self.columns[name] if name in self.columns else None


class Scope:
    """The relations of one SELECT, for resolving column references."""

    def __init__(self, ctx: QueryContext, relations: list[Relation], clause: str = "SELECT") -> None:
        self.ctx = ctx
        self.relations = relations
        self.clause = clause

    def resolve(self, node: exp.Column, clause: str | None = None) -> tuple[int, str, SchemaField]:
        """(relation index, visible column name, field) of a column reference."""
        clause = clause or self.clause
        if node.args.get("db") or node.args.get("catalog"):
            raise self.ctx.error(
                f"column {to_sql(node)} has too many qualifiers", node, supported="<table or alias>.<column>"
            )
        name = node.name
        if node.table:
            matches = [i for i, r in enumerate(self.relations) if node.table in r.qualifiers]
            if not matches:
                known = [q for r in self.relations for q in sorted(r.qualifiers)]
                close = [q for q in known if q.lower() == node.table.lower()]
                hint = f"did you mean `{close[0]}`? " if close else ""
                raise self.ctx.error(
                    f"unknown table `{node.table}` in {to_sql(node)}",
                    node,
                    construct=node.table,
                    supported=f"{hint}the tables and aliases of this SELECT: {', '.join(known) or 'none'}",
                )
            if len(matches) > 1:
                raise self.ctx.error(
                    f"`{node.table}` names more than one table of this SELECT",
                    node,
                    construct=node.table,
                    supported="give each table its own alias: FROM a AS x JOIN b AS y",
                )
            index = matches[0]
            relation = self.relations[index]
            found = relation.column(name)
            if found is None:
                raise unknown_column(self.ctx.query, node, name, relation.name, relation.columns, clause)
            return index, name, found
        matches = [i for i, r in enumerate(self.relations) if name in r.columns and not _open_only(r, name)]
        if not matches:
            open_relations = [i for i, r in enumerate(self.relations) if r.stream.schema_pending]
            if len(open_relations) == 1 and len(self.relations) == 1:
                matches = open_relations
            elif open_relations:
                raise self.ctx.error(
                    f"column `{name}` must be qualified: the columns of"
                    f" {', '.join(self.relations[i].name for i in open_relations)} come from the schema registry at start",
                    node,
                    construct=name,
                    supported=f"<table or alias>.{name}",
                )
        if not matches:
            available = {c: f for r in self.relations for c, f in r.columns.items()}
            stream = " and ".join(r.name for r in self.relations)
            raise unknown_column(self.ctx.query, node, name, stream, available, clause)
        if len(matches) > 1:
            options = " or ".join(f"{self.relations[i].name}.{name}" for i in matches)
            raise self.ctx.error(
                f"column `{name}` is ambiguous: more than one table has it",
                node,
                construct=name,
                supported=f"qualify it: {options}",
            )
        index = matches[0]
        return index, name, self.relations[index].columns[name]


def _open_only(relation: Relation, name: str) -> bool:
    """A name an open (registry) relation would accept only because it accepts any."""
    return relation.stream.schema_pending and dict.__contains__(relation.columns, name) is False


def relation_of(ctx: QueryContext, item: exp.Expr) -> Relation:
    """A FROM item: a stream (with an optional alias) or a filtered subquery over one."""
    if isinstance(item, exp.Subquery):
        return _subquery(ctx, item)
    if isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
        stream = ctx.stream_of(item, "FROM", "read")
        alias = item.alias
        qualifiers = frozenset({alias} if alias else {item.name, *stream.table_names})
        columns = fields_of(stream)
        # Unaliased, it is shown by its schema's record name: what the Streaming Runtime called the table.
        shown = alias or (stream.schema_name if item.name == stream.name and stream.schema_name else item.name)
        return Relation(stream, shown, qualifiers, columns, {c: c for c in columns}, item)
    raise ctx.error(
        f"unsupported FROM item {to_sql(item)}",
        item,
        supported=f"a stream name, or {SUBQUERY_SHAPE}",
    )


def _subquery(ctx: QueryContext, item: exp.Subquery) -> Relation:
    select = item.this
    if not isinstance(select, exp.Select):
        raise ctx.error("a subquery in FROM must be a SELECT", item, supported=SUBQUERY_SHAPE)
    for key, value in select.args.items():
        if value and key not in SUBQUERY_CLAUSES:
            node = value[0] if isinstance(value, list) else value if isinstance(value, exp.Expr) else None
            raise ctx.error(
                f"a subquery in FROM takes SELECT, FROM and WHERE only, not {key.upper().rstrip('_')}",
                node,
                construct=key.upper().rstrip("_"),
                supported=SUBQUERY_SHAPE,
                offset=ctx.keyword_in(select, *_CLAUSE_TOKENS.get(key, ())) if key in _CLAUSE_TOKENS else None,
            )
    source = select.args.get("from_")
    if source is None:
        raise ctx.error("SELECT without FROM", select, supported=SUBQUERY_SHAPE, offset=ctx.keyword_before(select, TokenType.SELECT))
    if not (isinstance(source.this, exp.Table) and isinstance(source.this.this, exp.Identifier)):
        nested = isinstance(source.this, exp.Subquery)
        raise ctx.error(
            f"the subquery must read a stream, not {'another subquery' if nested else to_sql(source.this)}",
            source.this,
            construct="subquery" if nested else None,
            offset=ctx.keyword_before(source.this, TokenType.SELECT) if nested else None,
            supported=SUBQUERY_SHAPE + "; a windowed aggregate goes in a Window Top-N or its own Processor",
        )
    inner = relation_of(ctx, source.this)
    scope = Scope(ctx, [inner], "the subquery")
    columns: dict[str, SchemaField] = {}
    origin: dict[str, str] = {}
    for expression in select.expressions:
        value, alias = (expression.this, expression.alias) if isinstance(expression, exp.Alias) else (expression, None)
        if isinstance(value, exp.Star) or (isinstance(value, exp.Column) and isinstance(value.this, exp.Star)):
            for name, found in inner.columns.items():
                columns[name], origin[name] = found, inner.origin[name]
            if inner.stream.schema_pending:
                columns = type(inner.columns)(columns)  # still open: the registry's columns pass through
        elif isinstance(value, exp.Column):
            _, name, found = scope.resolve(value)
            out = alias or name
            if out in columns:
                raise ctx.error(f"duplicate column `{out}` in the subquery", expression, supported="distinct names (use AS)")
            columns[out], origin[out] = found, inner.origin.get(name, name)
        else:
            raise ctx.error(
                f"unsupported item {to_sql(value)} in a subquery in FROM",
                value,
                supported="*, or columns with an optional AS",
            )
    where = select.args.get("where")
    ctx.refuse_subqueries([where.this if where else None], "WHERE")
    alias = item.alias
    return Relation(
        inner.stream,
        alias or inner.name,
        frozenset({alias}) if alias else frozenset(),
        columns,
        origin,
        item,
        filters=[where.this] if where else [],
        inner=scope,
    )


_CLAUSE_TOKENS: dict[str, tuple[TokenType, ...]] = {
    "group": (TokenType.GROUP_BY,),
    "having": (TokenType.HAVING,),
    "joins": (TokenType.JOIN,),
    "order": (TokenType.ORDER_BY,),
    "limit": (TokenType.LIMIT, TokenType.FETCH),
    "distinct": (TokenType.DISTINCT,),
}
