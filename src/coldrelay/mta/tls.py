"""The SMTP listeners' TLS: the configured certificate, or a self-signed one made at first start.

With ``[smtp] tls_cert`` and ``tls_key`` set, those files are used as they are. Without them a
self-signed certificate for the host name is made in ``<data-dir>/tls/`` (key ``0600``, directory
``0700``) the first time the server starts and reused afterwards; a new one is made only when the
host name changed or the old one has expired. Sending platforms connect to submission without
verifying the certificate more often than not, but a real one (Let's Encrypt for ``box.<domain>``)
is what production should configure.

The server context is Python's default for serving (TLS 1.2 at least, no client certificates asked
for, so aiosmtpd does not warn about client verification).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

TLS_DIR_NAME = "tls"
SELF_SIGNED_CERT = "selfsigned-cert.pem"
SELF_SIGNED_KEY = "selfsigned-key.pem"
SELF_SIGNED_DAYS = 3650  # nobody validates a self-signed certificate's dates; it is replaced by hand or by name change
SELF_SIGNED_KEY_BITS = 2048  # RSA, which every SMTP client still speaks


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context for ``cert`` and ``key`` (PEM files)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=cert, keyfile=key)
    return context


def ensure_certificate(data_dir: Path, hostname: str, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """The listeners' TLS context: ``cert``/``key`` when given, else the data directory's self-signed pair."""
    if (cert is None) != (key is None):
        raise ValueError("give the TLS certificate and key together, or neither for a self-signed certificate")
    if cert is not None and key is not None:
        return server_context(cert, key)
    directory = data_dir / TLS_DIR_NAME
    cert_path, key_path = directory / SELF_SIGNED_CERT, directory / SELF_SIGNED_KEY
    if not _usable(cert_path, key_path, hostname):
        _make_self_signed(directory, cert_path, key_path, hostname)
    return server_context(cert_path, key_path)


def _usable(cert_path: Path, key_path: Path, hostname: str) -> bool:
    """The stored self-signed certificate exists, names ``hostname`` and has not expired."""
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    if hostname not in names.get_values_for_type(x509.DNSName):
        return False
    return certificate.not_valid_after_utc > datetime.now(UTC) + timedelta(days=1)


def _make_self_signed(directory: Path, cert_path: Path, key_path: Path, hostname: str) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=SELF_SIGNED_KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if hostname == "localhost":
        alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # The key first, then the certificate: a crash in between leaves a pair _usable refuses, so it is made again.
    _write_private(key_path, key_pem, 0o600)
    _write_private(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file created with ``mode`` (never wider), fsync it and rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
