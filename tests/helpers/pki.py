"""Certificates for the TLS tests, made with the `openssl` CLI: a CA, a server certificate for
127.0.0.1/localhost, a client certificate signed by the CA (subject
`CN=client one,O=Acme\\, Inc.,C=FR`) and an unrelated self-signed pair (`other.*`)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> Path:
    """Writes ca.pem/key, server.pem/key, client.pem/key and other.pem/key into `d`."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=ferrule test CA", cwd=d)  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
             cwd=d)  # fmt: skip
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    _openssl("req", *ec, "-keyout", "client.key", "-out", "client.csr",
             "-subj", "/C=FR/O=Acme, Inc./CN=client one", cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "client.pem", "-days", "2", "-extfile", "client.ext",
             cwd=d)  # fmt: skip
    # A second, unrelated key: a mismatched pair.
    _openssl("req", "-x509", *ec, "-keyout", "other.key", "-out", "other.pem", "-days", "2",
             "-subj", "/CN=other", cwd=d)  # fmt: skip
    return d
