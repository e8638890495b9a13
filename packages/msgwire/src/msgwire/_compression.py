"""Body compression with kombu's header values; decompression is always bounded.

| name | ``compression`` header | aliases | needs |
|------|------------------------|---------|-------|
| zlib | ``application/x-gzip`` | gzip | (stdlib) |
| bzip2 | ``application/x-bz2`` | bzip | (stdlib) |
| lzma | ``application/x-lzma`` | xz | (stdlib) |
| zstd | ``application/zstd`` | zstandard | ``msgwire[zstd]`` or Python 3.14 |

Every decompressor stops after ``max_size`` bytes of output and raises
:class:`~msgwire.errors.SizeLimitError`, so a compression bomb costs at most
that much memory; truncated or trailing input raises
:class:`~msgwire.errors.DecodeError`.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from typing import Any, Protocol

from .base import Compressor
from .errors import DecodeError, MissingDependencyError, SizeLimitError

__all__ = ["Bzip2Compressor", "LzmaCompressor", "ZlibCompressor", "ZstdCompressor"]


class _Stream(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def _too_large(name: str, max_size: int) -> SizeLimitError:
    return SizeLimitError(
        f"{name} body decompresses to more than {max_size} bytes (the max_size "
        "limit); refusing it as a possible compression bomb",
    )


_STREAM_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    ValueError,
    EOFError,
    lzma.LZMAError,
)


def _bounded_streams(
    name: str,
    new_stream: Callable[[], _Stream],
    data: bytes,
    max_size: int,
    errors: tuple[type[Exception], ...] = _STREAM_ERRORS,
) -> bytes:
    """Decompress one or more concatenated streams, producing at most *max_size*."""
    out = bytearray()
    remaining = data
    while True:
        stream = new_stream()
        try:
            out += stream.decompress(remaining, max_size + 1 - len(out))
        except errors as exc:
            raise DecodeError(f"corrupt {name} body: {exc}") from exc
        if len(out) > max_size:
            raise _too_large(name, max_size)
        if not stream.eof:
            raise DecodeError(f"truncated {name} body: the stream does not end")
        remaining = stream.unused_data
        if not remaining:
            return bytes(out)


class ZlibCompressor(Compressor):
    """zlib, as kombu's ``application/x-gzip``; decompression also reads gzip."""

    name = "zlib"
    content_type = "application/x-gzip"
    aliases = ("gzip",)

    def __init__(self, *, level: int = 6) -> None:
        self.level = level

    def compress(self, data: bytes) -> bytes:
        """Return *data* in a zlib stream."""
        return zlib.compress(data, self.level)

    def decompress(self, data: bytes, max_size: int) -> bytes:
        """Inflate a zlib or gzip stream, producing at most *max_size* bytes.

        Raises:
            SizeLimitError: The output would exceed *max_size*.
            DecodeError: The stream is corrupt, truncated or followed by junk.
        """
        # wbits 32+15 detects a zlib or a gzip header.
        stream = zlib.decompressobj(wbits=47)
        try:
            out = stream.decompress(data, max_size + 1)
        except zlib.error as exc:
            raise DecodeError(f"corrupt zlib body: {exc}") from exc
        if len(out) > max_size:
            raise _too_large(self.name, max_size)
        if not stream.eof:
            raise DecodeError("truncated zlib body: the stream does not end")
        if stream.unused_data:
            raise DecodeError(
                f"zlib body has {len(stream.unused_data)} bytes after the end of "
                "the stream",
            )
        return out


class Bzip2Compressor(Compressor):
    """bzip2, as kombu's ``application/x-bz2``."""

    name = "bzip2"
    content_type = "application/x-bz2"
    aliases = ("bzip",)

    def __init__(self, *, level: int = 9) -> None:
        self.level = level

    def compress(self, data: bytes) -> bytes:
        """Return *data* in a bzip2 stream."""
        return bz2.compress(data, self.level)

    def decompress(self, data: bytes, max_size: int) -> bytes:
        """Decompress bzip2 streams, producing at most *max_size* bytes.

        Raises:
            SizeLimitError: The output would exceed *max_size*.
            DecodeError: A stream is corrupt or truncated.
        """
        return _bounded_streams(self.name, bz2.BZ2Decompressor, data, max_size)


class LzmaCompressor(Compressor):
    """LZMA in the xz container, as kombu's ``application/x-lzma``."""

    name = "lzma"
    content_type = "application/x-lzma"
    aliases = ("xz",)

    def __init__(self, *, preset: int | None = None) -> None:
        self.preset = preset

    def compress(self, data: bytes) -> bytes:
        """Return *data* in an xz stream."""
        return lzma.compress(data, preset=self.preset)

    def decompress(self, data: bytes, max_size: int) -> bytes:
        """Decompress xz or legacy lzma streams, producing at most *max_size* bytes.

        Raises:
            SizeLimitError: The output would exceed *max_size*.
            DecodeError: A stream is corrupt or truncated.
        """
        return _bounded_streams(self.name, lzma.LZMADecompressor, data, max_size)


def _load_zstd() -> tuple[str, Any]:
    """Find a zstd implementation: the stdlib's (3.14), backports.zstd, zstandard."""
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]

        return "stdlib", zstd
    except ImportError:
        pass
    try:
        from backports import zstd  # type: ignore[import-not-found,no-redef,unused-ignore]

        return "stdlib", zstd
    except ImportError:
        pass
    try:
        import zstandard

        return "zstandard", zstandard
    except ImportError:
        raise MissingDependencyError("zstd compressor", "zstd") from None


# zstandard cannot bound one decompress call, so input is fed in slices small
# enough that one slice cannot expand past this much beyond the limit: a zstd
# block needs at least 3 input bytes and yields at most 128 KiB.
_ZSTD_SLICE = 64


class ZstdCompressor(Compressor):
    """Zstandard, as kombu's ``application/zstd``."""

    name = "zstd"
    content_type = "application/zstd"
    aliases = ("zstandard",)

    def __init__(self, *, level: int = 3) -> None:
        self.level = level
        self._flavour, self._module = _load_zstd()

    def compress(self, data: bytes) -> bytes:
        """Return *data* as one zstd frame."""
        if self._flavour == "stdlib":
            compressed: bytes = self._module.compress(data, level=self.level)
            return compressed
        frame: bytes = self._module.ZstdCompressor(level=self.level).compress(data)
        return frame

    def decompress(self, data: bytes, max_size: int) -> bytes:
        """Decompress zstd frames, producing at most *max_size* bytes.

        Raises:
            SizeLimitError: The output would exceed *max_size*.
            DecodeError: A frame is corrupt or truncated.
        """
        if self._flavour == "stdlib":
            return _bounded_streams(
                self.name,
                self._module.ZstdDecompressor,
                data,
                max_size,
                (*_STREAM_ERRORS, self._module.ZstdError),
            )
        return self._decompress_zstandard(data, max_size)

    def _decompress_zstandard(self, data: bytes, max_size: int) -> bytes:
        zstandard = self._module
        out = bytearray()
        remaining = memoryview(data)
        while True:
            stream = zstandard.ZstdDecompressor().decompressobj()
            try:
                while remaining and not stream.eof:
                    out += stream.decompress(remaining[:_ZSTD_SLICE].tobytes())
                    remaining = remaining[_ZSTD_SLICE:]
                    if len(out) > max_size:
                        raise _too_large(self.name, max_size)
            except zstandard.ZstdError as exc:
                raise DecodeError(f"corrupt zstd body: {exc}") from exc
            if not stream.eof:
                raise DecodeError("truncated zstd body: the frame does not end")
            tail = stream.unused_data
            if tail:
                remaining = memoryview(tail + remaining.tobytes())
            if not remaining:
                return bytes(out)
