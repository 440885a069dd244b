"""Making DKIM key pairs in the shape the DNS record and the signer need.

RSA 2048 is the size every receiver accepts and RFC 8301 requires at least; ed25519 (RFC 8463)
is offered for a second, modern signature but is not yet verified by all receivers.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from coldrelay.db.models import DkimAlgorithm

RSA_KEY_BITS = 2048


def generate_dkim_key(algorithm: DkimAlgorithm = DkimAlgorithm.RSA) -> tuple[str, str]:
    """A new key pair: (private key PEM, public key base64 for the record's ``p=`` tag).

    RSA publishes the DER SubjectPublicKeyInfo (RFC 6376 3.6.1); ed25519 the raw 32-byte key
    (RFC 8463 4.2), which is what verifiers expect for each.
    """
    if algorithm is DkimAlgorithm.RSA:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        private_pem = rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public = rsa_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        ed_key = ed25519.Ed25519PrivateKey.generate()
        private_pem = ed_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private_pem.decode("ascii"), base64.b64encode(public).decode("ascii")


def txt_strings(value: str, size: int = 255) -> list[str]:
    """Split a TXT value into the <=255-byte character-strings one DNS record is made of (RFC 1035 3.3.14).

    A 2048-bit RSA key's record is ~410 bytes, so zone files need it as several quoted strings.
    """
    return [value[start : start + size] for start in range(0, len(value), size)] or [""]
