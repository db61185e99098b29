"""An https target for tests: a throwaway certificate authority (trustme) and a target server
(tests/targets.py) whose certificate, for 127.0.0.1 and localhost, that authority issued.

Nothing trusts the authority unless a test says so, e.g. by pointing SSL_CERT_FILE at
`ca_file` (ssl.create_default_context reads it when the context is made).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.targets import target_server


@dataclass(frozen=True)
class HttpsTarget:
    base_url: str  # https://127.0.0.1:PORT
    ca: trustme.CA
    ca_file: Path  # the authority's certificate, PEM


@contextlib.contextmanager
def https_target_server(directory: Path) -> Iterator[HttpsTarget]:
    """A fresh authority, its certificate files in `directory` and an https target using them."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = (directory / name for name in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    with target_server(tls_cert=cert_file, tls_key=key_file) as base_url:
        yield HttpsTarget(base_url=base_url, ca=ca, ca_file=ca_file)
