"""A schema registry for tests: a real HTTP server (in a thread) in the
Confluent registry's REST shape, `GET /schemas/ids/{id}`, that requires basic
auth and can stop accepting the credentials on request (revoked while running)."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

from tests.support.ports import free_port


@dataclass
class RegistryState:
    user: str
    password: str
    schemas: dict[int, str]  # id -> Avro schema JSON
    revoke_after_probe: bool = False  # refuse every request once the start-up probe (an unknown id) was answered
    revoked: bool = False
    asked: list[str] = field(default_factory=list)


def reply_json(handler: BaseHTTPRequestHandler, status: int, body: dict) -> None:
    """An answer as the registry sends it: JSON with its content type."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _handler(state: RegistryState) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{state.user}:{state.password}".encode()).decode()

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.asked.append(self.path)
            if state.revoked or self.headers.get("Authorization") != expected:
                return self._reply(401, {"error_code": 401, "message": "Unauthorized"})
            parts = self.path.split("?")[0].rstrip("/").split("/")
            if len(parts) == 4 and parts[1:3] == ["schemas", "ids"] and parts[3].isdigit():
                schema = state.schemas.get(int(parts[3]))
                if schema is not None:
                    return self._reply(200, {"schema": schema})
                if state.revoke_after_probe:
                    state.revoked = True
            return self._reply(404, {"error_code": 40403, "message": "Schema not found"})

        def _reply(self, status: int, body: dict) -> None:
            reply_json(self, status, body)

        def log_message(self, *args) -> None:  # quiet
            pass

    return Registry


@contextmanager
def running_registry(state: RegistryState, context: ssl.SSLContext | None = None) -> Iterator[str]:
    """The registry's base URL while it serves (https when `context` is given)."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(state))
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
