"""The native signed envelope: versioned, length-prefixed, covering headers.

Layout (all integers big-endian)::

    magic        4 bytes   89 51 4D 53  ("\\x89QMS")
    version      1 byte    01
    then eight fields, each a uint32 length followed by that many bytes:
    algorithm          ASCII: "ed25519", "ecdsa-<digest>" or "rsa-pss-<digest>"
    signer id          32 bytes: SHA-256 of the signer's DER certificate
    signed at          8 bytes: int64 microseconds since the Unix epoch (UTC)
    content type       ASCII, the inner payload's content type
    content encoding   ASCII, the inner payload's content encoding
    headers            canonical JSON of the covered headers, or empty
    body               the inner serialized payload, unchanged
    signature          over every byte before this field's length prefix

Nothing may follow the signature. The covered headers are ``task``, ``id``,
``eta``, ``expires``, ``retries`` and ``timelimit``, written as one JSON object
with sorted keys, no whitespace and ASCII only; a missing ``retries`` reads as
0, a missing ``timelimit`` as ``[null, null]``, whole floats as integers.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .errors import EnvelopeError, MalformedSignedMessageError

__all__ = [
    "COVERED_HEADERS",
    "MAGIC",
    "VERSION",
    "NativeEnvelope",
    "canonical_headers",
    "compare_headers",
    "finish",
    "pack_signed_part",
    "parse_headers",
    "signed_eta",
    "unpack",
]

MAGIC = b"\x89QMS"
VERSION = 1
_PREFIX = MAGIC + bytes([VERSION])
_LENGTH = struct.Struct(">I")
_TIME = struct.Struct(">q")
FINGERPRINT_SIZE = 32
MAX_ALGORITHM = 32
MAX_TOKEN = 255
MAX_HEADERS = 64 * 1024
MAX_SIGNATURE = 2048

#: The headers the native format signs: the ones that choose what runs and when.
COVERED_HEADERS: tuple[str, ...] = (
    "task",
    "id",
    "eta",
    "expires",
    "retries",
    "timelimit",
)


def _malformed(what: str) -> MalformedSignedMessageError:
    return MalformedSignedMessageError(f"malformed signed message: {what}")


class _BadHeaderError(ValueError):
    """A header value has a type the canonical form cannot hold."""


def _number(value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _BadHeaderError("must hold numbers or nulls")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _BadHeaderError("must hold finite numbers")
        if value.is_integer():
            return int(value)
    return value


def _normalize(name: str, value: Any) -> Any:
    if name in ("task", "id"):
        if value is None or isinstance(value, str):
            return value
        raise _BadHeaderError("must be a string or null")
    if name in ("eta", "expires"):
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=timezone.utc)
            return value.isoformat()
        raise _BadHeaderError("must be an ISO-8601 string, a datetime or null")
    if name == "retries":
        if value is None:
            return 0
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise _BadHeaderError("must be a non-negative integer")
    # timelimit
    if value is None:
        return [None, None]
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return [_number(value[0]), _number(value[1])]
    raise _BadHeaderError("must be [hard, soft]")


def canonical_headers(headers: Mapping[str, Any]) -> bytes:
    """Return the canonical JSON of the covered headers of *headers*.

    Raises:
        EnvelopeError: A covered header has a value that cannot be signed.
    """
    covered = {}
    for name in COVERED_HEADERS:
        value = headers.get(name)
        try:
            covered[name] = _normalize(name, value)
        except _BadHeaderError as exc:
            raise EnvelopeError(
                f"cannot sign header {name!r}: it {exc}, got {value!r:.80}",
            ) from None
    return json.dumps(
        covered, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def _refuse_constant(text: str) -> Any:
    raise ValueError(f"{text} is not allowed")


def parse_headers(block: bytes) -> dict[str, Any]:
    """Parse a verified header block back into covered header values.

    Raises:
        MalformedSignedMessageError: The block is not the canonical form.
    """
    try:
        value = json.loads(block.decode("ascii"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _malformed("the signed headers are not ASCII JSON") from None
    if not isinstance(value, dict) or set(value) != set(COVERED_HEADERS):
        raise _malformed(
            f"the signed headers must be an object of {', '.join(COVERED_HEADERS)}",
        )
    for name in COVERED_HEADERS:
        try:
            _normalize(name, value[name])
        except _BadHeaderError as exc:
            raise _malformed(f"the signed header {name!r} {exc}") from None
    return value


def compare_headers(
    signed: Mapping[str, Any], received: Mapping[str, Any]
) -> str | None:
    """Return the first covered header whose received value differs, else ``None``."""
    for name in COVERED_HEADERS:
        try:
            got = _normalize(name, received.get(name))
        except _BadHeaderError:
            return name
        if got != signed[name]:
            return name
    return None


def signed_eta(headers: Mapping[str, Any]) -> float | None:
    """Return the signed ``eta`` as a Unix time, or ``None`` if absent or unreadable."""
    text = headers.get("eta")
    if not isinstance(text, str):
        return None
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _field(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


def pack_signed_part(
    algorithm: bytes,
    signer_id: bytes,
    signed_at_us: int,
    content_type: bytes,
    content_encoding: bytes,
    headers: bytes,
    body: bytes,
) -> bytes:
    """Return the envelope up to the signature: the bytes the signature covers."""
    return b"".join(
        (
            _PREFIX,
            _field(algorithm),
            _field(signer_id),
            _field(_TIME.pack(signed_at_us)),
            _field(content_type),
            _field(content_encoding),
            _field(headers),
            _field(body),
        )
    )


def finish(signed_part: bytes, signature: bytes) -> bytes:
    """Append the signature field to the signed part."""
    return signed_part + _field(signature)


@dataclass(frozen=True, slots=True)
class NativeEnvelope:
    """The parsed fields of a native signed message (not yet verified)."""

    algorithm: str
    signer_id: bytes
    signed_at_us: int
    content_type: str
    content_encoding: str
    headers: bytes
    body: bytes
    signature: bytes
    signed_part: bytes


def _ascii(data: bytes, what: str, limit: int) -> str:
    if not data or len(data) > limit:
        raise _malformed(f"the {what} must be 1 to {limit} bytes, got {len(data)}")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise _malformed(f"the {what} is not ASCII") from None
    if not text.isprintable():
        raise _malformed(f"the {what} {text!r:.80} is not printable")
    return text


def unpack(data: bytes | bytearray | memoryview) -> NativeEnvelope:
    """Parse a native envelope; nothing is verified yet.

    Raises:
        MalformedSignedMessageError: Truncated, wrong magic or version, a field
            of the wrong size, or trailing bytes.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _malformed(f"expected bytes, got {type(data).__name__}")
    raw = bytes(data)
    if raw[:4] != MAGIC:
        raise _malformed("it does not start with the signed-envelope magic 89 51 4D 53")
    if len(raw) < 5:
        raise _malformed("it ends after the magic")
    if raw[4] != VERSION:
        raise _malformed(
            f"envelope version {raw[4]} is not supported (this reader knows {VERSION})"
        )
    offset = 5
    fields: list[bytes] = []
    signature_at = 0
    for index in range(8):
        if index == 7:
            signature_at = offset
        if len(raw) - offset < _LENGTH.size:
            raise _malformed(f"it is truncated in field {index + 1} of 8")
        (size,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if size > len(raw) - offset:
            raise _malformed(f"field {index + 1} of 8 runs past the end")
        fields.append(raw[offset : offset + size])
        offset += size
    if offset != len(raw):
        raise _malformed(f"{len(raw) - offset} bytes follow the signature")
    algorithm, signer_id, signed_at, ctype, cencoding, headers, body, signature = fields
    if len(signer_id) != FINGERPRINT_SIZE:
        raise _malformed(f"the signer id must be {FINGERPRINT_SIZE} bytes")
    if len(signed_at) != _TIME.size:
        raise _malformed(f"the signing time must be {_TIME.size} bytes")
    if len(headers) > MAX_HEADERS:
        raise _malformed("the signed headers are too large")
    if not signature or len(signature) > MAX_SIGNATURE:
        raise _malformed(f"the signature must be 1 to {MAX_SIGNATURE} bytes")
    return NativeEnvelope(
        _ascii(algorithm, "algorithm", MAX_ALGORITHM),
        signer_id,
        _TIME.unpack(signed_at)[0],
        _ascii(ctype, "content type", MAX_TOKEN),
        _ascii(cencoding, "content encoding", MAX_TOKEN),
        headers,
        body,
        signature,
        raw[:signature_at],
    )
