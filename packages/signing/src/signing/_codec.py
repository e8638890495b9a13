"""msgwire codecs that sign what an inner codec serializes, and verify it back.

Both are published in the ``msgwire.codecs`` entry point group, so a registry
can find them by name and content type; but an entry point instance is created
without arguments and so has no keys: it raises :class:`NotConfiguredError`
saying how to configure it. An application registers a configured instance in
its own registry instead::

    registry.register(AuthCodec(signer=signer, verifier=verifier))

Registering ``AuthCodec`` takes content type ``application/data`` over from
msgwire's ``raw`` codec in that registry only.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

from msgwire import Codec, DecodeContext, EncodeContext, Registry

from ._signer import Signer
from ._verifier import AUTH_CONTENT_TYPE, SIGNED_CONTENT_TYPE, Verified, Verifier
from .errors import NotConfiguredError, UnsupportedKeyError

__all__ = ["AuthCodec", "SignedCodec"]


class _SigningCodec(Codec):
    """What both signing codecs share: an inner codec, a signer, a verifier."""

    def __init__(
        self,
        *,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
        serializer: str = "json",
    ) -> None:
        if serializer in ("auth", "signed"):
            raise ValueError(
                f"the inner serializer of the {self.name!r} codec cannot be "
                f"{serializer!r}: signed envelopes do not nest",
            )
        self.signer = signer
        self.verifier = verifier
        self.serializer = serializer
        # For dumps()/loads() called without a registry; never shared.
        self._own_registry = Registry()

    def _not_configured(self, role: str, action: str) -> NotConfiguredError:
        cls = type(self).__name__
        return NotConfiguredError(
            f"the {self.name!r} codec has no {role}, so it cannot {action}; the "
            f"instance made from its entry point has no keys: register a "
            f"configured one in your registry, e.g. registry.register({cls}("
            "signer=Signer.from_files(key=..., cert=...), "
            "verifier=Verifier(CertificateStore.from_directory(...))))",
        )

    @abstractmethod
    def _sign(
        self,
        signer: Signer,
        body: bytes,
        content_type: str,
        content_encoding: str,
        headers: Mapping[str, Any] | None,
    ) -> bytes:
        """Put a serialized payload into this format's signed envelope."""

    @abstractmethod
    def _verify(
        self,
        verifier: Verifier,
        data: bytes,
        headers: Mapping[str, Any] | None,
        accept: frozenset[str],
    ) -> Verified:
        """Verify this format's envelope and return the inner payload."""

    def encode(self, obj: Any, context: EncodeContext) -> bytes:
        """Serialize *obj* with the inner codec of ``context.registry``, then sign.

        Raises:
            NotConfiguredError: This instance has no signer.
            EnvelopeError: The inner content type or a covered header cannot
                be signed.
            msgwire.EncodeError: The inner codec cannot serialize *obj*.
        """
        if self.signer is None:
            raise self._not_configured("signer", "sign")
        inner = context.registry.dumps(obj, self.serializer)
        return self._sign(
            self.signer,
            inner.data,
            inner.content_type,
            inner.content_encoding,
            context.headers,
        )

    def decode(self, data: bytes, context: DecodeContext) -> Any:
        """Verify *data*, check its inner content type, then deserialize it.

        The reader's accept list (``context.accept``) governs the outer,
        signed content type, which msgwire checked before calling this; the
        verifier's accept list governs the inner one. A worker that lists only
        the signed type therefore refuses unsigned messages, and a trusted
        signer still cannot deliver an inner type the verifier does not accept.

        Raises:
            NotConfiguredError: This instance has no verifier.
            SignatureError: Verification failed (a subclass says which check).
            msgwire.DecodeError: The verified inner payload does not decode.
        """
        if self.verifier is None:
            raise self._not_configured("verifier", "verify")
        verified = self._verify(
            self.verifier, data, context.headers, self.verifier.accept
        )
        return context.registry.loads(
            verified.body,
            verified.content_type,
            verified.content_encoding,
            accept=(verified.content_type,),
        )

    def dumps(self, obj: Any) -> bytes:
        """Sign *obj* serialized by the inner codec, with no message headers.

        Raises:
            NotConfiguredError: This instance has no signer.
        """
        return self.encode(obj, EncodeContext(self._own_registry))

    def loads(self, data: bytes) -> Any:
        """Verify and deserialize *data*, accepting the verifier's inner types.

        Raises:
            NotConfiguredError: This instance has no verifier.
            SignatureError: Verification failed.
        """
        if self.verifier is None:
            raise self._not_configured("verifier", "verify")
        return self.decode(
            data, DecodeContext(self._own_registry, self.verifier.accept)
        )

    def __repr__(self) -> str:
        signer = (
            "none" if self.signer is None else repr(self.signer.certificate.subject)
        )
        verifier = (
            "none"
            if self.verifier is None
            else f"{len(self.verifier.store)} trusted certificates"
        )
        return (
            f"<{type(self).__name__} {self.name!r} {self.content_type} "
            f"inner={self.serializer!r} signer={signer} verifier={verifier}>"
        )


class AuthCodec(_SigningCodec):
    """Celery's ``auth`` serializer: RSA-PSS over the inner body only.

    A Celery 5 worker configured with ``security_cert_store`` verifies what
    it signs, and it verifies what a Celery producer with ``security_key`` and
    ``security_certificate`` sends. Headers are not protected: use
    :class:`SignedCodec` between queue-meta peers.

    Args:
        signer: Signs outgoing messages; its key must be RSA. ``None`` for a
            consumer that only verifies.
        verifier: Verifies incoming messages. ``None`` for a producer only.
        serializer: The inner codec's name in the registry (``json`` by default).

    Raises:
        UnsupportedKeyError: The signer's key is not RSA.
        ValueError: *serializer* is a signing codec.
    """

    name = "auth"
    content_type = AUTH_CONTENT_TYPE
    content_encoding = "utf-8"

    def __init__(
        self,
        *,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
        serializer: str = "json",
    ) -> None:
        if signer is not None and signer.key_type != "rsa":
            raise UnsupportedKeyError(
                f"the auth format needs an RSA key; the signer's is {signer.key_type}: "
                "use SignedCodec for ECDSA and Ed25519 keys",
            )
        super().__init__(signer=signer, verifier=verifier, serializer=serializer)

    def _sign(
        self,
        signer: Signer,
        body: bytes,
        content_type: str,
        content_encoding: str,
        headers: Mapping[str, Any] | None,
    ) -> bytes:
        return signer.sign_auth(
            body, content_type=content_type, content_encoding=content_encoding
        )

    def _verify(
        self,
        verifier: Verifier,
        data: bytes,
        headers: Mapping[str, Any] | None,
        accept: frozenset[str],
    ) -> Verified:
        return verifier.verify_auth(data, accept=accept)


class SignedCodec(_SigningCodec):
    """The native format: signs the body, the routing headers and a timestamp.

    Content type ``application/x-queue-meta-signed``. Through
    :meth:`msgwire.TaskMessage.encode` and :meth:`~msgwire.TaskMessage.decode`
    the task name, id, eta, expires, retries and time limits are covered: a
    body re-pointed at another task is refused, and so is a message outside
    the verifier's replay window. RSA, ECDSA and Ed25519 keys all work.

    Args:
        signer: Signs outgoing messages. ``None`` for a consumer only.
        verifier: Verifies incoming messages. ``None`` for a producer only.
        serializer: The inner codec's name in the registry (``json`` by default).

    Raises:
        ValueError: *serializer* is a signing codec.
    """

    name = "signed"
    content_type = SIGNED_CONTENT_TYPE
    content_encoding = "binary"

    def _sign(
        self,
        signer: Signer,
        body: bytes,
        content_type: str,
        content_encoding: str,
        headers: Mapping[str, Any] | None,
    ) -> bytes:
        return signer.sign(
            body,
            content_type=content_type,
            content_encoding=content_encoding,
            headers=headers,
        )

    def _verify(
        self,
        verifier: Verifier,
        data: bytes,
        headers: Mapping[str, Any] | None,
        accept: frozenset[str],
    ) -> Verified:
        return verifier.verify(data, headers=headers, accept=accept)
