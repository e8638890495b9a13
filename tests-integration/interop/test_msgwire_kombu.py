"""msgwire and kombu read each other's bytes: codecs, tags and compression.

kombu is installed only in the ``interop`` nox session's virtualenv.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu import compression as kombu_compression
from kombu import serialization as kombu_serialization

import msgwire
from msgwire import Registry

REGISTRY = Registry(accept=["json", "msgpack", "yaml"])

TAGGED: list[Any] = [
    datetime(2026, 11, 21, 5, 21, 41, 352886, tzinfo=timezone.utc),
    datetime(2026, 11, 21, 5, 21, 41),
    date(2026, 11, 21),
    time(5, 21, 41, 7),
    Decimal("3.14159"),
    UUID("fa885efd-8c88-4795-aae0-1bab8cc38224"),
    uuid4(),
    b"caf\xc3\xa9",
    b"\xff\x00\x01",
]
IDS = [f"{type(value).__name__}-{index}" for index, value in enumerate(TAGGED)]


def kombu_loads(data: bytes, content_type: str, encoding: str) -> Any:
    return kombu_serialization.loads(
        data, content_type, encoding, accept=[content_type]
    )


def kombu_dumps(value: Any, serializer: str) -> tuple[str, str, bytes]:
    content_type, encoding, data = kombu_serialization.dumps(
        value, serializer=serializer
    )
    return content_type, encoding, data if isinstance(data, bytes) else data.encode()


def tag_of(value: Any) -> dict[str, Any]:
    """The tag map msgwire writes for *value*, as a plain dict."""
    tagged: dict[str, Any] = json.loads(REGISTRY.dumps(value, "json").data)
    return tagged


class TestJson:
    @pytest.mark.parametrize("value", TAGGED, ids=IDS)
    def test_kombu_decodes_each_tag_we_write(self, value: Any) -> None:
        encoded = REGISTRY.dumps({"v": value}, "json")
        decoded = kombu_loads(
            encoded.data, encoded.content_type, encoded.content_encoding
        )
        assert decoded == {"v": value}
        assert type(decoded["v"]) is type(value)

    @pytest.mark.parametrize("value", TAGGED, ids=IDS)
    def test_we_decode_each_tag_kombu_writes(self, value: Any) -> None:
        content_type, _, data = kombu_dumps({"v": value}, "json")
        decoded = REGISTRY.loads(data, content_type)
        assert decoded == {"v": value}
        assert type(decoded["v"]) is type(value)

    def test_our_stdlib_output_is_byte_for_byte_kombus(self) -> None:
        value = {
            "args": [1, "é", None],
            "when": TAGGED[0],
            "id": TAGGED[5],
            "raw": b"x",
        }
        assert REGISTRY.dumps(value, "json").data == kombu_dumps(value, "json")[2]

    @settings(max_examples=300)
    @given(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False)
            | st.text()
            | st.sampled_from(TAGGED),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=8), children, max_size=4)
            ),
            max_leaves=15,
        )
    )
    def test_any_value_crosses_both_ways(self, value: Any) -> None:
        ours = REGISTRY.dumps(value, "json")
        assert kombu_loads(ours.data, "application/json", "utf-8") == value
        content_type, _, theirs = kombu_dumps(value, "json")
        assert REGISTRY.loads(theirs, content_type) == value


class TestMsgpack:
    @pytest.mark.parametrize("value", TAGGED, ids=IDS)
    def test_kombu_decodes_what_we_write_tags_as_plain_maps(self, value: Any) -> None:
        encoded = REGISTRY.dumps([value], "msgpack")
        decoded = kombu_loads(
            encoded.data, encoded.content_type, encoded.content_encoding
        )
        if isinstance(value, bytes):
            assert decoded == [value]
        else:
            # kombu's msgpack decoder has no tag support: it keeps the map.
            assert decoded == [tag_of(value)]

    def test_we_decode_what_kombu_writes(self) -> None:
        value = {"args": [1, 2.5, "x", None, True], "kwargs": {"b": b"\x00\xff"}}
        content_type, _, data = kombu_dumps(value, "msgpack")
        assert REGISTRY.loads(data, content_type) == value


class TestYaml:
    @pytest.mark.parametrize("value", TAGGED, ids=IDS)
    def test_kombu_decodes_what_we_write(self, value: Any) -> None:
        encoded = REGISTRY.dumps({"v": value}, "yaml")
        decoded = kombu_loads(
            encoded.data, encoded.content_type, encoded.content_encoding
        )
        if isinstance(value, (datetime, date, bytes)):
            assert decoded == {"v": value}  # native YAML types
        else:
            assert decoded == {"v": tag_of(value)}

    @pytest.mark.parametrize(
        "value", [v for v in TAGGED if isinstance(v, (datetime, date, bytes))]
    )
    def test_we_decode_what_kombu_writes(self, value: Any) -> None:
        content_type, _, data = kombu_dumps({"v": value, "n": [1, "a"]}, "yaml")
        assert REGISTRY.loads(data, content_type) == {"v": value, "n": [1, "a"]}


@pytest.mark.parametrize("name", ["zlib", "bzip2", "lzma", "zstd"])
def test_compression_crosses_both_ways(name: str) -> None:
    payload = b"the same bytes, again and again " * 50
    theirs, header = kombu_compression.compress(payload, name)
    assert msgwire.decompress(theirs, header) == payload
    ours, our_header = msgwire.compress(payload, name)
    assert our_header == header
    assert kombu_compression.decompress(ours, our_header) == payload
