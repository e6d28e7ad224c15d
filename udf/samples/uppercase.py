"""The seed's UDF (`udf-uppercase-go`): upper-case the payload, drop the headers.

Upper-casing a JSON document upper-cases its keys too
(`{"error_code": ...}` becomes `{"ERROR_CODE": ...}`), exactly as the Go
sample did; downstream consumers of the seed expect that shape.
"""

from __future__ import annotations

import argparse
import logging

import grpc

from udf.sdk import DEFAULT_PORT, UdfError, serve


def uppercase(payload: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The payload as UTF-8 text, upper-cased; no headers."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UdfError(grpc.StatusCode.INVALID_ARGUMENT, f"payload is not UTF-8 text: {exc}") from None
    return text.upper().encode("utf-8"), {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="0.0.0.0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(uppercase, args.port, args.host)


if __name__ == "__main__":
    main()
