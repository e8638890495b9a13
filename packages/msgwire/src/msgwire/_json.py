"""JSON codec, ``application/json``: kombu's format, extended types tagged.

The standard library path writes exactly what kombu's encoder writes:
ASCII-only, default separators, non-JSON types as ``{"__type__": ...,
"__value__": ...}`` tags (see :mod:`msgwire._tags`).

With ``msgwire[orjson]`` installed, decoding takes a fast path (``fast=None``,
the default, means "when orjson is importable") that never changes what a body
decodes to: bodies orjson would read differently (extended-type tags, integers
beyond 64 bits, NaN, lone surrogates) go through the standard library instead.
Encoding always uses the standard library, so the bytes stay kombu's: orjson
would write UUIDs as plain strings and NaN as null, and proving a payload free
of those costs as much as encoding it.

Options: ``ensure_ascii`` (default true) and ``compact`` (default false) for
the standard library path; ``fast`` as above.
"""

from __future__ import annotations

import json
import json.encoder
from typing import Any

from ._tags import tag, untag_object
from .base import Codec
from .errors import DecodeError, EncodeError, MissingDependencyError

__all__ = ["JsonCodec"]

# orjson reads integers past 64 bits as floats and knows nothing of tags, so
# a body holding a tag or a run of 19 digits is decoded by the standard
# library. Digits are found by mapping every byte to "9" or " " in C.
_TAG_MARK = b"__type__"
_DIGITS_TO_NINE = bytes(0x39 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_NUMBER = b"9" * 19


def _orjson_can_decode(data: bytes | bytearray | memoryview) -> bool:
    return _TAG_MARK not in data and _LONG_NUMBER not in bytes(data).translate(
        _DIGITS_TO_NINE
    )


def _import_orjson() -> Any:
    try:
        import orjson
    except ImportError:
        return None
    return orjson


class JsonCodec(Codec):
    """The default codec: JSON with kombu's tags for datetime, Decimal, UUID, bytes."""

    name = "json"
    content_type = "application/json"
    content_encoding = "utf-8"

    def __init__(
        self,
        *,
        ensure_ascii: bool = True,
        compact: bool = False,
        fast: bool | None = None,
    ) -> None:
        self._orjson = _import_orjson() if fast or fast is None else None
        if fast and self._orjson is None:
            raise MissingDependencyError("fast JSON path", "orjson")
        self.ensure_ascii = ensure_ascii
        self.compact = compact
        self.fast = self._orjson is not None
        separators = (",", ":") if compact else (", ", ": ")
        self._encoder = json.JSONEncoder(
            ensure_ascii=ensure_ascii, separators=separators, default=tag
        )
        # The C encoder, built once: JSONEncoder.encode builds a new one (and a
        # cycle-check dict) on every call, which costs more than the encoding.
        # Cycles then end in RecursionError, reported as an EncodeError.
        make = getattr(json.encoder, "c_make_encoder", None)
        self._c_encoder = (
            None
            if make is None
            else make(
                None,
                tag,
                json.encoder.encode_basestring_ascii
                if ensure_ascii
                else json.encoder.encode_basestring,
                None,
                separators[1],
                separators[0],
                False,
                False,
                True,
            )
        )
        self._decoder = json.JSONDecoder(object_hook=untag_object)

    def dumps(self, obj: Any) -> bytes:
        """Serialize *obj* to JSON bytes.

        Raises:
            EncodeError: *obj* holds an unsupported type, a dict key that is not
                a str, int, float, bool or None, or a reference cycle.
        """
        try:
            if self._c_encoder is not None and type(obj) is not str:
                return "".join(self._c_encoder(obj, 0)).encode("utf-8")
            return self._encoder.encode(obj).encode("utf-8")
        except EncodeError:
            raise
        except RecursionError as exc:
            raise EncodeError(
                "cannot serialize to JSON: the value contains a reference cycle or "
                "is nested too deeply",
            ) from exc
        except (TypeError, ValueError) as exc:
            raise EncodeError(f"cannot serialize to JSON: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        """Deserialize JSON from UTF-8 bytes.

        Raises:
            DecodeError: *data* is not UTF-8, not JSON, nested too deeply, or holds
                a malformed or unknown extended type tag.
        """
        if self._orjson is not None and _orjson_can_decode(data):
            try:
                return self._orjson.loads(data)
            except self._orjson.JSONDecodeError:
                pass  # NaN, lone surrogates, or an error the stdlib explains
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"JSON body is not valid UTF-8: {exc}") from exc
        try:
            return self._decoder.decode(text)
        except json.JSONDecodeError as exc:
            raise DecodeError(f"invalid JSON: {exc}") from exc
        except RecursionError as exc:
            raise DecodeError("invalid JSON: nested too deeply") from exc
