"""The WHERE clause, compiled once into a row check and a polars expression.

The tree is walked here, at compile time, and never again: each node
becomes a closure, so checking an event is a few Python calls with no
dispatch on node types. The same walk builds a function that returns the
equivalent `polars.Expr`, for filtering a decoded batch at once.

Both follow SQL's three-valued logic. Inside the row closures a value is
True, False or None (unknown); a comparison with NULL is unknown, AND/OR/NOT
follow Kleene's tables, and the outermost check counts unknown as false, as
a WHERE clause does. polars' boolean operators have the same tables, and
`DataFrame.filter` drops rows whose condition is null.

Floating-point comparisons are IEEE's, as in Flink (Java's `<`, `==` on
doubles) and in the row check: a comparison with NaN is false, except `<>`,
which is true, and -0.0 equals 0.0. polars orders NaN above every number
and makes NaN equal to NaN, so its expression is corrected where a float
column is NaN.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from functools import reduce
from typing import Any, Callable, Literal, Mapping

import polars as pl
from sqlglot import exp

from config.pipeline import SchemaField
from config.sql.errors import SqlError
from config.sql.parser import offset_of, to_sql
from config.sql.plan import Predicate

Kind = Literal["string", "number", "boolean", "bytes", "null", "any"]
RowFunction = Callable[[Mapping[str, Any]], Any]
PolarsBuilder = Callable[[], pl.Expr]
ColumnResolver = Callable[[exp.Column], tuple[str, SchemaField]]
"""Maps a column of the query to the key the row and the frame hold it under,
and its field; raises `SqlError` for an unknown or ambiguous column."""

ANY_TYPE = "any"
"""The type of a column whose schema is not known yet (a registry subject
fetched at start): it compares with anything, and is checked again then."""

SUPPORTED = (
    "=, <>, !=, <, <=, >, >=, AND, OR, NOT, [NOT] IN (literals), [NOT] LIKE 'pattern' [ESCAPE 'c'], "
    "IS [NOT] NULL, parentheses, columns, string/number/TRUE/FALSE/NULL literals"
)

COMPARISONS: dict[type[exp.Expr], tuple[Callable[[Any, Any], bool], Callable[[pl.Expr, pl.Expr], pl.Expr]]] = {
    exp.EQ: (operator.eq, operator.eq),
    exp.NEQ: (operator.ne, operator.ne),
    exp.LT: (operator.lt, operator.lt),
    exp.LTE: (operator.le, operator.le),
    exp.GT: (operator.gt, operator.gt),
    exp.GTE: (operator.ge, operator.ge),
}
ORDERED = (exp.LT, exp.LTE, exp.GT, exp.GTE)
POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "boolean": pl.Boolean(),
    "int": pl.Int64(),
    "long": pl.Int64(),
    "float": pl.Float64(),
    "double": pl.Float64(),
}


@dataclass(frozen=True)
class _Term:
    """One compiled node: how to evaluate it per row, how to build it in
    polars, and its kind, so that mismatched comparisons fail at compile time."""

    row: RowFunction
    polars: PolarsBuilder
    kind: Kind
    constant: Any = None
    is_constant: bool = False
    floating: bool = False  # a float or double column: its values may be NaN


def compile_predicate(
    node: exp.Expr,
    fields: Mapping[str, SchemaField],
    query: str,
    stream: str,
    resolve: ColumnResolver | None = None,
    sql: str | None = None,
) -> Predicate:
    """Compile a WHERE condition over the columns of `stream`.

    `resolve`, when given, decides what a column means (qualified names,
    several tables, aggregates standing in for HAVING); by default a bare
    column is looked up in `fields`. `sql` is the text to show, when `node`
    is a rewritten tree. Raises `SqlError` (with the position of the
    offending part) for unknown columns, type mismatches, and any construct
    outside `SUPPORTED`.
    """
    compiler = _Compiler(fields, query, stream, resolve)
    term = compiler.condition(node)
    inner = term.row

    def row(values: Mapping[str, Any]) -> bool:
        return inner(values) is True

    return Predicate(
        sql=sql if sql is not None else to_sql(node),
        columns=tuple(dict.fromkeys(compiler.columns)),
        row=row,
        polars=term.polars,
    )


class _Compiler:
    def __init__(
        self, fields: Mapping[str, SchemaField], query: str, stream: str, resolve: ColumnResolver | None = None
    ) -> None:
        self.fields = fields
        self.query = query
        self.stream = stream
        self.resolve = resolve
        self.columns: list[str] = []

    # -- errors -------------------------------------------------------------

    def error(self, node: exp.Expr, message: str, supported: str | None = SUPPORTED) -> SqlError:
        return SqlError(self.query, message, construct=to_sql(node), supported=supported, offset=offset_of(node))

    # -- boolean terms -----------------------------------------------------

    def condition(self, node: exp.Expr) -> _Term:
        """A node in a boolean position."""
        if isinstance(node, exp.Paren):
            return self.condition(node.this)
        if isinstance(node, (exp.And, exp.Or)):
            return self.connective(node)
        if isinstance(node, exp.Not):
            return self.negation(self.condition(node.this))
        if type(node) in COMPARISONS:
            return self.comparison(node)
        if isinstance(node, exp.In):
            return self.membership(node)
        if isinstance(node, (exp.Like, exp.Escape)):
            return self.like(node)
        if isinstance(node, exp.Is):
            return self.is_null(node)
        if isinstance(node, exp.Null):
            return _Term(lambda record: None, lambda: pl.lit(None, dtype=pl.Boolean), "boolean", None, True)
        if isinstance(node, (exp.Column, exp.Boolean)):
            term = self.operand(node)
            if term.kind not in ("boolean", "any"):
                raise self.error(node, f"{to_sql(node)} is a {term.kind}, not a condition")
            return term
        raise self.error(node, f"unsupported expression in WHERE: {to_sql(node)}")

    def connective(self, node: exp.And | exp.Or) -> _Term:
        kind = type(node)
        parts: list[exp.Expr] = []
        self._flatten(node, kind, parts)
        terms = [self.condition(part) for part in parts]
        rows = tuple(t.row for t in terms)
        builders = tuple(t.polars for t in terms)
        if kind is exp.And:
            return _Term(_all_of(rows), lambda: reduce(operator.and_, (b() for b in builders)), "boolean")
        return _Term(_any_of(rows), lambda: reduce(operator.or_, (b() for b in builders)), "boolean")

    def _flatten(self, node: exp.Expr, kind: type, out: list[exp.Expr]) -> None:
        # Flattening a chain of one connective keeps evaluation iterative and lets
        # the row check stop at the first deciding operand.
        if type(node) is kind:
            self._flatten(node.this, kind, out)
            self._flatten(node.expression, kind, out)
        else:
            out.append(node)

    @staticmethod
    def negation(term: _Term) -> _Term:
        inner, build = term.row, term.polars

        def row(values: Mapping[str, Any]) -> Any:
            result = inner(values)
            return None if result is None else not result

        return _Term(row, lambda: ~build(), "boolean")

    def comparison(self, node: exp.Expr) -> _Term:
        left, right = self.operand(node.this), self.operand(node.expression)
        self.check_comparable(node, left, right, ordered=isinstance(node, ORDERED))
        python_op, _ = COMPARISONS[type(node)]
        return _Term(_compare(python_op, left, right), lambda: _polars_compare(type(node), left, right), "boolean")

    def membership(self, node: exp.In) -> _Term:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise self.error(node, f"unsupported IN: {to_sql(node)}", supported="IN (literal, literal, ...)")
        subject = self.operand(node.this)
        items = [self.operand(item) for item in node.expressions]
        for item_node, item in zip(node.expressions, items, strict=True):
            if not item.is_constant:
                raise self.error(
                    item_node, f"IN lists take literals only, not {to_sql(item_node)}", "IN (literal, literal, ...)"
                )
            self.check_comparable(node, subject, item, ordered=False)
        values = [item.constant for item in items]
        has_null = any(value is None for value in values)
        present = frozenset(value for value in values if value is not None)
        get = subject.row

        def row(record: Mapping[str, Any]) -> Any:
            value = get(record)
            if value is None:
                return None
            if value in present:
                return True
            return None if has_null else False

        def build() -> pl.Expr:
            # x IN (a, b) is x = a OR x = b in SQL, NULLs included; spelling it
            # that way keeps polars' null handling identical to the row check.
            return reduce(operator.or_, (_polars_compare(exp.EQ, subject, item) for item in items))

        return _Term(row, build, "boolean")

    def like(self, node: exp.Like | exp.Escape) -> _Term:
        escape: str | None = None
        if isinstance(node, exp.Escape):
            escape_term = self.operand(node.expression)
            if escape_term.kind != "string" or not escape_term.is_constant or len(escape_term.constant) != 1:
                raise self.error(node.expression, "ESCAPE takes a one-character string", "ESCAPE 'c'")
            escape = escape_term.constant
            node = node.this
            if not isinstance(node, exp.Like):
                raise self.error(node, f"unsupported expression in WHERE: {to_sql(node)}")
        if node.args.get("negate"):
            positive = node.copy()
            positive.set("negate", None)
            return self.negation(self._like(positive, escape))
        return self._like(node, escape)

    def _like(self, node: exp.Like, escape: str | None) -> _Term:
        subject = self.operand(node.this)
        pattern = self.operand(node.expression)
        if subject.kind not in ("string", "null", "any"):
            raise self.error(
                node.this,
                f"LIKE needs a string, {to_sql(node.this)} is a {subject.kind}",
                "string_column LIKE 'pattern'",
            )
        if not pattern.is_constant or pattern.kind not in ("string", "null"):
            raise self.error(node.expression, "the LIKE pattern must be a string literal", "column LIKE 'pattern'")
        if pattern.constant is None:
            return _Term(lambda record: None, lambda: pl.lit(None, dtype=pl.Boolean), "boolean")
        body = like_to_regex(pattern.constant, escape, self.query, offset_of(node.expression))
        matcher = re_compile_fullmatch(body)
        get = subject.row

        def row(record: Mapping[str, Any]) -> Any:
            value = get(record)
            return None if value is None else matcher(value) is not None

        return _Term(row, lambda: subject.polars().str.contains(f"^(?s:{body})$"), "boolean")

    def is_null(self, node: exp.Is) -> _Term:
        if not isinstance(node.expression, exp.Null):
            raise self.error(node, f"unsupported IS: {to_sql(node)}", "IS NULL, IS NOT NULL")
        subject = self.operand(node.this)
        get = subject.row
        return _Term(lambda record: get(record) is None, lambda: subject.polars().is_null(), "boolean")

    # -- value terms ---------------------------------------------------------

    def operand(self, node: exp.Expr) -> _Term:
        """A value: column or literal (a parenthesized one too)."""
        if isinstance(node, exp.Paren):
            return self.operand(node.this)
        if isinstance(node, exp.Column):
            return self.column(node)
        if isinstance(node, exp.Literal):
            value = node.this if node.is_string else _number(node.this)
            return _constant(value, "string" if node.is_string else "number")
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
            return _constant(-_number(node.this.this), "number")
        if isinstance(node, exp.Boolean):
            return _constant(bool(node.this), "boolean")
        if isinstance(node, exp.Null):
            return _constant(None, "null")
        if isinstance(node, (exp.Subquery, exp.Select)):
            raise self.error(node, "subqueries are not supported", "columns and literals in WHERE")
        raise self.error(
            node,
            f"unsupported value in WHERE: {to_sql(node)}",
            "columns and literals (no arithmetic, functions or casts)",
        )

    def column(self, node: exp.Column) -> _Term:
        if self.resolve is not None:
            key, resolved = self.resolve(node)
            return self._column_term(key, resolved)
        if node.table:
            raise self.error(
                node, f"qualified column {to_sql(node)} is not supported", f"the bare column name `{node.name}`"
            )
        name = node.name
        field = self.fields.get(name)
        if field is None:
            raise unknown_column(self.query, node, name, self.stream, self.fields, "WHERE")
        return self._column_term(name, field)

    def _column_term(self, name: str, field: SchemaField) -> _Term:
        self.columns.append(name)
        # Cast to the declared type: a batch whose column is all NULL has
        # polars dtype Null, on which string functions such as LIKE fail.
        dtype = POLARS_TYPES.get(field.type, pl.Binary)
        return _Term(lambda record: record.get(name), lambda: pl.col(name).cast(dtype), kind_of(field),
                     floating=field.type in ("float", "double"))

    def check_comparable(self, node: exp.Expr, left: _Term, right: _Term, ordered: bool) -> None:
        kinds = {left.kind, right.kind} - {"null", "any"}
        if len(kinds) > 1:
            raise self.error(
                node,
                f"cannot compare {left.kind} with {right.kind} in {to_sql(node)}",
                "comparisons between values of the same kind (string with string, number with number)",
            )
        if ordered and kinds & {"boolean", "bytes"}:
            raise self.error(node, f"{kinds.pop()} values have no order in {to_sql(node)}", "= and <> for booleans")


def kind_of(field: SchemaField) -> Kind:
    """How a column compares: timestamps are numbers in their declared unit (millis, micros)."""
    if field.type == ANY_TYPE:
        return "any"
    if field.type == "string":
        return "string"
    if field.type == "boolean":
        return "boolean"
    if field.type in ("int", "long", "float", "double"):
        return "number"
    return "bytes"


def unknown_column(
    query: str, node: exp.Expr, name: str, stream: str, fields: Mapping[str, SchemaField], clause: str
) -> SqlError:
    """The error for a column the stream does not have, with its columns listed."""
    available = ", ".join(fields) or "(no declared columns)"
    close = [f for f in fields if f.lower() == name.lower()]
    hint = f"did you mean `{close[0]}`? " if close else ""
    return SqlError(
        query,
        f"unknown column `{name}` in {clause}: stream `{stream}` has no such column",
        construct=name,
        supported=f"{hint}columns of `{stream}`: {available}",
        offset=offset_of(node),
    )


def like_to_regex(pattern: str, escape: str | None, query: str, offset: int | None) -> str:
    """A LIKE pattern as a regular expression body both Python's `re` and
    polars (Rust `regex`) read the same way: `%` any run, `_` one character."""
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if escape is not None and char == escape:
            following = next(chars, None)
            if following is None:
                raise SqlError(query, f"LIKE pattern {pattern!r} ends with its escape character", offset=offset)
            out.append(_regex_literal(following))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(_regex_literal(char))
    return "".join(out)


# Characters with a meaning in either regex dialect; escaping them with a
# backslash is valid in both, escaping anything else is not.
_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~")


def _regex_literal(char: str) -> str:
    return "\\" + char if char in _REGEX_META else char


def re_compile_fullmatch(body: str) -> Callable[[str], Any]:
    return re.compile(body, re.DOTALL).fullmatch


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _constant(value: Any, kind: Kind) -> _Term:
    return _Term(lambda record: value, lambda: pl.lit(value), kind, constant=value, is_constant=True)


def _compare(op: Callable[[Any, Any], bool], left: _Term, right: _Term) -> RowFunction:
    """The row check of a comparison, specialised for the common column-vs-literal case."""
    if right.is_constant:
        constant, get = right.constant, left.row
        if constant is None:
            return lambda record: None

        def column_vs_literal(record: Mapping[str, Any]) -> Any:
            value = get(record)
            return None if value is None else op(value, constant)

        return column_vs_literal
    get_left, get_right = left.row, right.row

    def general(record: Mapping[str, Any]) -> Any:
        a = get_left(record)
        if a is None:
            return None
        b = get_right(record)
        return None if b is None else op(a, b)

    return general


def _polars_compare(kind: type[exp.Expr], left: _Term, right: _Term) -> pl.Expr:
    """`left <op> right` in polars with IEEE's answer where a float side is NaN
    (false, or true for `<>`); NULL on either side stays unknown."""
    a, b = left.polars(), right.polars()
    compared = COMPARISONS[kind][1](a, b)
    nan = [t.polars().is_nan() for t in (left, right) if t.floating]
    if not nan:
        return compared
    return (
        pl.when(a.is_null() | b.is_null()).then(pl.lit(None, dtype=pl.Boolean))
        .when(reduce(operator.or_, nan)).then(pl.lit(kind is exp.NEQ))
        .otherwise(compared)
    )


def _all_of(parts: tuple[RowFunction, ...]) -> RowFunction:
    def row(record: Mapping[str, Any]) -> Any:
        unknown = False
        for part in parts:
            result = part(record)
            if result is False:
                return False
            if result is None:
                unknown = True
        return None if unknown else True

    return row


def _any_of(parts: tuple[RowFunction, ...]) -> RowFunction:
    def row(record: Mapping[str, Any]) -> Any:
        unknown = False
        for part in parts:
            result = part(record)
            if result is True:
                return True
            if result is None:
                unknown = True
        return None if unknown else False

    return row
