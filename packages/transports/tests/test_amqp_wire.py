"""Our ``basic.publish`` frames are byte for byte the ones py-amqp writes."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

amqp = pytest.importorskip("amqp")

from amqp.method_framing import frame_writer  # noqa: E402
from amqp.serialization import dumps  # noqa: E402

from transports._amqp_wire import WireError, encode_publish  # noqa: E402

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
