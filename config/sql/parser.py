"""Flink streaming SQL -> a sqlglot syntax tree.

sqlglot has no Flink dialect, and none of its dialects reads Flink's window
table-valued functions, `TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL ...)`: the
`TABLE t` argument and the `DESCRIPTOR(...)` pseudo-function are Flink's own.
So this module defines a small dialect that tokenizes like Flink (backtick
identifiers, single-quoted strings) and teaches the parser those three
functions; everything else is sqlglot's standard SQL grammar. The checks of
what the engine supports live in `config.sql.compile`, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp, parser, tokens
from sqlglot import generator as generator_module
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from config.sql.errors import SqlError

WINDOW_FUNCTIONS = ("TUMBLE", "HOP", "CUMULATE")


class WindowTableFunction(exp.Expression):
    """`TUMBLE|HOP|CUMULATE(TABLE <this>, DESCRIPTOR(<descriptor>), <expressions>...)`.

    `expressions` keeps every argument after the descriptor as written (the
    intervals); counting and reading them is the compiler's job, so that a
    wrong argument gets an error about its meaning rather than its syntax.
    """

    arg_types = {"kind": True, "this": True, "descriptor": True, "expressions": False}

    @property
    def kind(self) -> str:
        return self.args["kind"]


class MetadataColumn(exp.Expression, exp.ColumnConstraintKind):
    """`METADATA [FROM 'key'] [VIRTUAL]` of a Flink `CREATE TABLE` column."""

    arg_types = {"this": False, "virtual": False}


class WatermarkDefinition(exp.Expression):
    """`WATERMARK FOR <column> AS <expression>` of a Flink `CREATE TABLE`."""

    arg_types = {"this": True, "expression": True}


class FlinkTokenizer(tokens.Tokenizer):
    IDENTIFIERS = ["`"]
    QUOTES = ["'"]
    STRING_ESCAPES = ["'"]


class FlinkParser(parser.Parser):
    FUNCTION_PARSERS = {
        **parser.Parser.FUNCTION_PARSERS,
        **{name: (lambda self, kind=name: self._parse_window_table_function(kind)) for name in WINDOW_FUNCTIONS},
    }
    CONSTRAINT_PARSERS = {
        **parser.Parser.CONSTRAINT_PARSERS,
        "METADATA": lambda self: self._parse_metadata_column(),
        "WATERMARK": lambda self: self._parse_watermark_definition(),
    }
    SCHEMA_UNNAMED_CONSTRAINTS = {*parser.Parser.SCHEMA_UNNAMED_CONSTRAINTS, "WATERMARK"}

    def _parse_metadata_column(self) -> MetadataColumn:
        key = self._parse_string() if self._match(TokenType.FROM) else None
        virtual = self._match_text_seq("VIRTUAL")
        return self.expression(MetadataColumn(this=key, virtual=virtual))

    def _parse_watermark_definition(self) -> WatermarkDefinition:
        if not self._match_text_seq("FOR"):
            self.raise_error("Expecting FOR <column> AS <expression> after WATERMARK")
        column = self._parse_column()
        if not self._match(TokenType.ALIAS):
            self.raise_error("Expecting AS <expression> in WATERMARK FOR <column> AS <expression>")
        return self.expression(WatermarkDefinition(this=column, expression=self._parse_disjunction()))

    def _parse_window_table_function(self, kind: str) -> WindowTableFunction:
        # Called with the opening parenthesis consumed (the name is two tokens
        # back); sqlglot consumes the closing one.
        name_token = self._tokens[self._index - 2]
        if not self._match(TokenType.TABLE):
            self.raise_error(f"Expecting TABLE <stream> as the first argument of {kind}")
        table = self._parse_table_parts()
        if not self._match(TokenType.COMMA):
            self.raise_error(f"Expecting , DESCRIPTOR(<time column>) after the table of {kind}")
        if not (self._curr and self._curr.text.upper() == "DESCRIPTOR" and self._next.token_type == TokenType.L_PAREN):
            self.raise_error(f"Expecting DESCRIPTOR(<time column>) as the second argument of {kind}")
        self._advance(2)
        descriptor = self._parse_column()
        self._match_r_paren()
        arguments: list[exp.Expr] = []
        while self._match(TokenType.COMMA):
            argument = self._parse_assignment()
            if argument is None:
                self.raise_error(f"Expecting an INTERVAL argument of {kind}")
            arguments.append(argument)
        if not self._match(TokenType.R_PAREN, advance=False):
            self.raise_error(f"Expecting ) to close {kind}")
        node = WindowTableFunction(kind=kind, this=table, descriptor=descriptor, expressions=arguments)
        return node.update_positions(name_token)


def _window_table_function_sql(generator: generator_module.Generator, node: WindowTableFunction) -> str:
    arguments = [f"TABLE {generator.sql(node, 'this')}", f"DESCRIPTOR({generator.sql(node, 'descriptor')})"]
    arguments.extend(generator.sql(argument) for argument in node.expressions)
    return f"{node.kind}({', '.join(arguments)})"


def _not_sql(generator: generator_module.Generator, node: exp.Not) -> str:
    # `x IS NOT NULL` reads better than sqlglot's default `NOT x IS NULL`.
    if isinstance(node.this, exp.Is):
        return f"{generator.sql(node.this, 'this')} IS NOT {generator.sql(node.this, 'expression')}"
    return generator.not_sql(node)


class FlinkGenerator(generator_module.Generator):
    TRANSFORMS = {
        **generator_module.Generator.TRANSFORMS,
        WindowTableFunction: _window_table_function_sql,
        exp.Not: _not_sql,
    }


class Flink(Dialect):
    """Flink SQL as far as the streaming queries of this package need it."""

    Tokenizer = FlinkTokenizer
    Parser = FlinkParser
    Generator = FlinkGenerator


@dataclass(frozen=True)
class ParsedQuery:
    """The statement's tree, with the text and tokens it came from, so that
    later checks can point at the exact line and column of a construct."""

    text: str
    statement: exp.Expr
    tokens: tuple[Token, ...]


DIALECT = Flink()


def parse_query(text: str) -> ParsedQuery:
    """Parse one statement; a syntax error becomes a `SqlError` with its position."""
    tokenizer = DIALECT.tokenizer_class(dialect=DIALECT)
    try:
        token_list = tokenizer.tokenize(text)
    except TokenError:
        raise _tokenizer_error(text, tokenizer) from None
    try:
        statements = DIALECT.parser().parse(token_list, text)
    except ParseError as error:
        raise _translate(text, error) from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        offset = token_list[0].start if len(statements) == 0 and token_list else _second_statement(token_list)
        raise SqlError(
            text,
            f"expected exactly one statement, found {len(statements)}",
            construct="statement",
            supported="one INSERT INTO <stream> SELECT ... per query",
            offset=offset,
        )
    return ParsedQuery(text=text, statement=statements[0], tokens=tuple(token_list))


def _translate(text: str, error: ParseError) -> SqlError:
    details = error.errors[0] if error.errors else {}
    message = details.get("description") or str(error)
    if message.startswith("Required keyword"):
        message = "incomplete expression"
    line, col = details.get("line"), details.get("col")
    highlight = details.get("highlight") or ""
    if line and col:
        # sqlglot's column is where the offending token ends; point at its start.
        return SqlError(
            text,
            f"syntax error: {message}",
            construct=highlight or None,
            line=line,
            column=max(1, col - len(highlight) + 1),
        )
    return SqlError(text, f"syntax error: {message}")


def parse_statement(text: str) -> exp.Expr:
    """One statement of any kind (a `CREATE TABLE` of an inline schema); a
    syntax error becomes a `SqlError` with its position."""
    tokenizer = DIALECT.tokenizer_class(dialect=DIALECT)
    try:
        token_list = tokenizer.tokenize(text)
        statements = [s for s in DIALECT.parser().parse(token_list, text) if s is not None]
    except TokenError:
        raise _tokenizer_error(text, tokenizer) from None
    except ParseError as error:
        raise _translate(text, error) from None
    if len(statements) != 1:
        raise SqlError(text, f"expected exactly one statement, found {len(statements)}")
    return statements[0]


def _tokenizer_error(text: str, tokenizer: tokens.Tokenizer) -> SqlError:
    # The tokenizer fails on a quote left open: the token after the last one it read.
    read = tokenizer.tokens
    start = read[-1].end + 1 if read else 0
    while start < len(text) and text[start].isspace():
        start += 1
    if start < len(text) and text[start] in "'`":
        quote = text[start]
        what = "string" if quote == "'" else "quoted identifier"
        return SqlError(
            text,
            f"unterminated {what}: {quote} is never closed",
            construct=quote,
            supported=f"close it with {quote}" + ("; write '' for a quote inside a string" if quote == "'" else ""),
            offset=start,
        )
    return SqlError(text, "cannot read the query", offset=start)


def _second_statement(token_list: list[Token]) -> int | None:
    semicolons = [t for t in token_list if t.token_type == TokenType.SEMICOLON]
    return semicolons[0].start if semicolons else None


def offset_of(node: exp.Expr) -> int | None:
    """Character offset where a node starts in the query text.

    sqlglot records positions on identifiers, literals and function names
    only, so an operator is placed at its leftmost positioned descendant.
    """
    starts = [n.meta["start"] for n in node.walk() if n.meta and "start" in n.meta]
    return min(starts) if starts else None


def first_token_offset(parsed: ParsedQuery, *token_types: TokenType) -> int | None:
    """Offset of the first keyword of a kind (ORDER BY, HAVING, ...), for
    constructs whose tree node carries no position of its own."""
    for token in parsed.tokens:
        if token.token_type in token_types:
            return token.start
    return None


def to_sql(node: exp.Expr) -> str:
    """A node printed back as Flink SQL, for messages and `Plan.describe`."""
    return node.sql(dialect=DIALECT)
