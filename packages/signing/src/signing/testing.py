"""Keys and certificates for tests and examples, generated in memory.

::

    from signing.testing import make_identity

    alice = make_identity("ed25519", common_name="alice")
    signer = alice.signer()
    store = CertificateStore([alice.cert_pem])

Generated keys are real keys; certificates are self-signed unless an
``issuer`` identity signs them. Do not use them in production.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from ._certs import Certificate
from ._keys import KeyType, PrivateKey, describe_key
from ._signer import Signer

__all__ = ["Identity", "make_identity"]

_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
}


@dataclass(frozen=True, repr=False)
class Identity:
    """A private key and its certificate.

    Attributes:
        key: The private key (a cryptography object).
        certificate: Its certificate.
    """

    key: PrivateKey
    certificate: Certificate

    @property
    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def cert_pem(self) -> bytes:
        """The certificate as PEM."""
        return self.certificate.x509.public_bytes(serialization.Encoding.PEM)

    def signer(
        self, *, digest: str = "sha256", clock: Callable[[], float] = time.time
    ) -> Signer:
        """Return a :class:`~signing.Signer` for this identity."""
        return Signer(self.key, self.certificate, digest=digest, clock=clock)

    def write(
        self,
        directory: str | os.PathLike[str],
        *,
        name: str = "signer",
        password: str | bytes | None = None,
    ) -> tuple[Path, Path]:
        """Write ``<name>.key`` (mode 600) and ``<name>.pem`` into *directory*.

        Args:
            directory: An existing directory.
            name: The files' stem.
            password: Encrypt the key file with this password.

        Returns:
            The paths of the key file and the certificate file.
        """
        folder = Path(directory)
        key_path = folder / f"{name}.key"
        cert_path = folder / f"{name}.pem"
        encryption: serialization.KeySerializationEncryption = (
            serialization.NoEncryption()
            if password is None
            else serialization.BestAvailableEncryption(
                password.encode("utf-8") if isinstance(password, str) else password
            )
        )
        data = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        cert_path.write_bytes(self.cert_pem)
        return key_path, cert_path

    def __repr__(self) -> str:
        return f"<Identity {describe_key(self.key)} {self.certificate.subject!r}>"


def _generate(kind: KeyType, rsa_bits: int, curve: str) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if kind == "ecdsa":
        if curve not in _CURVES:
            raise ValueError(
                f"curve must be one of {', '.join(_CURVES)}, got {curve!r}"
            )
        return ec.generate_private_key(_CURVES[curve])
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"kind must be 'rsa', 'ecdsa' or 'ed25519', got {kind!r}")


def make_identity(
    kind: KeyType = "ed25519",
    *,
    common_name: str = "signing test",
    rsa_bits: int = 2048,
    curve: str = "P-256",
    serial: int | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    issuer: Identity | None = None,
    key: PrivateKey | None = None,
) -> Identity:
    """Generate a key and a certificate for it.

    Args:
        kind: ``"rsa"``, ``"ecdsa"`` or ``"ed25519"``.
        common_name: The certificate subject's common name.
        rsa_bits: RSA key size.
        curve: ``"P-256"`` or ``"P-384"`` for ECDSA.
        serial: Certificate serial number (random by default).
        not_before: Start of validity (default: five minutes ago).
        not_after: End of validity (default: one year from now).
        issuer: An identity that signs the certificate, as a CA would; the
            certificate is self-signed when ``None``.
        key: Reuse this private key instead of generating one (a renewed
            certificate for the same key); *kind*, *rsa_bits* and *curve* are
            then ignored.

    Raises:
        ValueError: Unknown *kind* or *curve*.
    """
    private_key = key if key is not None else _generate(kind, rsa_bits, curve)
    now = datetime.now(timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name = subject if issuer is None else issuer.certificate.x509.subject
    signing_key = private_key if issuer is None else issuer.key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number() if serial is None else serial)
        .not_valid_before(
            now - timedelta(minutes=5) if not_before is None else not_before
        )
        .not_valid_after(now + timedelta(days=365) if not_after is None else not_after)
    )
    digest = (
        None if isinstance(signing_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    )
    return Identity(private_key, Certificate(builder.sign(signing_key, digest)))
