from __future__ import annotations

import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlport.testing.ca import (
    CA_DIR_ENV,
    ServerCert,
    ca_env,
    default_ca_dir,
    issue_server_cert,
    local_ca,
)


@pytest.fixture
def ca_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "ca"
    monkeypatch.setenv(CA_DIR_ENV, str(directory))
    return directory


@pytest.fixture
def tls_server(ca_dir: Path, tmp_path: Path) -> Iterator[tuple[int, ServerCert]]:
    """A real TLS server on 127.0.0.1 that answers every connection with b"hello"."""
    cert = issue_server_cert(tmp_path / "server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.bundle_file, cert.key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.settimeout(5)
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError):
                # A client that rejects our certificate aborts the handshake.
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], cert
    finally:
        stopping.set()
        thread.join(timeout=5)
        listener.close()


def _fetch(port: int, cafile: Path, server_hostname: str) -> bytes:
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        return tls.recv(5)


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_a_client_trusting_the_ca_verifies_the_server(
    tls_server: tuple[int, ServerCert], hostname: str
) -> None:
    port, cert = tls_server
    assert _fetch(port, cert.ca_file, hostname) == b"hello"


def test_a_name_not_in_the_certificate_is_rejected(tls_server: tuple[int, ServerCert]) -> None:
    port, cert = tls_server
    with pytest.raises(ssl.SSLCertVerificationError):
        _fetch(port, cert.ca_file, "example.com")


def test_a_client_not_trusting_the_ca_rejects_the_server(
    tls_server: tuple[int, ServerCert], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _cert = tls_server
    monkeypatch.setenv(CA_DIR_ENV, str(tmp_path / "other-ca"))
    other = local_ca()
    with pytest.raises(ssl.SSLCertVerificationError):
        _fetch(port, other.cert_file, "localhost")


def test_the_ca_is_made_once_and_reused(ca_dir: Path, tmp_path: Path) -> None:
    first = local_ca()
    content = first.cert_file.read_bytes()
    second = local_ca()
    assert second == first
    assert second.cert_file.read_bytes() == content
    assert first.cert_file.parent == ca_dir == default_ca_dir()

    a = issue_server_cert(tmp_path / "a")
    b = issue_server_cert(tmp_path / "b")
    assert a.ca_file == b.ca_file == first.cert_file
    assert a.cert_file.read_bytes() != b.cert_file.read_bytes()  # a fresh leaf per start
    assert first.cert_file.read_bytes() == content


def test_the_certificate_names_localhost_and_both_loopback_addresses(
    ca_dir: Path, tmp_path: Path
) -> None:
    from cryptography import x509

    cert = issue_server_cert(tmp_path / "server")
    leaf = x509.load_pem_x509_certificate(cert.cert_file.read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


def test_files_are_private(ca_dir: Path, tmp_path: Path) -> None:
    ca = local_ca()
    cert = issue_server_cert(tmp_path / "server")
    assert stat.S_IMODE(ca_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(ca.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.key_file.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" not in cert.bundle_file.read_bytes()
    assert cert.bundle_file.read_bytes().count(b"BEGIN CERTIFICATE") == 2


def test_concurrent_callers_get_the_same_ca(ca_dir: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: local_ca().cert_file.read_bytes(), range(8)))
    assert len(set(results)) == 1
    assert sorted(p.name for p in ca_dir.iterdir()) == [".lock", "ca-key.pem", "ca.pem"]


def test_ca_env_trusts_the_local_ca_and_the_system_cas(ca_dir: Path) -> None:
    ca = local_ca()
    env = ca_env(ca.cert_file)
    assert set(env) == {"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"}
    assert len(set(env.values())) == 1
    bundle = Path(env["SSL_CERT_FILE"]).read_bytes()
    assert bundle.startswith(ca.cert_file.read_bytes())
    system = ssl.get_default_verify_paths().cafile
    if system and Path(system).is_file():
        assert Path(system).read_bytes() in bundle
    # Loads as a trust store, and is rewritten only when it would change.
    ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
    mtime = Path(env["SSL_CERT_FILE"]).stat().st_mtime_ns
    assert ca_env(ca.cert_file) == env
    assert Path(env["SSL_CERT_FILE"]).stat().st_mtime_ns == mtime


def test_ca_env_bundle_verifies_the_server(tls_server: tuple[int, ServerCert]) -> None:
    port, cert = tls_server
    bundle = Path(ca_env(cert.ca_file)["SSL_CERT_FILE"])
    assert _fetch(port, bundle, "localhost") == b"hello"
