"""What a server's certificate says, and whether it names the host we connected to.

The handshake only tells us "verified" or one OpenSSL error; a sender needs more:
who the certificate is for, who issued it, when it runs out. We parse the DER
with ``cryptography`` so the details are there even when verification failed,
and match names ourselves (RFC 6125 6.4: exact name, or a wildcard standing for
the whole left-most label; IP addresses only against IP entries).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """The leaf certificate a server presented."""

    subject: str
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    issuer: str
    issuer_common_name: str | None
    not_before: datetime
    not_after: datetime
    serial_number: str
    sha256_fingerprint: str
    key_type: str
    key_bits: int | None
    signature_hash: str | None
    self_signed: bool

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400

    def expired(self, now: datetime) -> bool:
        return now > self.not_after

    def not_yet_valid(self, now: datetime) -> bool:
        return now < self.not_before

    def matches(self, host: str) -> bool:
        return host_matches(host, self.dns_names, self.ip_addresses)

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        return {
            "subject": self.subject,
            "common_name": self.common_name,
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "issuer": self.issuer,
            "issuer_common_name": self.issuer_common_name,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_left": round(self.days_left(now), 1),
            "serial_number": self.serial_number,
            "sha256_fingerprint": self.sha256_fingerprint,
            "key_type": self.key_type,
            "key_bits": self.key_bits,
            "signature_hash": self.signature_hash,
            "self_signed": self.self_signed,
        }


def _common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")


def _key(cert: x509.Certificate) -> tuple[str, int | None]:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "unknown", None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, None


def parse_certificate(der: bytes) -> CertificateInfo:
    """Read the fields a sender cares about; raises ValueError on a certificate that does not parse."""
    cert = x509.load_der_x509_certificate(der)
    dns_names: list[str] = []
    ip_addresses: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        dns_names = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
        ip_addresses = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    try:
        hash_algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        hash_algorithm = None
    key_type, key_bits = _key(cert)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        common_name=_common_name(cert.subject),
        dns_names=tuple(dns_names),
        ip_addresses=tuple(ip_addresses),
        issuer=cert.issuer.rfc4514_string(),
        issuer_common_name=_common_name(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial_number=format(cert.serial_number, "x"),
        sha256_fingerprint=cert.fingerprint(hashes.SHA256()).hex(":"),
        key_type=key_type,
        key_bits=key_bits,
        signature_hash=hash_algorithm.name if hash_algorithm is not None else None,
        self_signed=cert.subject == cert.issuer,
    )


def _as_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def host_matches(host: str, dns_names: tuple[str, ...] | list[str], ip_addresses: tuple[str, ...] | list[str]) -> bool:
    """Whether a certificate with these subject alternative names is valid for ``host``.

    No fallback to the subject common name: OpenSSL as Python configures it, and the
    browsers, stopped doing that, so a name only in the CN does not count.
    """
    ip = _as_ip(host)
    if ip is not None:
        return any(_as_ip(entry) == ip for entry in ip_addresses)
    wanted = host.rstrip(".").lower()
    if not wanted:
        return False
    for pattern in dns_names:
        pattern = pattern.rstrip(".").lower()
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and pattern.count(".") >= 2:
            head, dot, rest = wanted.partition(".")
            if dot and head and rest == pattern[2:]:
                return True
    return False
