"""The producer side: a private key, its certificate, and both envelope formats."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from . import _auth, _native
from ._certs import Certificate
from ._keys import (
    PrivateKey,
    algorithm_for,
    describe_key,
    key_type,
    load_private_key,
    normalize_digest,
    read_key_file,
    sign,
)
from .errors import EnvelopeError, KeyLoadError, UnsupportedKeyError

__all__ = ["Signer"]

logger = logging.getLogger(__name__)

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class Signer:
    """Signs serialized messages with one private key and its certificate.

    A signer is an explicit instance: an application builds its own, and two
    signers with different keys live side by side in one process. It is safe to
    use from several threads.

    Args:
        key: The private key (RSA of 2048 bits or more, ECDSA P-256/P-384, or
            Ed25519), as a cryptography key object.
        certificate: The certificate of that key, which verifiers trust.
        digest: Digest for RSA and ECDSA signatures: ``sha256`` (default),
            ``sha384``, ``sha512``, ``sha3_256``, ``sha3_384`` or ``sha3_512``.
            Ed25519 has its own. For the ``auth`` format it must match the
            verifiers' (Celery's ``security_digest``).
        clock: Returns the current Unix time; the native format records it.

    Raises:
        KeyLoadError: The key does not belong to the certificate.
        UnsupportedKeyError: The key type, size, curve or digest is not supported.
    """

    __slots__ = ("_clock", "_key", "algorithm", "certificate", "digest", "key_type")

    def __init__(
        self,
        key: PrivateKeyTypes,
        certificate: Certificate | x509.Certificate,
        *,
        digest: str = "sha256",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key_type = key_type(key, "the private key")
        self.certificate = (
            certificate
            if isinstance(certificate, Certificate)
            else Certificate(certificate)
        )
        if key.public_key().public_bytes(
            *_SPKI
        ) != self.certificate.x509.public_key().public_bytes(*_SPKI):
            raise KeyLoadError(
                "the private key does not belong to the certificate "
                f"{self.certificate.subject!r}: its public key differs",
            )
        self._key: PrivateKey = key  # type: ignore[assignment]  # key_type() checked it
        self.digest = normalize_digest(digest)
        self.algorithm = algorithm_for(self.key_type, self.digest).name
        self._clock = clock
        problem = self.certificate.validity_problem(datetime.now(timezone.utc))
        if problem is not None:
            logger.warning(
                "the signing certificate %s %s; verifiers will refuse what it signs",
                self.certificate.subject,
                problem,
            )

    @classmethod
    def from_pem(
        cls,
        *,
        key: bytes | str,
        cert: bytes | str,
        password: str | bytes | None = None,
        digest: str = "sha256",
        clock: Callable[[], float] = time.time,
    ) -> Signer:
        """Build a signer from PEM text of a private key and its certificate.

        Args:
            key: The PEM private key (PKCS#8 or traditional; may be encrypted).
            cert: The PEM certificate.
            password: The key's password, if it is encrypted.
            digest: As for :class:`Signer`.
            clock: As for :class:`Signer`.

        Raises:
            KeyLoadError: Unreadable key or certificate, wrong or missing
                password, or a key that does not match the certificate.
            UnsupportedKeyError: The key type, size, curve or digest is not supported.
        """
        key_data = key.encode("utf-8") if isinstance(key, str) else key
        private_key = load_private_key(key_data, password, source="the PEM data")
        return cls(
            private_key,
            Certificate.from_pem(cert),
            digest=digest,
            clock=clock,
        )

    @classmethod
    def from_files(
        cls,
        *,
        key: str | os.PathLike[str],
        cert: str | os.PathLike[str],
        password: str | bytes | None = None,
        digest: str = "sha256",
        clock: Callable[[], float] = time.time,
    ) -> Signer:
        """Build a signer from a PEM private key file and a PEM certificate file.

        A key file that users other than its owner can read or write triggers
        an :class:`~signing.InsecureKeyFileWarning`.

        Args:
            key: Path of the private key (Celery's ``security_key``).
            cert: Path of its certificate (Celery's ``security_certificate``).
            password: The key's password (``security_key_password``), if any.
            digest: As for :class:`Signer` (``security_digest``).
            clock: As for :class:`Signer`.

        Raises:
            KeyLoadError: A file cannot be read or parsed, the password is wrong
                or missing, or the key does not match the certificate.
            UnsupportedKeyError: The key type, size, curve or digest is not supported.
        """
        private_key = load_private_key(
            read_key_file(key), password, source=repr(os.fspath(key))
        )
        return cls(
            private_key,
            Certificate.from_file(cert),
            digest=digest,
            clock=clock,
        )

    @property
    def signer_id(self) -> str:
        """The native format's signer id: the certificate's SHA-256, in hex."""
        return self.certificate.signer_id

    @property
    def auth_id(self) -> str:
        """The auth format's signer id: issuer attribute values and serial."""
        return self.certificate.auth_id

    def sign(
        self,
        body: bytes,
        *,
        content_type: str,
        content_encoding: str,
        headers: Mapping[str, Any] | None = None,
    ) -> bytes:
        """Sign a serialized body in the native format.

        Args:
            body: The serialized payload.
            content_type: Its content type, e.g. ``application/json``.
            content_encoding: Its content encoding, e.g. ``utf-8``.
            headers: The message headers; the covered ones (``task``, ``id``,
                ``eta``, ``expires``, ``retries``, ``timelimit``) are signed too.
                ``None`` signs no headers.

        Returns:
            The envelope, to send with content type
            ``application/x-queue-meta-signed``.

        Raises:
            EnvelopeError: A content type, encoding or covered header cannot be
                signed.
        """
        signed_part = _native.pack_signed_part(
            self.algorithm.encode("ascii"),
            self.certificate.fingerprint,
            int(self._clock() * 1_000_000),
            _auth.check_token(content_type, "content_type"),
            _auth.check_token(content_encoding, "content_encoding"),
            b"" if headers is None else _native.canonical_headers(headers),
            bytes(body),
        )
        return _native.finish(signed_part, sign(self._key, signed_part, self.digest))

    def sign_auth(
        self, body: bytes, *, content_type: str, content_encoding: str
    ) -> bytes:
        """Sign a serialized body in Celery's ``auth`` format (the body only).

        Args:
            body: The serialized payload.
            content_type: Its content type.
            content_encoding: ``utf-8`` or ``binary``.

        Returns:
            The envelope, ASCII base64 text as bytes, to send with content type
            ``application/data`` and encoding ``utf-8``.

        Raises:
            UnsupportedKeyError: The key is not RSA (Celery verifies RSA only).
            EnvelopeError: The content type or encoding cannot be sent.
        """
        if self.key_type != "rsa":
            raise UnsupportedKeyError(
                f"the auth format needs an RSA key; this signer has "
                f"{describe_key(self._key)}: use the native format (SignedCodec)",
            )
        encoding = _auth.check_token(content_encoding, "content_encoding")
        if content_encoding not in _auth.AUTH_CONTENT_ENCODINGS:
            raise EnvelopeError(
                f"the auth format carries content encodings "
                f"{', '.join(sorted(_auth.AUTH_CONTENT_ENCODINGS))}; "
                f"got {content_encoding!r:.80}",
            )
        body = bytes(body)
        return _auth.pack(
            self.certificate.auth_id,
            sign(self._key, body, self.digest),
            _auth.check_token(content_type, "content_type"),
            encoding,
            body,
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a Signer holds a private key and is not pickled; build one in each "
            "process from the key file",
        )

    def __repr__(self) -> str:
        return (
            f"<Signer {describe_key(self._key)} {self.algorithm} "
            f"subject={self.certificate.subject!r} signer_id={self.signer_id[:16]}...>"
        )
