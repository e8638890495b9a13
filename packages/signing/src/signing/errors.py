"""The exceptions signing raises, under one base class, :class:`SigningError`.

Verification failures are :class:`SignatureError` subclasses, so a consumer can
reject a message on ``except SignatureError`` whatever the reason. They are
also :class:`msgwire.DecodeError` subclasses: a signing codec's failure passes
through :meth:`msgwire.Registry.loads` and :meth:`msgwire.TaskMessage.decode`
unchanged, and a consumer that rejects undecodable messages rejects these too.

Every exception pickles with all its arguments. Messages never contain key
material or passwords.
"""

from __future__ import annotations

from collections.abc import Iterable

from msgwire import ContentDisallowedError, DecodeError, EncodeError, MsgwireError

__all__ = [
    "CertificateExpiredError",
    "EnvelopeError",
    "HeadersAlteredError",
    "InnerContentDisallowedError",
    "InsecureKeyFileWarning",
    "InvalidSignatureError",
    "KeyLoadError",
    "MalformedSignedMessageError",
    "NotConfiguredError",
    "ReplayError",
    "SignatureError",
    "SigningError",
    "UnsupportedKeyError",
    "UntrustedSignerError",
]


class SigningError(Exception):
    """Base class for every error raised by signing."""


class KeyLoadError(SigningError, ValueError):
    """A key or certificate could not be read (bad file, format or password)."""


class UnsupportedKeyError(SigningError, ValueError):
    """The key type, size, curve or digest cannot be used (or not in this format)."""


class NotConfiguredError(SigningError, MsgwireError):
    """A signing codec was used without the signer or verifier the call needs.

    The entry point instances of the ``msgwire.codecs`` group are created with
    no arguments, so they have no keys; an application registers a configured
    instance in its registry instead.
    """


class EnvelopeError(SigningError, EncodeError):
    """A value cannot be put into a signed envelope (a bad content type or header)."""


class SignatureError(SigningError, DecodeError):
    """A message failed verification; it must not be deserialized or run."""


class MalformedSignedMessageError(SignatureError):
    """The signed envelope could not be parsed (truncated, garbage, bad field)."""


class InvalidSignatureError(SignatureError):
    """The signature does not match the message (it was changed or forged)."""


class UntrustedSignerError(SignatureError):
    """The message names a signer whose certificate is not in the trusted store."""


class CertificateExpiredError(SignatureError):
    """The signer's certificate is not valid now: expired, or not yet valid."""


class ReplayError(SignatureError):
    """The message's signing time is outside the verifier's replay window."""


class HeadersAlteredError(SignatureError):
    """A message header covered by the signature differs from the signed value."""


class InnerContentDisallowedError(SignatureError, ContentDisallowedError):
    """A verified message carries an inner content type the reader does not accept.

    A trusted signer still cannot deliver, say, pickle to a worker that accepts
    only JSON. Also a :class:`msgwire.ContentDisallowedError`.

    Attributes:
        content_type: The refused inner content type.
        accept: The content types that were accepted.
    """

    def __init__(self, content_type: str, accept: Iterable[str] | None = None) -> None:
        self.content_type = content_type
        self.accept = frozenset(accept or ())
        allowed = ", ".join(sorted(self.accept)) or "nothing"
        # Skip ContentDisallowedError.__init__, whose wording is about the outer
        # content type; the attributes are the same.
        Exception.__init__(
            self,
            f"refusing the signed message: its inner content type {content_type!r} "
            f"is not accepted ({allowed}); a valid signature does not make a "
            "content type safe to decode",
        )

    def __reduce__(
        self,
    ) -> tuple[type[InnerContentDisallowedError], tuple[str, frozenset[str]]]:
        return (type(self), (self.content_type, self.accept))


class InsecureKeyFileWarning(UserWarning):
    """A private key file can be read or written by users other than its owner."""
