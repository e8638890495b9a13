"""Private keys, digests and the signature primitives of each key type.

Supported keys: RSA of at least 2048 bits (RSASSA-PSS, MGF1 over the message
digest, maximum salt length: Celery's parameters), ECDSA on P-256 and P-384
(DER signatures) and Ed25519. Digests are the SHA-2 and SHA-3 families from 256
bits up; SHA-1, MD5 and SHA-224 are refused.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from .errors import InsecureKeyFileWarning, KeyLoadError, UnsupportedKeyError

__all__ = [
    "ALGORITHMS",
    "DIGESTS",
    "MIN_RSA_BITS",
    "Algorithm",
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "algorithm_for",
    "describe_key",
    "digest_algorithm",
    "key_type",
    "load_private_key",
    "normalize_digest",
    "read_key_file",
    "sign",
    "verify",
]

KeyType = Literal["rsa", "ecdsa", "ed25519"]
PrivateKey: TypeAlias = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
)
PublicKey: TypeAlias = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
)

#: Digest names accepted for RSA and ECDSA signatures (Celery spells them so too).
DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
}
_DIGEST_INSTANCES = {name: cls() for name, cls in DIGESTS.items()}

MIN_RSA_BITS = 2048
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}


def normalize_digest(name: str) -> str:
    """Return the canonical spelling of a digest name (``"SHA-256"`` -> ``"sha256"``).

    Raises:
        UnsupportedKeyError: The digest is unknown or too weak.
    """
    canonical = name.strip().lower().replace("-", "_")
    if canonical.startswith("sha_"):
        canonical = "sha" + canonical[4:]
    if canonical not in DIGESTS:
        raise UnsupportedKeyError(
            f"unsupported digest {name!r}; use one of {', '.join(DIGESTS)}",
        )
    return canonical


def digest_algorithm(name: str) -> hashes.HashAlgorithm:
    """Return the hash object for a canonical digest name."""
    return _DIGEST_INSTANCES[name]


def describe_key(key: PrivateKey | PublicKey) -> str:
    """Return ``rsa-2048``, ``ecdsa-P-256`` or ``ed25519``: the type, never the key."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"rsa-{key.key_size}"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"ecdsa-{_CURVES.get(key.curve.name, key.curve.name)}"
    return "ed25519"


def key_type(key: object, what: str) -> KeyType:
    """Return the kind of a private or public key after checking it is usable.

    Args:
        key: A cryptography private or public key.
        what: How to name the key in an error, e.g. ``"the private key in 'a.pem'"``.

    Raises:
        UnsupportedKeyError: Not RSA/ECDSA/Ed25519, RSA under 2048 bits, or an
            elliptic curve other than P-256 and P-384.
    """
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        if key.key_size < MIN_RSA_BITS:
            raise UnsupportedKeyError(
                f"{what} is a {key.key_size}-bit RSA key; at least "
                f"{MIN_RSA_BITS} bits are required",
            )
        return "rsa"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if key.curve.name not in _CURVES:
            raise UnsupportedKeyError(
                f"{what} uses the elliptic curve {key.curve.name}; supported "
                "curves are P-256 (secp256r1) and P-384 (secp384r1)",
            )
        return "ecdsa"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    raise UnsupportedKeyError(
        f"{what} is a {type(key).__name__.lstrip('_')}; supported keys are RSA "
        "(2048 bits or more), ECDSA on P-256 or P-384, and Ed25519",
    )


def _password_bytes(password: str | bytes | None) -> bytes | None:
    if password is None or isinstance(password, bytes):
        return password
    return password.encode("utf-8")


def load_private_key(
    data: bytes, password: str | bytes | None, *, source: str
) -> PrivateKey:
    """Load a PEM private key, checking its type.

    Args:
        data: PEM text of the key (PKCS#8 or the traditional OpenSSL forms).
        password: The password of an encrypted key, else ``None``.
        source: Where the key came from, for error messages (never the key).

    Raises:
        KeyLoadError: Not a PEM private key, a wrong or missing password, or a
            password for a key that is not encrypted.
        UnsupportedKeyError: The key type, size or curve is not supported.
    """
    encrypted = b"ENCRYPTED" in data
    try:
        key = serialization.load_pem_private_key(data, _password_bytes(password))
    except TypeError as exc:
        if password is None:
            raise KeyLoadError(
                f"the private key in {source} is encrypted: pass its password",
            ) from exc
        raise KeyLoadError(
            f"the private key in {source} is not encrypted, but a password was "
            "given: pass password=None",
        ) from exc
    except ValueError as exc:
        if encrypted and password is not None:
            raise KeyLoadError(
                f"cannot decrypt the private key in {source}: wrong password",
            ) from exc
        raise KeyLoadError(
            f"cannot load the private key in {source}: it is not a PEM private key",
        ) from exc
    except UnsupportedAlgorithm as exc:
        raise UnsupportedKeyError(
            f"the private key in {source} uses an algorithm this build of "
            "cryptography does not support",
        ) from exc
    key_type(key, f"the private key in {source}")
    return key  # type: ignore[return-value]  # key_type() narrowed it at runtime


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read a private key file, warning if other users may read or change it.

    Raises:
        KeyLoadError: The file cannot be read.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
        mode = file.stat().st_mode
    except OSError as exc:
        raise KeyLoadError(
            f"cannot read the private key file {str(file)!r}: "
            f"{exc.strerror or type(exc).__name__}",
        ) from exc
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(
            f"the private key file {str(file)!r} is accessible by other users "
            f"(mode {stat.S_IMODE(mode):04o}); restrict it with: chmod 600 {file}",
            InsecureKeyFileWarning,
            stacklevel=3,
        )
    return data


@dataclass(frozen=True, slots=True)
class Algorithm:
    """A signature algorithm as named in the native envelope.

    Attributes:
        name: ``rsa-pss-<digest>``, ``ecdsa-<digest>`` or ``ed25519``.
        key_type: The key type it needs.
        digest: The canonical digest name, or ``None`` for Ed25519.
    """

    name: str
    key_type: KeyType
    digest: str | None


ALGORITHMS: dict[str, Algorithm] = {
    "ed25519": Algorithm("ed25519", "ed25519", None),
    **{
        f"rsa-pss-{digest}": Algorithm(f"rsa-pss-{digest}", "rsa", digest)
        for digest in DIGESTS
    },
    **{
        f"ecdsa-{digest}": Algorithm(f"ecdsa-{digest}", "ecdsa", digest)
        for digest in DIGESTS
    },
}


def algorithm_for(kind: KeyType, digest: str) -> Algorithm:
    """Return the algorithm a key of *kind* signs with under *digest*."""
    if kind == "ed25519":
        return ALGORITHMS["ed25519"]
    prefix = "rsa-pss" if kind == "rsa" else "ecdsa"
    return ALGORITHMS[f"{prefix}-{digest}"]


def _pss(hash_algorithm: hashes.HashAlgorithm) -> padding.PSS:
    return padding.PSS(
        mgf=padding.MGF1(hash_algorithm), salt_length=padding.PSS.MAX_LENGTH
    )


def sign(key: PrivateKey, data: bytes, digest: str | None) -> bytes:
    """Sign *data* with *key*; *digest* is ignored for Ed25519."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    hash_algorithm = digest_algorithm(digest or "sha256")
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _pss(hash_algorithm), hash_algorithm)
    return key.sign(data, ec.ECDSA(hash_algorithm))


def verify(key: PublicKey, signature: bytes, data: bytes, digest: str | None) -> bool:
    """Return whether *signature* is a valid signature of *data* by *key*."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
        hash_algorithm = digest_algorithm(digest or "sha256")
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, _pss(hash_algorithm), hash_algorithm)
        else:
            key.verify(signature, data, ec.ECDSA(hash_algorithm))
    except InvalidSignature:
        return False
    return True
