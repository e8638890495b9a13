"""The consumer side: check a signed envelope before anything is deserialized."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

import msgwire

from . import _auth, _native
from ._certs import Certificate, CertificateStore
from ._keys import ALGORITHMS, normalize_digest, verify
from .errors import (
    HeadersAlteredError,
    InnerContentDisallowedError,
    InvalidSignatureError,
    MalformedSignedMessageError,
    ReplayError,
    UntrustedSignerError,
)

__all__ = [
    "AUTH_CONTENT_TYPE",
    "SIGNED_CONTENT_TYPE",
    "Verified",
    "Verifier",
]

#: Content type of Celery's ``auth`` envelope.
AUTH_CONTENT_TYPE = "application/data"
#: Content type of the native envelope.
SIGNED_CONTENT_TYPE = "application/x-queue-meta-signed"
_SIGNING_TYPES = frozenset({AUTH_CONTENT_TYPE, SIGNED_CONTENT_TYPE})


class Verified(NamedTuple):
    """A verified message's inner payload, still serialized.

    Attributes:
        body: The inner serialized bytes.
        content_type: Their content type (one the verifier accepts).
        content_encoding: Their content encoding.
    """

    body: bytes
    content_type: str
    content_encoding: str


def _shown(signer_id: str) -> str:
    return repr(signer_id[:200])


class Verifier:
    """Verifies signed messages against a store of trusted certificates.

    Each check has its own :class:`~signing.SignatureError` subclass, in this
    order: envelope parsing (:class:`~signing.MalformedSignedMessageError`),
    the signer is trusted (:class:`~signing.UntrustedSignerError`), its
    certificate is valid now (:class:`~signing.CertificateExpiredError`), the
    signature (:class:`~signing.InvalidSignatureError`); for the native format
    also the replay window (:class:`~signing.ReplayError`) and the covered
    headers (:class:`~signing.HeadersAlteredError`); last, the inner content
    type against the accept list (:class:`~signing.InnerContentDisallowedError`).

    Args:
        store: The trusted certificates.
        accept: Inner content types (or codec names, e.g. ``"json"``) a verified
            message may carry. Used as a signing codec, the reader's accept list
            applies as well: a type must be in both.
        digest: The digest of ``auth`` signatures, which the format does not
            record (Celery's ``security_digest``). Native envelopes name their own.
        max_age: Native format: refuse messages signed longer ago than this many
            seconds (for a task with an ``eta``, counted from the later of the
            signing time and the eta). ``None`` turns the age check off.
        max_skew: Native format: tolerate signing times up to this many seconds
            in the future (clock differences between hosts).
        clock: Returns the current Unix time.

    Raises:
        UnsupportedKeyError: *digest* is unknown or too weak.
        msgwire.UnknownCodecError: A name in *accept* is not a known codec.
        ValueError: *max_age* or *max_skew* is negative or not a number.
    """

    __slots__ = ("_clock", "_names", "accept", "digest", "max_age", "max_skew", "store")

    def __init__(
        self,
        store: CertificateStore,
        *,
        accept: Iterable[str] = ("json",),
        digest: str = "sha256",
        max_age: float | None = 3600.0,
        max_skew: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(store, CertificateStore):
            raise TypeError(
                f"store must be a CertificateStore, got {type(store).__name__}; "
                "build one with CertificateStore.from_directory(...)",
            )
        if max_age is not None and not (max_age > 0 and math.isfinite(max_age)):
            raise ValueError(
                f"max_age must be a positive number of seconds or None, got {max_age!r}"
            )
        if not (max_skew >= 0 and math.isfinite(max_skew)):
            raise ValueError(f"max_skew must be seconds >= 0, got {max_skew!r}")
        if isinstance(accept, str):
            accept = [accept]
        self.store = store
        # Only turns codec names into content types; never shared, so that no
        # verifier touches another's (or msgwire's default) registry.
        self._names = msgwire.Registry(accept=())
        self.accept: frozenset[str] = self._names.normalize_accept(accept)
        self.digest = normalize_digest(digest)
        self.max_age = max_age
        self.max_skew = max_skew
        self._clock = clock

    # -- public entry points ----------------------------------------------------

    def verify(
        self,
        signed: bytes | bytearray | memoryview,
        *,
        headers: Mapping[str, Any] | None = None,
        accept: Iterable[str] | None = None,
    ) -> Verified:
        """Verify a native envelope and return its inner payload.

        Args:
            signed: The envelope.
            headers: The message headers as received. When given, each covered
                header must equal its signed value; a task message whose
                signature covers no headers is refused.
            accept: Inner content types (or codec names) allowed for this call
                instead of the verifier's ``accept``; the codecs pass the
                intersection with the reader's accept list.

        Raises:
            SignatureError: A subclass naming the check that failed.
        """
        allowed = self._allowed(accept)
        envelope = _native.unpack(signed)
        algorithm = ALGORITHMS.get(envelope.algorithm)
        if algorithm is None:
            raise MalformedSignedMessageError(
                f"malformed signed message: unknown algorithm {envelope.algorithm!r}",
            )
        signer = envelope.signer_id.hex()
        cert = self.store.get(envelope.signer_id)
        if cert is None:
            raise UntrustedSignerError(
                f"unknown signer {signer}: no trusted certificate has this SHA-256 "
                f"fingerprint ({len(self.store)} trusted); add the signer's "
                "certificate to the store",
            )
        if cert.key_type != algorithm.key_type:
            raise InvalidSignatureError(
                f"bad signature from signer {signer}: the message claims "
                f"{algorithm.name}, but the certificate holds a {cert.key_type} key",
            )
        now = self._clock()
        cert.check_valid(datetime.fromtimestamp(now, timezone.utc), signer)
        if not verify(
            cert.public_key, envelope.signature, envelope.signed_part, algorithm.digest
        ):
            raise InvalidSignatureError(
                f"bad signature from signer {signer} ({cert.subject}): the message "
                "was changed after signing, or signed with another key",
            )
        signed_headers = (
            _native.parse_headers(envelope.headers) if envelope.headers else None
        )
        self._check_window(envelope.signed_at_us / 1_000_000, now, signed_headers)
        if headers is not None:
            self._check_headers(signed_headers, headers)
        return self._inner(
            envelope.content_type, envelope.content_encoding, envelope.body, allowed
        )

    def verify_auth(
        self,
        signed: bytes | bytearray | memoryview | str,
        *,
        accept: Iterable[str] | None = None,
    ) -> Verified:
        """Verify a Celery ``auth`` envelope and return its inner payload.

        The format signs the body only: headers and the inner content type and
        encoding are not protected, and there is no replay window.

        Args:
            signed: The envelope (base64 text, as bytes or str).
            accept: As for :meth:`verify`.

        Raises:
            SignatureError: A subclass naming the check that failed.
        """
        allowed = self._allowed(accept)
        envelope = _auth.unpack(signed)
        if envelope.content_encoding not in _auth.AUTH_CONTENT_ENCODINGS:
            raise MalformedSignedMessageError(
                f"malformed auth-signed message: content encoding "
                f"{envelope.content_encoding!r:.80} is neither utf-8 nor binary",
            )
        signer = _shown(envelope.signer_id)
        found = self.store.find_auth(envelope.signer_id)
        if not found:
            raise UntrustedSignerError(
                f"unknown signer {signer}: no trusted certificate has this issuer "
                f"and serial ({len(self.store)} trusted); add the signer's "
                "certificate to the store",
            )
        candidates = [cert for cert in found if cert.key_type == "rsa"]
        if not candidates:
            raise InvalidSignatureError(
                f"bad signature from signer {signer}: the auth format is signed "
                f"with RSA, but the certificate holds a {found[0].key_type} key",
            )
        now = datetime.fromtimestamp(self._clock(), timezone.utc)
        valid = [cert for cert in candidates if cert.validity_problem(now) is None]
        if not valid:
            candidates[0].check_valid(now, signer)
        if not any(self._verify_auth_signature(cert, envelope) for cert in valid):
            raise InvalidSignatureError(
                f"bad signature from signer {signer}: the body was changed after "
                f"signing, signed with another key, or with a digest other than "
                f"{self.digest}",
            )
        return self._inner(
            envelope.content_type, envelope.content_encoding, envelope.body, allowed
        )

    # -- the individual checks --------------------------------------------------

    def _allowed(self, accept: Iterable[str] | None) -> frozenset[str]:
        if accept is None:
            return self.accept
        if isinstance(accept, str):
            accept = [accept]
        return self._names.normalize_accept(accept)

    def _verify_auth_signature(
        self, cert: Certificate, envelope: _auth.AuthEnvelope
    ) -> bool:
        return verify(cert.public_key, envelope.signature, envelope.body, self.digest)

    def _check_window(
        self, signed_at: float, now: float, signed_headers: Mapping[str, Any] | None
    ) -> None:
        if signed_at - now > self.max_skew:
            raise ReplayError(
                f"message signed {signed_at - now:.3f} s in the future, more than "
                f"max_skew ({self.max_skew} s); check the signer's clock",
            )
        if self.max_age is None:
            return
        start = signed_at
        if signed_headers is not None:
            eta = _native.signed_eta(signed_headers)
            if eta is not None and eta > start:
                start = eta
        age = now - start
        if age > self.max_age:
            raise ReplayError(
                f"message signed at {_iso(signed_at)} is {age:.0f} s old, outside "
                f"the replay window (max_age {self.max_age} s); it may be a replay "
                "(raise max_age if queues can hold messages longer)",
            )

    def _check_headers(
        self, signed_headers: Mapping[str, Any] | None, headers: Mapping[str, Any]
    ) -> None:
        if signed_headers is None:
            if "task" in headers:
                raise HeadersAlteredError(
                    "the message carries task headers, but its signature covers "
                    "none; it was signed without headers and must not be routed "
                    "by unsigned ones",
                )
            return
        name = _native.compare_headers(signed_headers, headers)
        if name is not None:
            raise HeadersAlteredError(
                f"header {name!r} was changed after signing: the signature covers "
                f"{signed_headers[name]!r:.120}, the message says "
                f"{headers.get(name)!r:.120}",
            )

    def _inner(
        self,
        content_type: str,
        content_encoding: str,
        body: bytes,
        accept: frozenset[str],
    ) -> Verified:
        if content_type in _SIGNING_TYPES:
            raise MalformedSignedMessageError(
                f"malformed signed message: the inner content type {content_type!r} "
                "is itself a signed envelope; nesting is refused",
            )
        if content_type not in accept:
            raise InnerContentDisallowedError(content_type, accept)
        return Verified(body, content_type, content_encoding)

    def __repr__(self) -> str:
        return (
            f"<Verifier {len(self.store)} trusted certificates "
            f"accept={sorted(self.accept)} max_age={self.max_age}>"
        )


def _iso(unix: float) -> str:
    try:
        return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"Unix time {unix:.0f}"
