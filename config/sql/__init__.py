"""Streaming SQL: a Processor's query -> a checked, printable `Plan`."""

from config.sql.compile import compile_query
from config.sql.errors import SqlError

__all__ = ["compile_query", "SqlError"]
