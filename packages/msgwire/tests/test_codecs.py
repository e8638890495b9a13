"""msgpack, YAML, pickle and the passthrough codecs."""

from __future__ import annotations

import contextlib
import pickle
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgpack
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from msgwire_strategies import msgpack_values, rich_values

from msgwire import (
    DecodeError,
    EncodeError,
    MsgpackCodec,
    PickleCodec,
    RawCodec,
    SizeLimitError,
    TextCodec,
    YamlCodec,
)

U = UUID("fa885efd-8c88-4795-aae0-1bab8cc38224")
EXTENDED = [
    datetime(2026, 11, 21, 5, 21, 41, 352886, tzinfo=timezone.utc),
    date(2026, 11, 21),
    time(5, 21, 41),
    Decimal("3.14"),
    U,
    b"\xff\x00",
    b"text",
]


class TestMsgpack:
    codec = MsgpackCodec()

    def test_packs_as_kombu_does_with_the_bin_type(self) -> None:
        value = {"a": [1, "x", b"\x00"]}
        assert self.codec.dumps(value) == msgpack.packb(value, use_bin_type=True)

    @pytest.mark.parametrize("value", EXTENDED, ids=lambda v: type(v).__name__)
    def test_extended_types_round_trip_through_tag_maps_not_extensions(
        self, value: Any
    ) -> None:
        packed = self.codec.dumps(value)
        decoded = self.codec.loads(packed)
        assert decoded == value
        assert type(decoded) is type(value)
        plain = msgpack.unpackb(packed, raw=False)
        if isinstance(value, bytes):
            assert plain == value  # msgpack's own bin type
        else:
            assert set(plain) == {"__type__", "__value__"}

    def test_msgpack_timestamps_decode_as_aware_datetimes(self) -> None:
        when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        packed = msgpack.packb(when, datetime=True)
        assert self.codec.loads(packed) == when

    def test_other_extension_types_are_refused(self) -> None:
        packed = msgpack.packb(msgpack.ExtType(5, b"abc"))
        with pytest.raises(DecodeError, match="extension type 5"):
            self.codec.loads(packed)

    @pytest.mark.parametrize(
        ("data", "match"),
        [
            (msgpack.packb([1, 2, 3])[:-1], "invalid msgpack"),
            (msgpack.packb(1) + b"\x01", "invalid msgpack"),
            (b"\xa3\xff\xfe\xfd", "invalid msgpack"),
            (msgpack.packb({1: 2}), "invalid msgpack"),
            (b"\xc1", "invalid msgpack"),
        ],
        ids=["truncated", "trailing", "bad-utf8", "int-key", "reserved-byte"],
    )
    def test_malformed_input_is_a_decode_error(self, data: bytes, match: str) -> None:
        with pytest.raises(DecodeError, match=match):
            self.codec.loads(data)

    def test_unsupported_types_are_refused(self) -> None:
        with pytest.raises(EncodeError, match="set"):
            self.codec.dumps({1, 2})
        with pytest.raises(EncodeError, match="msgpack"):
            self.codec.dumps(2**70)

    @given(msgpack_values)
    def test_every_supported_value_round_trips(self, value: Any) -> None:
        assert self.codec.loads(self.codec.dumps(value)) == value

    @given(st.binary())
    def test_garbage_is_decoded_or_refused_with_decode_error(self, data: bytes) -> None:
        with contextlib.suppress(DecodeError):
            self.codec.loads(data)


class TestYaml:
    codec = YamlCodec()

    def test_datetimes_dates_and_bytes_are_native_yaml(self) -> None:
        text = self.codec.dumps([EXTENDED[0], EXTENDED[1], b"\xff"]).decode()
        assert "__type__" not in text
        assert "!!binary" in text
        assert yaml.safe_load(text) == [EXTENDED[0], EXTENDED[1], b"\xff"]

    @pytest.mark.parametrize("value", EXTENDED, ids=lambda v: type(v).__name__)
    def test_extended_types_round_trip(self, value: Any) -> None:
        decoded = self.codec.loads(self.codec.dumps(value))
        assert decoded == value
        assert type(decoded) is type(value)

    def test_tuples_become_sequences_and_sets_are_refused(self) -> None:
        assert self.codec.loads(self.codec.dumps((1, (2,)))) == [1, [2]]
        with pytest.raises(EncodeError, match="set"):
            self.codec.dumps({1})

    def test_a_shared_object_is_written_twice_not_as_an_alias(self) -> None:
        shared = {"a": 1}
        text = self.codec.dumps([shared, shared]).decode()
        assert "&" not in text
        assert "*" not in text

    def test_python_tags_are_refused_by_the_safe_loader(self) -> None:
        with pytest.raises(DecodeError, match="invalid YAML"):
            self.codec.loads(b"!!python/object/apply:os.system ['true']")

    def test_billion_laughs_is_refused(self) -> None:
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in range(1, 9):
            refs = ", ".join([f"*a{level - 1}"] * 10)
            lines.append(f"a{level}: &a{level} [{refs}]")
        with pytest.raises(DecodeError, match="expands to more than"):
            self.codec.loads("\n".join(lines).encode())

    def test_a_recursive_alias_is_refused(self) -> None:
        with pytest.raises(DecodeError, match="refers to itself"):
            self.codec.loads(b"&a [1, *a]")

    def test_a_few_aliases_as_kombu_may_write_them_are_fine(self) -> None:
        assert self.codec.loads(b"a: &x {k: 1}\nb: *x\n") == {
            "a": {"k": 1},
            "b": {"k": 1},
        }

    @pytest.mark.parametrize(
        "data", [b"a: [1, 2", b"--- 1\n--- 2\n", b"\xff\xfe\x00", b"a: !!int x"]
    )
    def test_malformed_input_is_a_decode_error(self, data: bytes) -> None:
        with pytest.raises(DecodeError, match="invalid YAML"):
            self.codec.loads(data)

    @given(rich_values)
    def test_every_supported_value_round_trips(self, value: Any) -> None:
        assert self.codec.loads(self.codec.dumps(value)) == value

    @given(st.binary(max_size=200))
    def test_garbage_is_decoded_or_refused_with_decode_error(self, data: bytes) -> None:
        with contextlib.suppress(DecodeError):
            self.codec.loads(data)


@pytest.mark.parametrize("codec", [MsgpackCodec(max_size=100), YamlCodec(max_size=100)])
def test_msgpack_and_yaml_input_is_bounded_without_a_registry(codec: Any) -> None:
    with pytest.raises(SizeLimitError, match="larger than max_size"):
        codec.loads(codec.dumps(["x" * 200]))


class TestPickle:
    @given(rich_values | st.sets(st.integers()) | st.tuples(st.text()))
    def test_any_picklable_value_round_trips(self, value: Any) -> None:
        codec = PickleCodec()
        assert codec.loads(codec.dumps(value)) == value

    def test_round_trips_python_objects(self) -> None:
        codec = PickleCodec()
        value = {"t": (1, 2), "s": {3}}
        assert codec.loads(codec.dumps(value)) == value

    def test_protocol_option(self) -> None:
        assert PickleCodec(protocol=2).dumps(1)[:2] == b"\x80\x02"
        with pytest.raises(ValueError, match="protocol"):
            PickleCodec(protocol=99)

    def test_garbage_is_a_decode_error(self) -> None:
        with pytest.raises(DecodeError, match="invalid pickle"):
            PickleCodec().loads(b"not a pickle")
        with pytest.raises(DecodeError, match="invalid pickle"):
            PickleCodec().loads(pickle.dumps([1, 2, 3])[:-2])

    def test_unpicklable_is_an_encode_error(self) -> None:
        with pytest.raises(EncodeError, match="cannot pickle"):
            PickleCodec().dumps(lambda: None)


class TestPassthrough:
    @given(st.binary())
    def test_any_bytes_round_trip_raw(self, data: bytes) -> None:
        assert RawCodec().loads(RawCodec().dumps(data)) == data

    @given(st.text())
    def test_any_text_round_trips(self, text: str) -> None:
        assert TextCodec().loads(TextCodec().dumps(text)) == text

    @given(st.binary())
    def test_garbage_text_is_decoded_or_refused_with_decode_error(
        self, data: bytes
    ) -> None:
        with contextlib.suppress(DecodeError):
            TextCodec().loads(data)

    def test_raw_carries_bytes_unchanged(self) -> None:
        codec = RawCodec()
        assert (codec.content_type, codec.content_encoding) == (
            "application/data",
            "binary",
        )
        assert codec.loads(codec.dumps(bytearray(b"\x00\xff"))) == b"\x00\xff"
        with pytest.raises(EncodeError, match="'text' codec"):
            codec.dumps("text")

    def test_text_carries_str_as_utf8(self) -> None:
        codec = TextCodec()
        assert codec.content_type == "text/plain"
        assert codec.loads(codec.dumps("café")) == "café"
        with pytest.raises(DecodeError, match="UTF-8"):
            codec.loads(b"\xff")
        with pytest.raises(EncodeError, match="str"):
            codec.dumps(b"bytes")
