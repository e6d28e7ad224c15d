"""Certificates for tests: a CA of the test's own, with server certificates for
loopback (localhost, 127.0.0.1) and client certificates, as PEM files.

The certificates are made by the local stack's own code
(`cli.local_stack_secure`), so tests and the secured stack agree on their shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cli.local_stack_secure import issue, new_ca, pem_cert, pem_key, write_private


@dataclass(frozen=True)
class Issued:
    """A certificate (followed by its CA's) and its key, as PEM files."""

    cert: Path
    key: Path


class TestCA:
    """A self-signed CA that issues server and client certificates into `folder`."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, folder: Path, name: str = "test CA") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = new_ca(name, days=2)
        self.pem = folder / f"{name.replace(' ', '-')}.pem"
        self.pem.write_bytes(pem_cert(self.cert))

    def issue(self, common_name: str, *, server: bool) -> Issued:
        cert, key = issue(self.cert, self.key, common_name, server=server, days=2)
        stem = self.folder / common_name.replace(" ", "-")
        issued = Issued(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        issued.cert.write_bytes(pem_cert(cert) + pem_cert(self.cert))
        write_private(issued.key, pem_key(key))
        return issued
