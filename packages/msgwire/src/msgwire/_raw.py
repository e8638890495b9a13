"""Passthrough codecs for payloads that are already bytes or text.

``raw`` carries bytes unchanged as ``application/data``/``binary`` and ``text``
carries a str as ``text/plain``/``utf-8``: the content types kombu gives raw
bodies. Neither is ever in a default accept list. When message signing is
configured, its codec takes over ``application/data`` in that registry.
"""

from __future__ import annotations

from typing import Any

from .base import Codec
from .errors import DecodeError, EncodeError

__all__ = ["RawCodec", "TextCodec"]


class RawCodec(Codec):
    """Bytes in, the same bytes out."""

    name = "raw"
    content_type = "application/data"
    content_encoding = "binary"

    def dumps(self, obj: Any) -> bytes:
        """Return *obj*, which must be bytes-like, as bytes.

        Raises:
            EncodeError: *obj* is not bytes, bytearray or memoryview.
        """
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return bytes(obj)
        raise EncodeError(
            f"the raw codec passes bytes through unchanged; got {type(obj).__name__} "
            "(use the 'text' codec for str, or 'json' for structured values)",
        )

    def loads(self, data: bytes) -> bytes:
        """Return *data* as bytes."""
        return bytes(data)


class TextCodec(Codec):
    """A str travels as its UTF-8 bytes."""

    name = "text"
    content_type = "text/plain"
    content_encoding = "utf-8"

    def dumps(self, obj: Any) -> bytes:
        """Return *obj*, which must be a str, encoded as UTF-8.

        Raises:
            EncodeError: *obj* is not a str or cannot be encoded.
        """
        if not isinstance(obj, str):
            raise EncodeError(
                f"the text codec carries str values; got {type(obj).__name__}",
            )
        try:
            return obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodeError(f"text is not encodable as UTF-8: {exc}") from exc

    def loads(self, data: bytes) -> str:
        """Return *data* decoded from UTF-8.

        Raises:
            DecodeError: *data* is not valid UTF-8.
        """
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"text body is not valid UTF-8: {exc}") from exc
