"""The local certificate authority that signs the emulators' TLS certificates.

One CA per machine (per user), kept in ``$MLPORT_CA_DIR`` or ``~/.cache/mlport/ca``: the
directory is private (0700) and so is the key (0600). Each server start gets a fresh leaf
certificate signed by it, valid for ``localhost``, ``127.0.0.1`` and ``::1``. Clients trust the CA
through the environment from :func:`ca_env`; gRPC reads its root store once per process, which is
why the CA stays the same across server starts while the leaves change.

The CA is trusted only by processes given that environment; it is never installed into the
system's trust store. Keys are EC P-256: quick to make, accepted by OpenSSL and BoringSSL.

``cryptography`` is imported only when a certificate is made (``pip install mlport[testing]``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlport._files import locked, write_atomic
from mlport.errors import InvalidSpecError, MissingDependencyError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "CA_DIR_ENV",
    "CertificateAuthority",
    "ServerCert",
    "ca_env",
    "default_ca_dir",
    "issue_server_cert",
    "local_ca",
]

CA_DIR_ENV = "MLPORT_CA_DIR"
DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

_CA_CERT_NAME = "ca.pem"
_CA_KEY_NAME = "ca-key.pem"
_CA_VALIDITY = dt.timedelta(days=3650)
# A CA this close to expiry is replaced, so a leaf never outlives the CA that signed it.
_CA_RENEW_BEFORE = dt.timedelta(days=30)
# Tolerates clocks that are slightly behind (containers, VMs resumed from sleep).
_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class CertificateAuthority:
    """The local CA's files.

    Attributes:
        cert_file: The CA certificate (PEM); what clients trust.
        key_file: The CA's private key (PEM, mode 0600).
    """

    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class ServerCert:
    """A server certificate signed by the local CA.

    Attributes:
        cert_file: The leaf certificate (PEM).
        key_file: The leaf's private key (PEM, mode 0600).
        ca_file: The CA certificate that signed it; what clients trust.
        bundle_file: The leaf followed by the CA certificate, for servers that send the chain.
    """

    cert_file: Path
    key_file: Path
    ca_file: Path
    bundle_file: Path


def default_ca_dir() -> Path:
    """Return the CA directory: ``$MLPORT_CA_DIR`` if set, else ``~/.cache/mlport/ca``."""
    configured = os.environ.get(CA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "mlport" / "ca"


def local_ca() -> CertificateAuthority:
    """Return this machine's local CA, creating it the first time.

    Blocks while another process is creating it (an ``fcntl`` lock in the CA directory); files are
    written under temporary names and renamed into place, so no process sees half a CA. A CA that
    expires within 30 days is replaced.

    Raises:
        MissingDependencyError: ``cryptography`` is not installed.
        OSError: The CA directory cannot be created or written.
    """
    directory = default_ca_dir()
    _make_private_dir(directory)
    ca = CertificateAuthority(
        cert_file=directory / _CA_CERT_NAME, key_file=directory / _CA_KEY_NAME
    )
    if _is_usable(ca):
        return ca
    with locked(directory / ".lock"):
        if not _is_usable(ca):
            _create_ca(ca)
    return ca


def issue_server_cert(
    directory: str | os.PathLike[str],
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 7,
    ca: CertificateAuthority | None = None,
) -> ServerCert:
    """Make a fresh server certificate signed by the local CA.

    Does not block beyond creating the CA on first use. Writes ``server.pem``,
    ``server-key.pem`` (0600) and ``server-bundle.pem`` into ``directory`` (created if needed),
    replacing earlier ones.

    Args:
        directory: Where to write the files.
        hosts: Names the certificate is valid for; IP addresses become IP SANs, others DNS SANs.
        days: Validity in days.
        ca: The signing CA (default: :func:`local_ca`).

    Raises:
        InvalidSpecError: ``hosts`` is empty or ``days`` is not positive.
        MissingDependencyError: ``cryptography`` is not installed.
    """
    if not hosts:
        raise InvalidSpecError("a server certificate needs at least one host name")
    if days <= 0:
        raise InvalidSpecError(f"certificate validity must be at least one day, got {days}")
    _require_cryptography()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    authority = ca if ca is not None else local_ca()
    if ca is None:
        # The lock keeps us from reading a CA that another process is replacing half-way.
        with locked(authority.cert_file.parent / ".lock"):
            ca_cert_pem = authority.cert_file.read_bytes()
            ca_key_pem = authority.key_file.read_bytes()
    else:
        ca_cert_pem = authority.cert_file.read_bytes()
        ca_key_pem = authority.key_file.read_bytes()
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey) or (
        ca_key.public_key() != ca_cert.public_key()
    ):
        raise InvalidSpecError(
            f"{authority.key_file} is not the EC private key of {authority.cert_file}"
        )

    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    cert_pem = _cert_pem(cert)
    server = ServerCert(
        cert_file=out / "server.pem",
        key_file=out / "server-key.pem",
        ca_file=authority.cert_file,
        bundle_file=out / "server-bundle.pem",
    )
    write_atomic(server.key_file, _private_pem(key), mode=0o600)
    write_atomic(server.cert_file, cert_pem, mode=0o644)
    write_atomic(server.bundle_file, cert_pem + ca_cert_pem, mode=0o644)
    return server


def ca_env(ca_file: str | os.PathLike[str]) -> dict[str, str]:
    """Return the environment that makes clients trust the local CA as well as the usual CAs.

    Writes ``<ca stem>-trust-bundle.pem`` next to ``ca_file``: the CA certificate followed by the
    system's default bundle (certifi's if installed, else OpenSSL's default file), so HTTPS to
    anything else keeps working in the same process. Does not block.

    Args:
        ca_file: The CA certificate, usually ``ServerCert.ca_file``.

    Returns:
        ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``, ``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE``, all
        set to the bundle's path. Set them before the client library is imported.

    Raises:
        OSError: ``ca_file`` cannot be read or the bundle cannot be written next to it.
    """
    ca_path = Path(ca_file).resolve()
    content = ca_path.read_bytes().rstrip(b"\n") + b"\n"
    system = _system_bundle()
    if system is not None and system.resolve() != ca_path:
        with contextlib.suppress(OSError):
            content += system.read_bytes()
    bundle = ca_path.with_name(f"{ca_path.stem}-trust-bundle.pem")
    try:
        unchanged = bundle.read_bytes() == content
    except FileNotFoundError:
        unchanged = False
    if not unchanged:
        write_atomic(bundle, content, mode=0o644)
    path = str(bundle)
    return {
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": path,
        "REQUESTS_CA_BUNDLE": path,
        "SSL_CERT_FILE": path,
    }


def _system_bundle() -> Path | None:
    # The machine's own store first: it holds the CAs the machine's owner added (a company
    # proxy's, say), which certifi's copy of Mozilla's list does not.
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    try:
        certifi = importlib.import_module("certifi")
    except ImportError:
        return None
    return Path(certifi.where())


def _require_cryptography() -> None:
    try:
        importlib.import_module("cryptography")
    except ImportError as exc:
        raise MissingDependencyError(
            "the local CA needs the 'cryptography' package: pip install 'mlport[testing]'"
        ) from exc


def _make_private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    # mkdir's mode is reduced by the umask and ignored for a directory that already existed.
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        directory.chmod(0o700)


def _is_usable(ca: CertificateAuthority) -> bool:
    if not (ca.cert_file.is_file() and ca.key_file.is_file()):
        return False
    _require_cryptography()
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(ca.cert_file.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > _CA_RENEW_BEFORE


def _create_ca(ca: CertificateAuthority) -> None:
    _require_cryptography()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mlport"),
            x509.NameAttribute(NameOID.COMMON_NAME, "mlport local test CA"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    # Key first: a reader that finds the certificate also finds its key (readers that might see
    # a CA being replaced read under the lock).
    write_atomic(ca.key_file, _private_pem(key), mode=0o600)
    write_atomic(ca.cert_file, _cert_pem(cert), mode=0o644)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)
