"""The exceptions signing raises, under one base class, :class:`SigningError`.

Verification failures are :class:`SignatureError` subclasses, so a consumer can
reject a message on ``except SignatureError`` whatever the reason. Every
exception pickles with all its arguments. Messages never contain key material.
"""

from __future__ import annotations

__all__ = [
    "CertificateExpiredError",
    "InvalidSignatureError",
    "KeyLoadError",
    "MalformedSignedMessageError",
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
    """The key type cannot be used with this format (Celery's format needs RSA)."""


class SignatureError(SigningError):
    """A message failed verification; it must not be deserialized or run."""


class MalformedSignedMessageError(SignatureError):
    """The signed envelope could not be parsed."""


class InvalidSignatureError(SignatureError):
    """The signature does not match the message (it was changed or forged)."""


class UntrustedSignerError(SignatureError):
    """The message names a signer whose certificate is not in the trusted store."""


class CertificateExpiredError(SignatureError):
    """The signer's certificate is not valid now."""


class ReplayError(SignatureError):
    """The message's signing time is outside the verifier's replay window."""
