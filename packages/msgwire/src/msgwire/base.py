"""The contracts codec and compressor implementations follow.

A third party adds a serializer by subclassing :class:`Codec` and publishing it
in the ``msgwire.codecs`` entry point group (a compressor: :class:`Compressor`
in ``msgwire.compressors``). The entry point name is the codec's name; the
class is instantiated without arguments when a registry first needs it, so
every option needs a default.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._registry import Registry

__all__ = ["DEFAULT_MAX_SIZE", "Codec", "Compressor", "DecodeContext", "EncodeContext"]

#: Largest body decoded or decompressed, unless a registry or codec says otherwise.
DEFAULT_MAX_SIZE = 64 * 1024 * 1024


def check_size(data: bytes, max_size: int, what: str) -> None:
    """Raise :class:`~msgwire.errors.SizeLimitError` if *data* exceeds *max_size*."""
    if len(data) > max_size:
        from .errors import SizeLimitError  # errors does not import base

        raise SizeLimitError(
            f"{what} of {len(data)} bytes is larger than max_size ({max_size})",
        )


@dataclass(frozen=True, slots=True)
class EncodeContext:
    """What a registry knows about the message a codec is encoding.

    Attributes:
        registry: The registry doing the encoding; wrapping codecs (signing)
            encode their inner payload through it.
        headers: The message headers when the payload is a task message body,
            so a codec that signs can cover them; ``None`` otherwise.
    """

    registry: Registry
    headers: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DecodeContext:
    """What a registry knows about the message a codec is decoding.

    Attributes:
        registry: The registry doing the decoding.
        accept: Content types the reader accepts. A wrapping codec must check
            the content type of its inner payload against it.
        headers: The message headers, when known.
    """

    registry: Registry
    accept: frozenset[str]
    headers: Mapping[str, Any] | None = None


class Codec(ABC):
    """Turns Python values into bytes and back.

    Subclasses set three class (or instance) attributes and implement
    :meth:`dumps` and :meth:`loads`. Options are keyword-only constructor
    arguments with defaults; a configured instance is registered in a
    :class:`~msgwire.Registry` with :meth:`~msgwire.Registry.register`.

    Attributes:
        name: Short name used in settings, e.g. ``"json"``.
        content_type: MIME type written to the ``content_type`` property.
        content_encoding: ``"utf-8"`` for text formats, ``"binary"`` otherwise.
    """

    name: str
    content_type: str
    content_encoding: str

    @abstractmethod
    def dumps(self, obj: Any) -> bytes:
        """Serialize *obj*.

        Raises:
            EncodeError: *obj* holds a value this codec cannot represent.
        """

    @abstractmethod
    def loads(self, data: bytes) -> Any:
        """Deserialize *data*.

        Raises:
            DecodeError: *data* is malformed, truncated or too large.
        """

    def encode(self, obj: Any, context: EncodeContext) -> bytes:
        """Serialize *obj* knowing the message context; defaults to :meth:`dumps`.

        Wrapping codecs (message signing) override this to serialize through
        an inner codec of ``context.registry`` and to cover ``context.headers``.
        """
        return self.dumps(obj)

    def decode(self, data: bytes, context: DecodeContext) -> Any:
        """Deserialize *data* knowing the message context; defaults to :meth:`loads`.

        Wrapping codecs override this to verify the envelope and to check the
        inner content type against ``context.accept`` before decoding it.
        """
        return self.loads(data)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.content_type}>"


class Compressor(ABC):
    """Compresses message bodies; decompression is always bounded.

    Attributes:
        name: Short name used in settings, e.g. ``"zlib"``.
        content_type: Value of the ``compression`` message header, e.g.
            ``"application/x-gzip"`` (kombu's names).
        aliases: Other names that select this compressor, e.g. ``("gzip",)``.
    """

    name: str
    content_type: str
    aliases: tuple[str, ...] = ()

    @abstractmethod
    def compress(self, data: bytes) -> bytes:
        """Return *data* compressed."""

    @abstractmethod
    def decompress(self, data: bytes, max_size: int) -> bytes:
        """Return *data* decompressed, producing at most *max_size* bytes.

        Raises:
            SizeLimitError: The output would be larger than *max_size*.
            DecodeError: *data* is corrupt or truncated.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.content_type}>"
