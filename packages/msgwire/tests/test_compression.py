from __future__ import annotations

import bz2
import contextlib
import lzma
import zlib
from collections.abc import Callable

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from msgwire import (
    Bzip2Compressor,
    Compressor,
    DecodeError,
    LzmaCompressor,
    SizeLimitError,
    ZlibCompressor,
    ZstdCompressor,
)

COMPRESSORS = [ZlibCompressor(), Bzip2Compressor(), LzmaCompressor(), ZstdCompressor()]
EACH = pytest.mark.parametrize("compressor", COMPRESSORS, ids=lambda c: c.name)


def test_header_values_are_kombus() -> None:
    assert {c.name: c.content_type for c in COMPRESSORS} == {
        "zlib": "application/x-gzip",
        "bzip2": "application/x-bz2",
        "lzma": "application/x-lzma",
        "zstd": "application/zstd",
    }


@EACH
@given(data=st.binary(max_size=5000))
def test_round_trip(compressor: Compressor, data: bytes) -> None:
    assert compressor.decompress(compressor.compress(data), 10_000) == data


@EACH
def test_a_compression_bomb_stops_at_the_limit(compressor: Compressor) -> None:
    bomb = compressor.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(SizeLimitError, match="more than 1000000 bytes"):
        compressor.decompress(bomb, 1_000_000)


@EACH
def test_exactly_the_limit_is_allowed(compressor: Compressor) -> None:
    data = b"x" * 4096
    assert compressor.decompress(compressor.compress(data), 4096) == data


@EACH
def test_truncated_input_is_a_decode_error(compressor: Compressor) -> None:
    packed = compressor.compress(bytes(range(256)) * 64)
    with pytest.raises(DecodeError, match=r"truncated|corrupt"):
        compressor.decompress(packed[: len(packed) // 2], 1_000_000)


@EACH
def test_garbage_is_a_decode_error(compressor: Compressor) -> None:
    with pytest.raises(DecodeError):
        compressor.decompress(b"this is not compressed at all", 1_000_000)


@EACH
@given(data=st.binary(max_size=300))
def test_any_garbage_is_decoded_or_refused_with_decode_error(
    compressor: Compressor, data: bytes
) -> None:
    with contextlib.suppress(DecodeError):
        compressor.decompress(data, 100_000)


@pytest.mark.parametrize(
    ("compressor", "foreign"),
    [
        (ZlibCompressor(), zlib.compress),
        (Bzip2Compressor(), bz2.compress),
        (LzmaCompressor(), lzma.compress),
        (ZstdCompressor(), lambda data: zstandard.ZstdCompressor().compress(data)),
    ],
    ids=lambda value: getattr(value, "name", ""),
)
def test_reads_what_the_libraries_kombu_calls_write(
    compressor: Compressor, foreign: Callable[[bytes], bytes]
) -> None:
    assert compressor.decompress(foreign(b"payload" * 100), 10_000) == b"payload" * 100


def test_zlib_also_reads_gzip_and_refuses_trailing_bytes() -> None:
    import gzip

    assert ZlibCompressor().decompress(gzip.compress(b"abc"), 100) == b"abc"
    with pytest.raises(DecodeError, match="after the end"):
        ZlibCompressor().decompress(zlib.compress(b"abc") + b"junk", 100)


@pytest.mark.parametrize(
    "compressor", [Bzip2Compressor(), LzmaCompressor(), ZstdCompressor()], ids=str
)
def test_concatenated_streams_are_all_read(compressor: Compressor) -> None:
    packed = compressor.compress(b"one") + compressor.compress(b"two")
    assert compressor.decompress(packed, 100) == b"onetwo"


def test_zstd_frame_that_claims_no_size_is_still_bounded() -> None:
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(
        b"\0" * 10_000_000
    )
    with pytest.raises(SizeLimitError):
        ZstdCompressor().decompress(frame, 100_000)
