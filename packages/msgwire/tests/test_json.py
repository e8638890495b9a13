from __future__ import annotations

import contextlib
import json
import math
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgwire_strategies import json_values, rich_values

from msgwire import DecodeError, EncodeError, JsonCodec

STDLIB = JsonCodec(fast=False)
FAST = JsonCodec(fast=True)
CODECS = pytest.mark.parametrize("codec", [STDLIB, FAST], ids=["stdlib", "orjson"])

U = UUID("fa885efd-8c88-4795-aae0-1bab8cc38224")

# The tag table of the README: value, and the exact tag kombu writes for it.
TAGS: list[tuple[Any, dict[str, Any]]] = [
    (
        datetime(2026, 11, 21, 5, 21, 41, 352886, tzinfo=timezone.utc),
        {"__type__": "datetime", "__value__": "2026-11-21T05:21:41.352886+00:00"},
    ),
    (
        datetime(2026, 11, 21, 5, 21, 41),
        {"__type__": "datetime", "__value__": "2026-11-21T05:21:41"},
    ),
    (date(2026, 11, 21), {"__type__": "date", "__value__": "2026-11-21"}),
    (time(5, 21, 41, 5), {"__type__": "time", "__value__": "05:21:41.000005"}),
    (Decimal("3.14"), {"__type__": "decimal", "__value__": "3.14"}),
    (U, {"__type__": "uuid", "__value__": {"hex": U.hex}}),
    (b"caf\xc3\xa9", {"__type__": "bytes", "__value__": "café"}),
    (b"\xff\x00", {"__type__": "base64", "__value__": "/wA="}),
]


class TestTags:
    @CODECS
    @pytest.mark.parametrize(("value", "tagged"), TAGS, ids=lambda v: type(v).__name__)
    def test_each_extended_type_is_written_as_kombus_tag(
        self, codec: JsonCodec, value: Any, tagged: dict[str, Any]
    ) -> None:
        assert json.loads(codec.dumps(value)) == tagged

    @CODECS
    @pytest.mark.parametrize(("value", "tagged"), TAGS, ids=lambda v: type(v).__name__)
    def test_each_tag_decodes_to_its_value(
        self, codec: JsonCodec, value: Any, tagged: dict[str, Any]
    ) -> None:
        decoded = codec.loads(json.dumps(tagged).encode())
        assert decoded == value
        assert type(decoded) is type(value)

    def test_uuid_tag_with_a_version_decodes_as_newer_kombu_may_write_it(self) -> None:
        tagged = {"__type__": "uuid", "__value__": {"hex": U.hex, "version": 4}}
        assert STDLIB.loads(json.dumps(tagged).encode()) == U

    def test_a_zulu_datetime_decodes_as_utc(self) -> None:
        data = b'{"__type__": "datetime", "__value__": "2026-11-21T05:21:41Z"}'
        assert STDLIB.loads(data) == datetime(
            2026, 11, 21, 5, 21, 41, tzinfo=timezone.utc
        )

    def test_an_aware_datetime_keeps_its_offset(self) -> None:
        zone = timezone(timedelta(hours=-5))
        value = datetime(2026, 1, 2, 3, 4, 5, tzinfo=zone)
        assert STDLIB.loads(STDLIB.dumps(value)).utcoffset() == timedelta(hours=-5)

    @CODECS
    def test_unknown_tag_is_a_decode_error_naming_the_tag(
        self, codec: JsonCodec
    ) -> None:
        with pytest.raises(DecodeError, match="unknown extended type tag 'set'"):
            codec.loads(b'{"__type__": "set", "__value__": [1]}')

    @CODECS
    @pytest.mark.parametrize(
        "tagged",
        [
            {"__type__": "datetime", "__value__": "yesterday"},
            {"__type__": "decimal", "__value__": "abc"},
            {"__type__": "uuid", "__value__": {"hex": "zz"}},
            {"__type__": "uuid", "__value__": "not-an-object"},
            {"__type__": "base64", "__value__": "***"},
            {"__type__": "date", "__value__": 7},
            {"__type__": "bytes", "__value__": "\ud800"},
        ],
    )
    def test_malformed_tag_value_is_a_decode_error(
        self, codec: JsonCodec, tagged: dict[str, Any]
    ) -> None:
        with pytest.raises(DecodeError, match="malformed"):
            codec.loads(json.dumps(tagged).encode())

    def test_objects_with_other_keys_are_left_alone(self) -> None:
        value = {"__type__": "datetime", "__value__": "x", "other": 1}
        assert STDLIB.loads(STDLIB.dumps(value)) == value


class TestRefusals:
    @CODECS
    @pytest.mark.parametrize(
        "value", [{1, 2}, frozenset(), object(), complex(1, 2), range(3)]
    )
    def test_unsupported_types_are_refused_naming_the_type(
        self, codec: JsonCodec, value: Any
    ) -> None:
        with pytest.raises(EncodeError, match=type(value).__qualname__):
            codec.dumps({"x": [value]})

    def test_a_plain_enum_is_refused_and_an_int_enum_travels_as_int(self) -> None:
        class Colour(Enum):
            RED = "red"

        class Level(IntEnum):
            HIGH = 3

        with pytest.raises(EncodeError, match="Colour"):
            STDLIB.dumps(Colour.RED)
        assert STDLIB.loads(STDLIB.dumps([Level.HIGH])) == [3]

    def test_a_reference_cycle_is_an_encode_error(self) -> None:
        cycle: list[Any] = []
        cycle.append(cycle)
        with pytest.raises(EncodeError, match="reference cycle"):
            STDLIB.dumps(cycle)

    def test_tuple_dict_keys_are_an_encode_error(self) -> None:
        with pytest.raises(EncodeError, match="keys must be"):
            STDLIB.dumps({(1, 2): 3})

    def test_objects_with_a_json_method_are_encoded_through_it(self) -> None:
        class Signature:
            def __json__(self) -> dict[str, Any]:
                return {"task": "proj.add"}

        assert STDLIB.loads(STDLIB.dumps([Signature()])) == [{"task": "proj.add"}]


class TestOutput:
    def test_stdlib_output_is_byte_for_byte_what_kombu_writes(self) -> None:
        # kombu: json.dumps with default separators and ensure_ascii.
        value = [[1, 2], {"k": "é"}, None]
        assert STDLIB.dumps(value) == json.dumps(value).encode()

    def test_tuples_decode_as_lists(self) -> None:
        assert STDLIB.loads(STDLIB.dumps((1, (2, 3)))) == [1, [2, 3]]

    def test_compact_and_unicode_options(self) -> None:
        codec = JsonCodec(fast=False, compact=True, ensure_ascii=False)
        assert codec.dumps({"a": "é"}) == '{"a":"é"}'.encode()

    def test_nan_round_trips_as_the_stdlib_token(self) -> None:
        for codec in (STDLIB, FAST):
            assert math.isnan(codec.loads(codec.dumps(float("nan"))))

    @CODECS
    def test_integers_beyond_64_bits_stay_exact(self, codec: JsonCodec) -> None:
        big = [2**64, -(2**63) - 1, 10**30]
        decoded = codec.loads(codec.dumps(big))
        assert decoded == big
        assert all(type(item) is int for item in decoded)


class TestMalformed:
    @CODECS
    @pytest.mark.parametrize(
        ("data", "match"),
        [
            (b'{"a": 1', "invalid JSON"),
            (b"", "invalid JSON"),
            (b"\xff\xfe{}", "not valid UTF-8"),
            (b'{"a": 1} trailing', "invalid JSON"),
            (b"[" * 100_000, "nested too deeply|invalid JSON"),
        ],
    )
    def test_malformed_input_is_a_decode_error_saying_what_is_wrong(
        self, codec: JsonCodec, data: bytes, match: str
    ) -> None:
        with pytest.raises(DecodeError, match=match):
            codec.loads(data)

    @CODECS
    @given(st.binary())
    def test_garbage_is_decoded_or_refused_with_decode_error(
        self, codec: JsonCodec, data: bytes
    ) -> None:
        with contextlib.suppress(DecodeError):
            codec.loads(data)


class TestRoundTrips:
    @CODECS
    @given(rich_values)
    def test_every_supported_value_round_trips(
        self, codec: JsonCodec, value: Any
    ) -> None:
        assert codec.loads(codec.dumps(value)) == value

    @given(json_values | st.integers(min_value=-(10**40), max_value=10**40))
    def test_fast_and_stdlib_decoders_agree_on_any_json(self, value: Any) -> None:
        for text in (json.dumps(value), json.dumps(value, separators=(",", ":"))):
            assert FAST.loads(text.encode()) == STDLIB.loads(text.encode())

    @given(st.text())
    def test_any_string_including_lone_surrogates_round_trips(self, text: str) -> None:
        for codec in (STDLIB, FAST):
            assert codec.loads(codec.dumps([text])) == [text]
