"""Celery's ``auth`` envelope: packing and strict parsing.

The body is the standard base64 encoding of five fields joined by the two
bytes ``00 01``: base64 of the signer id, base64 of the signature, the inner
content type, the inner content encoding and the inner body (raw). Only the
inner body is signed. Celery's reader splits at most four times, so the body
may contain the separator.

The parser is stricter than Celery's: base64 must be canonical (no stray
characters, no non-zero padding bits), so that no two byte strings parse to
the same message; the content type and encoding must be printable ASCII.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from .errors import EnvelopeError, MalformedSignedMessageError

__all__ = [
    "AUTH_CONTENT_ENCODINGS",
    "AuthEnvelope",
    "check_token",
    "pack",
    "unpack",
]

SEPARATOR = b"\x00\x01"
#: The content encodings kombu and msgwire write. Celery does not sign them, so
#: anything else is refused rather than passed on unchecked.
AUTH_CONTENT_ENCODINGS = frozenset({"utf-8", "binary"})
MAX_TOKEN = 255
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_TOKEN = re.compile(r"[\x20-\x7e]+")


def _malformed(what: str) -> MalformedSignedMessageError:
    return MalformedSignedMessageError(f"malformed auth-signed message: {what}")


def check_token(value: str, what: str) -> bytes:
    """Return a content type or encoding as ASCII after checking its form.

    Raises:
        EnvelopeError: Empty, too long, or not printable ASCII.
    """
    if not _TOKEN.fullmatch(value) or len(value) > MAX_TOKEN:
        raise EnvelopeError(
            f"{what} must be 1 to {MAX_TOKEN} printable ASCII characters, "
            f"got {value!r:.80}",
        )
    return value.encode("ascii")


def _b64decode(data: bytes, what: str) -> bytes:
    if len(data) % 4 or not _BASE64.fullmatch(data):
        raise _malformed(f"{what} is not base64")
    try:
        raw = base64.b64decode(data)
    except (binascii.Error, ValueError):
        raise _malformed(f"{what} is not base64") from None
    # Only the last quantum can hide non-zero padding bits.
    if raw and base64.b64encode(raw[(len(raw) - 1) // 3 * 3 :]) != data[-4:]:
        raise _malformed(f"{what} is not canonical base64")
    return raw


def _token(data: bytes, what: str) -> str:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise _malformed(f"the {what} is not ASCII") from None
    if not _TOKEN.fullmatch(text) or len(text) > MAX_TOKEN:
        raise _malformed(f"the {what} {text!r:.80} is not printable ASCII")
    return text


@dataclass(frozen=True, slots=True)
class AuthEnvelope:
    """The parsed fields of an auth-signed message (not yet verified)."""

    signer_id: str
    signature: bytes
    content_type: str
    content_encoding: str
    body: bytes


def pack(
    signer_id: str,
    signature: bytes,
    content_type: bytes,
    content_encoding: bytes,
    body: bytes,
) -> bytes:
    """Return the auth envelope of an already signed body."""
    fields = SEPARATOR.join(
        (
            base64.b64encode(signer_id.encode("utf-8")),
            base64.b64encode(signature),
            content_type,
            content_encoding,
            body,
        )
    )
    return base64.b64encode(fields)


def unpack(data: bytes | bytearray | memoryview | str) -> AuthEnvelope:
    """Parse an auth envelope; nothing is verified yet.

    Raises:
        MalformedSignedMessageError: Any field is missing or malformed.
    """
    if isinstance(data, str):
        try:
            raw = data.encode("ascii")
        except UnicodeEncodeError:
            raise _malformed("the body is not ASCII base64 text") from None
    else:
        raw = bytes(data)
    if not raw:
        raise _malformed("the body is empty")
    fields = _b64decode(raw, "the body").split(SEPARATOR, 4)
    if len(fields) != 5:
        raise _malformed(
            f"expected 5 fields separated by 00 01, found {len(fields)}",
        )
    signer_raw, signature_raw, content_type, content_encoding, body = fields
    try:
        signer_id = _b64decode(signer_raw, "the signer field").decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("the signer id is not UTF-8 text") from None
    if not signer_id:
        raise _malformed("the signer id is empty")
    signature = _b64decode(signature_raw, "the signature field")
    if not signature:
        raise _malformed("the signature is empty")
    return AuthEnvelope(
        signer_id,
        signature,
        _token(content_type, "content type"),
        _token(content_encoding, "content encoding"),
        body,
    )
