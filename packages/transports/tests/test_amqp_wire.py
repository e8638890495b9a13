"""Our ``basic.publish`` frames are byte for byte the ones py-amqp writes, and
our ``basic.deliver`` decoding gives what py-amqp's does."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

amqp = pytest.importorskip("amqp")

from amqp.method_framing import frame_handler, frame_writer  # noqa: E402
from amqp.serialization import dumps, loads  # noqa: E402

from transports._amqp_wire import (  # noqa: E402
    FrameSplitter,
    WireError,
    decode_table,
    encode_publish,
    encode_table,
)

FRAME_MAX = 4096


class _Sink:
    """What py-amqp's frame writer needs of a connection and its transport."""

    frame_max = FRAME_MAX
    bytes_sent = 0

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))


def _py_amqp(
    exchange: str, key: str, mandatory: bool, body: bytes, properties: dict[str, Any]
) -> bytes:
    sink = _Sink()
    write = frame_writer(sink, sink)
    args = dumps("Bssbb", (0, exchange, key, mandatory, False))
    write(1, 3, (60, 40), args, amqp.Message(body, **properties))
    return b"".join(sink.written)


def _ours(
    exchange: str, key: str, mandatory: bool, body: bytes, properties: dict[str, Any]
) -> bytes:
    out: list[bytes] = []
    encode_publish(out, 3, FRAME_MAX, exchange, key, mandatory, body, properties)
    return b"".join(out)


CELERY_HEADERS = {
    "lang": "py",
    "task": "proj.tasks.add",
    "id": "8c3b3a36-5d3e-4f7a-9d47-0b8f1d4c2f11",
    "shadow": None,
    "eta": None,
    "expires": None,
    "group": None,
    "group_index": None,
    "retries": 0,
    "timelimit": [None, None],
    "root_id": "8c3b3a36-5d3e-4f7a-9d47-0b8f1d4c2f11",
    "parent_id": None,
    "argsrepr": "(2, 2)",
    "kwargsrepr": "{}",
    "origin": "gen1@host",
    "ignore_result": False,
    "stamps": {},
}


@pytest.mark.parametrize(
    ("exchange", "key", "mandatory", "body", "properties"),
    [
        ("", "celery", False, b"[[2, 2], {}, {}]", {
            "correlation_id": "8c3b3a36", "reply_to": "4f2e", "delivery_mode": 2,
            "content_type": "application/json", "content_encoding": "utf-8",
            "priority": 0, "application_headers": CELERY_HEADERS,
        }),
        ("events", "task.sent", True, b"", {"delivery_mode": 2}),
        ("", "q", False, bytes(range(256)) * 40, {  # three body frames
            "expiration": "1500", "message_id": "m", "timestamp": 1_700_000_000,
            "type": "t", "user_id": "guest", "app_id": "a", "cluster_id": "c",
        }),
        ("", "q", False, b"x", {"application_headers": {
            "float": 1.5, "big": 2**40, "negative": -7, "bool": True,
            "bytes": b"\x00\xff", "nested": {"list": [1, "two", None, [3.0]]},
            "tuple": (1, 2), "decimal": Decimal("-12.34"), "unicode": "née",
            "when": datetime.datetime(2026, 11, 21, 12, 0, 0),
        }}),
        ("", "q", False, b"x", {"application_headers": {  # the inline cases
            "max": 2147483647, "low": -2147483647, "min": -2147483648,
            "over": 2147483648, "false": False, "none": None, "empty": "",
            "surrogate": "a\udcffb", "emoji": "\U0001f600",
        }}),
        ("", "q", False, b"x", {}),
    ],
)  # fmt: skip
def test_frames_match_py_amqp(
    exchange: str, key: str, mandatory: bool, body: bytes, properties: dict[str, Any]
) -> None:
    expected = _py_amqp(exchange, key, mandatory, body, properties)
    assert _ours(exchange, key, mandatory, body, properties) == expected


def test_a_value_amqp_cannot_carry_names_its_header() -> None:
    with pytest.raises(WireError, match=r"header .task.: .*object"):
        _ours("", "q", False, b"x", {"application_headers": {"task": object()}})


def test_a_routing_key_longer_than_a_shortstr_is_refused() -> None:
    with pytest.raises(WireError, match="255 bytes"):
        _ours("", "k" * 256, False, b"x", {})


# -- decoding deliveries ---------------------------------------------------------------

_DELIVERIES = [
    ("ctag-1", 1, False, "", "celery", b"[[2, 2], {}, {}]", {
        "correlation_id": "8c3b3a36", "reply_to": "4f2e", "delivery_mode": 2,
        "content_type": "application/json", "content_encoding": "utf-8",
        "priority": 0, "application_headers": CELERY_HEADERS,
    }),
    ("ctag-2", 2**40, True, "events", "task.sent", b"", {"delivery_mode": 2}),
    ("c", 3, False, "x", "q", bytes(range(256)) * 40, {  # three body frames
        "expiration": "1500", "message_id": "m", "timestamp": 1_700_000_000,
        "type": "t", "user_id": "guest", "app_id": "a", "cluster_id": "c",
    }),
    ("c", 4, True, "", "q", b"x", {"application_headers": {
        "float": 1.5, "big": 2**40, "negative": -7, "bool": True,
        "bytes": b"\x00\xff", "nested": {"list": [1, "two", None, [3.0]]},
        "decimal": Decimal("-12.34"), "unicode": "n\u00e9e",
        "when": datetime.datetime(2026, 11, 21, 12, 0, 0),
    }}),
    ("c", 5, False, "", "q", b"x", {}),
    ("c", 6, False, "", "q", b"x", {"application_headers": {  # the inline cases
        "max": 2147483647, "min": -2147483648, "false": False, "none": None,
        "empty": "", "surrogate": "a\udcffb", "emoji": "\U0001f600",
        "latin1": b"caf\xe9", "n\u00e9": 1,
    }}),
]  # fmt: skip


def _deliver_frames(channel: int, delivery: tuple[Any, ...]) -> bytes:
    tag, number, redelivered, exchange, key, body, properties = delivery
    sink = _Sink()
    args = dumps("sLbss", (tag, number, redelivered, exchange, key))
    frame_writer(sink, sink)(
        1, channel, (60, 60), args, amqp.Message(body, **properties)
    )
    return b"".join(sink.written)


def _split_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    frames, pos = [], 0
    while pos < len(data):
        kind = data[pos]
        channel = int.from_bytes(data[pos + 1 : pos + 3], "big")
        size = int.from_bytes(data[pos + 3 : pos + 7], "big")
        frames.append((kind, channel, data[pos + 7 : pos + 7 + size]))
        pos += 8 + size
    return frames


def _py_amqp_reads(data: bytes) -> list[tuple[Any, ...]]:
    """What py-amqp makes of *data*: (channel, args..., properties, body)."""
    seen: list[tuple[Any, ...]] = []

    class _Connection:
        bytes_recv = 0

    def on_method(channel: int, sig: Any, payload: bytes, content: Any) -> None:
        args, _ = loads("sLbss", payload, 4)
        # py-amqp leaves an empty body as its default, the str ""
        seen.append((channel, *args, content.properties, content.body or b""))

    handle = frame_handler(_Connection(), on_method)
    for frame in _split_frames(data):
        handle(frame)
    return seen


class _Collect:
    def __init__(self) -> None:
        self.deliveries: list[tuple[Any, ...]] = []
        self.frames: list[tuple[int, int, bytes]] = []
        self.splitter = FrameSplitter(self.on_deliver, self.frames.append)

    def on_deliver(self, channel: int, *rest: Any) -> None:
        self.deliveries.append((channel, *rest))

    def feed(self, data: bytes, step: int) -> bytes:
        """Feed *data* *step* bytes at a time, as reads would; the rest left."""
        pending = b""
        for start in range(0, len(data), step):
            pending += data[start : start + step]
            self.splitter.split(pending)
            assert self.splitter.needed >= 1
            pending = pending[self.splitter.handled :]
        return pending


@pytest.mark.parametrize("delivery", _DELIVERIES, ids=range(len(_DELIVERIES)))
def test_a_delivery_decodes_as_py_amqp_decodes_it(delivery: tuple[Any, ...]) -> None:
    data = _deliver_frames(7, delivery)
    expected = _py_amqp_reads(data)
    for step in (len(data), 1, 3, 100, 4096):
        got = _Collect()
        assert got.feed(data, step) == b""
        assert got.deliveries == expected, step
        assert got.frames == []
        assert got.splitter.frames == len(_split_frames(data))


def test_other_frames_go_to_py_amqp_in_order() -> None:
    heartbeat = b"\x08\x00\x00\x00\x00\x00\x00\xce"
    ack = b"\x01\x00\x01\x00\x00\x00\x0d\x00\x3c\x00\x50" + bytes(9) + b"\xce"
    data = heartbeat + _deliver_frames(1, _DELIVERIES[0]) + ack + heartbeat
    got = _Collect()
    assert got.feed(data, 5) == b""
    assert got.frames == [(8, 0, b""), (1, 1, ack[7:-1]), (8, 0, b"")]
    assert [d[2] for d in got.deliveries] == [1]


def test_a_partial_delivery_waits_whole() -> None:
    data = _deliver_frames(1, _DELIVERIES[2])
    got = _Collect()
    assert got.feed(data[:-1], len(data)) == data[:-1]
    assert got.deliveries == []
    assert got.splitter.frames == 0
    assert got.splitter.needed == len(data)  # the whole delivery, to its last byte


def test_an_undecodable_property_list_is_handed_over_as_the_error() -> None:
    # application_headers with a field of unknown type 'Z'
    data = bytearray(_deliver_frames(1, ("c", 9, False, "", "q", b"x", {
        "application_headers": {"k": 1},
    })))  # fmt: skip
    data[data.index(b"\x01kI") + 2] = ord("Z")
    got = _Collect()
    got.feed(bytes(data), len(data))
    ((*_, properties, body),) = got.deliveries
    assert isinstance(properties, WireError)
    assert body == b"x"


def test_a_frame_without_its_end_octet_is_an_error() -> None:
    with pytest.raises(WireError, match="frame-end"):
        _Collect().splitter.split(b"\x08\x00\x00\x00\x00\x00\x00\x00")


def test_tables_round_trip() -> None:
    table = {"a": 1, "b": "two", "c": [1.5, None, {"d": True}], "e": b"\xff"}
    decoded, end = decode_table(encode_table(table))
    assert decoded == table
    assert end == len(encode_table(table))
    with pytest.raises(WireError, match="past the end"):
        decode_table(encode_table(table)[:-2])
