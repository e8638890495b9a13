from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import msgwire
from msgwire import (
    Codec,
    ContentDisallowedError,
    DecodeContext,
    DecodeError,
    EncodeContext,
    JsonCodec,
    PluginConflictError,
    Registry,
    SizeLimitError,
    UnknownCodecError,
    UnknownCompressorError,
)


class TestAccept:
    def test_json_is_the_only_default(self) -> None:
        assert Registry().accept == frozenset({"application/json"})

    def test_pickle_is_refused_unless_listed(self) -> None:
        registry = Registry()
        encoded = registry.dumps({"a": 1}, "pickle")
        with pytest.raises(ContentDisallowedError, match="x-python-serialize"):
            registry.loads(encoded.data, encoded.content_type)
        with pytest.raises(ContentDisallowedError):
            registry.loads(encoded.data, encoded.content_type, accept={"json", "yaml"})
        assert registry.loads(
            encoded.data, encoded.content_type, accept={"pickle"}
        ) == {"a": 1}

    def test_refusal_happens_before_decoding(self) -> None:
        # Garbage of a refused type is refused, not decoded.
        with pytest.raises(ContentDisallowedError, match="accept"):
            Registry().loads(b"\x80garbage", "application/x-python-serialize")

    def test_accept_takes_names_and_content_types(self) -> None:
        registry = Registry(accept=["msgpack", "application/x-yaml"])
        assert registry.accept == {"application/x-msgpack", "application/x-yaml"}
        encoded = registry.dumps([1], "msgpack")
        assert registry.loads(encoded.data, encoded.content_type) == [1]
        with pytest.raises(ContentDisallowedError):
            registry.loads(b"[1]", "application/json")

    def test_content_type_parameters_and_case_are_ignored(self) -> None:
        assert Registry().loads(b"[1]", "Application/JSON; charset=utf-8") == [1]

    def test_unknown_name_in_accept_is_a_clear_error(self) -> None:
        with pytest.raises(UnknownCodecError, match="did you mean 'msgpack'"):
            Registry(accept=["msgpak"])

    def test_raw_passthrough_is_never_accepted_by_default(self) -> None:
        registry = Registry()
        encoded = registry.dumps(b"raw", "raw")
        assert encoded.content_type == "application/data"
        with pytest.raises(ContentDisallowedError):
            registry.loads(encoded.data, encoded.content_type)


class TestLookup:
    def test_unknown_serializer_names_the_closest_and_the_installed(self) -> None:
        with pytest.raises(UnknownCodecError) as info:
            Registry().dumps(1, "jsno")
        assert "did you mean 'json'?" in str(info.value)
        assert "json, msgpack, pickle, raw, text, yaml" in str(info.value)

    def test_unknown_content_type_on_decode_is_a_decode_error(self) -> None:
        registry = Registry(accept=["application/x-unknown"])
        with pytest.raises(DecodeError, match="application/x-unknown"):
            registry.loads(b"x", "application/x-unknown")

    def test_missing_content_type_is_a_decode_error(self) -> None:
        with pytest.raises(DecodeError, match="no content_type"):
            Registry().loads(b"[1]", None)

    def test_unknown_compression_is_a_clear_error(self) -> None:
        with pytest.raises(UnknownCompressorError, match="did you mean 'zlib'"):
            Registry().dumps(1, compression="zlb")
        with pytest.raises(DecodeError, match="cannot decompress"):
            Registry().loads(b"[1]", "application/json", compression="application/x-zz")

    def test_compression_by_name_alias_or_header_value(self) -> None:
        registry = Registry()
        for key in ("zlib", "gzip", "application/x-gzip"):
            encoded = registry.dumps([1, 2], compression=key)
            assert encoded.compression == "application/x-gzip"
            assert registry.loads(
                encoded.data, encoded.content_type, compression=key
            ) == [
                1,
                2,
            ]

    def test_codecs_are_resolved_lazily_and_cached(self) -> None:
        registry = Registry()
        assert "msgpack" not in registry._codecs
        first = registry.codec("msgpack")
        assert registry.codec("application/x-msgpack") is first

    def test_without_entry_points_only_registered_codecs_exist(self) -> None:
        registry = Registry(entry_points=False, codecs=[JsonCodec()])
        assert registry.loads(b"[1]", "application/json") == [1]
        with pytest.raises(UnknownCodecError, match="installed: json"):
            registry.codec("yaml")


class TestLimits:
    def test_input_larger_than_max_size_is_refused(self) -> None:
        with pytest.raises(SizeLimitError, match="larger than max_size"):
            Registry(max_size=10).loads(b"[" + b"1," * 10 + b"1]", "application/json")

    def test_decompressed_size_is_bounded_by_max_size(self) -> None:
        big = Registry().dumps("x" * 100_000, compression="zlib")
        assert len(big.data) < 1000
        with pytest.raises(SizeLimitError):
            Registry(max_size=50_000).loads(
                big.data, big.content_type, compression=big.compression
            )

    def test_max_size_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="max_size"):
            Registry(max_size=0)


class TestIsolation:
    def test_two_registries_do_not_interfere(self) -> None:
        compact = Registry(
            codecs=[JsonCodec(fast=False, compact=True)], accept=["json"]
        )
        default = Registry(accept=["json", "yaml"])
        assert compact.dumps({"a": 1}).data == b'{"a":1}'
        assert default.codec("json") is not compact.codec("json")
        assert default.accept != compact.accept
        assert msgwire.default_registry.codec("json") is not compact.codec("json")

    def test_registering_replaces_only_in_that_registry(self) -> None:
        class Upper(Codec):
            name = "json"
            content_type = "application/json"
            content_encoding = "utf-8"

            def dumps(self, obj: Any) -> bytes:
                return b'"UPPER"'

            def loads(self, data: bytes) -> Any:
                return "UPPER"

        mine = Registry()
        mine.register(Upper())
        assert mine.dumps(1).data == b'"UPPER"'
        assert Registry().dumps(1).data == b"1"


class Wrapper(Codec):
    """A codec that wraps JSON and checks the inner content type against accept."""

    name = "wrapped"
    content_type = "application/x-wrapped"
    content_encoding = "binary"

    def __init__(self) -> None:
        self.seen_headers: Any = None

    def dumps(self, obj: Any) -> bytes:
        raise AssertionError("the registry must call encode() for a wrapping codec")

    def loads(self, data: bytes) -> Any:
        raise AssertionError("the registry must call decode() for a wrapping codec")

    def encode(self, obj: Any, context: EncodeContext) -> bytes:
        self.seen_headers = context.headers
        return b"W" + context.registry.dumps(obj, "json").data

    def decode(self, data: bytes, context: DecodeContext) -> Any:
        self.seen_headers = context.headers
        return context.registry.loads(
            data[1:], "application/json", accept=context.accept
        )


def test_wrapping_codecs_get_the_message_context() -> None:
    wrapper = Wrapper()
    registry = Registry(codecs=[wrapper], accept=["wrapped", "json"])
    encoded = registry.dumps([1], "wrapped", headers={"task": "t"})
    assert wrapper.seen_headers == {"task": "t"}
    assert registry.loads(encoded.data, encoded.content_type, headers={"id": "1"}) == [
        1
    ]
    assert wrapper.seen_headers == {"id": "1"}
    # The inner content type is checked against the same accept list.
    with pytest.raises(ContentDisallowedError):
        registry.loads(encoded.data, encoded.content_type, accept=["wrapped"])


def test_a_failing_third_party_codec_surfaces_as_our_errors() -> None:
    class Broken(Codec):
        name = "broken"
        content_type = "application/x-broken"
        content_encoding = "binary"

        def dumps(self, obj: Any) -> bytes:
            raise RuntimeError("boom")

        def loads(self, data: bytes) -> Any:
            raise KeyError("boom")

    registry = Registry(codecs=[Broken()], accept=["broken"])
    with pytest.raises(msgwire.EncodeError, match="broken codec failed: RuntimeError"):
        registry.dumps(1, "broken")
    with pytest.raises(DecodeError, match="broken codec failed: KeyError"):
        registry.loads(b"x", "application/x-broken")


# -- plugins installed through entry points ------------------------------------


def _install(
    site: Path, dist: str, module: str, source: str, entry_points: str
) -> None:
    """Install a distribution the way pip lays it out: a module and its dist-info."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


PLUGIN = """
from __future__ import annotations
from msgwire import Codec, Compressor

class ReverseCodec(Codec):
    name = "reverse"
    content_type = "application/x-reverse"
    content_encoding = "utf-8"
    def dumps(self, obj):
        return str(obj)[::-1].encode()
    def loads(self, data):
        return data.decode()[::-1]

class NullCompressor(Compressor):
    name = "null"
    content_type = "application/x-null"
    def compress(self, data):
        return data
    def decompress(self, data, max_size):
        return data
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))


def test_a_third_party_codec_and_compressor_are_found_through_entry_points(
    site: Path,
) -> None:
    _install(
        site,
        "msgwire_reverse",
        "msgwire_reverse_plugin",
        PLUGIN,
        """
        [msgwire.codecs]
        reverse = msgwire_reverse_plugin:ReverseCodec
        [msgwire.compressors]
        null = msgwire_reverse_plugin:NullCompressor
        """,
    )
    registry = Registry(accept=["reverse"])
    encoded = registry.dumps("hello", "reverse", compression="null")
    assert encoded == (b"olleh", "application/x-reverse", "utf-8", "application/x-null")
    assert registry.loads(
        encoded.data, "application/x-reverse", compression="null"
    ) == ("hello")
    # A content type seen first on a message also finds the plugin.
    fresh = Registry(accept=["application/x-reverse"])
    assert fresh.loads(b"olleh", "application/x-reverse") == "hello"


def test_two_distributions_claiming_one_name_are_both_named(site: Path) -> None:
    for dist in ("first_dist", "second_dist"):
        _install(
            site,
            dist,
            f"{dist}_mod",
            PLUGIN,
            f"""
            [msgwire.codecs]
            clash = {dist}_mod:ReverseCodec
            """,
        )
    with pytest.raises(PluginConflictError) as info:
        Registry().codec("clash")
    assert "first_dist: first_dist_mod:ReverseCodec" in str(info.value)
    assert "second_dist: second_dist_mod:ReverseCodec" in str(info.value)


@pytest.mark.parametrize(
    ("blocked", "name", "extra"),
    [("msgpack", "msgpack", "msgpack"), ("yaml", "yaml", "yaml")],
)
def test_a_codec_whose_extra_is_missing_names_the_extra(
    blocked: str, name: str, extra: str
) -> None:
    script = f"""
import sys
sys.modules[{blocked!r}] = None  # as if the extra were not installed
import msgwire
try:
    msgwire.default_registry.dumps(1, {name!r})
except msgwire.MissingDependencyError as exc:
    print(exc)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert f"pip install 'msgwire[{extra}]'" in out


def test_importing_msgwire_imports_no_codec_driver() -> None:
    script = """
import sys
import msgwire
msgwire.dumps({"a": 1})
print(sorted(m for m in ("msgpack", "yaml", "zstandard") if m in sys.modules))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
