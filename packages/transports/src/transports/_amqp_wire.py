"""AMQP 0-9-1 ``basic.publish`` frames, encoded for a whole batch at once.

py-amqp builds each published message through its generic frame writer
(property and table serialization through ``BytesIO`` and a format string per
field) and writes it to the socket on its own: most of the publishing
thread's time in a batch. Here the three frames of a message (method, content
header, body) are built with a few ``struct`` calls into one list, and a batch
goes to the socket in one ``sendall``.

The encoding is the one py-amqp writes (and reads back): the same basic
properties, and in field tables the same type per Python value (``S`` for
str and bytes, ``t`` bool, ``d`` float, ``I``/``L`` int, ``D`` Decimal, ``T``
datetime, ``F`` dict, ``A`` list and tuple, ``V`` None).
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = ["FRAME_END", "WireError", "encode_publish", "encode_table"]

FRAME_END = b"\xce"

_METHOD_HEAD = struct.Struct(">BHIHHH")  # frame type, channel, size; 60, 40, ticket
_FRAME_HEAD = struct.Struct(">BHI")
_CONTENT_HEAD = struct.Struct(">HHQH")  # class 60, weight 0, body size, flags
_U8 = struct.Struct("B")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

#: The basic class's properties in wire order: name, type, flag bit.
_PROPERTIES = (
    ("content_type", "s", 0x8000),
    ("content_encoding", "s", 0x4000),
    ("application_headers", "F", 0x2000),
    ("delivery_mode", "o", 0x1000),
    ("priority", "o", 0x0800),
    ("correlation_id", "s", 0x0400),
    ("reply_to", "s", 0x0200),
    ("expiration", "s", 0x0100),
    ("message_id", "s", 0x0080),
    ("timestamp", "L", 0x0040),
    ("type", "s", 0x0020),
    ("user_id", "s", 0x0010),
    ("app_id", "s", 0x0008),
    ("cluster_id", "s", 0x0004),
)


class WireError(ValueError):
    """A value that an AMQP field table cannot carry."""


def _shortstr(value: str | bytes) -> bytes:
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    if len(data) > 255:
        raise WireError(f"{data[:40]!r}... is longer than 255 bytes (a shortstr)")
    return _U8.pack(len(data)) + data


def _item(value: Any, out: list[bytes]) -> None:
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        out += (b"S", _U32.pack(len(data)), data)
    elif isinstance(value, bytes):
        out += (b"S", _U32.pack(len(value)), value)
    elif isinstance(value, bool):
        out.append(b"t\x01" if value else b"t\x00")
    elif isinstance(value, float):
        out.append(struct.pack(">cd", b"d", value))
    elif isinstance(value, int):
        if -2147483647 <= value <= 2147483647:
            out.append(struct.pack(">ci", b"I", value))
        else:
            out.append(struct.pack(">cq", b"L", value))
    elif value is None:
        out.append(b"V")
    elif isinstance(value, Mapping):
        out.append(b"F")
        out.append(encode_table(value))
    elif isinstance(value, (list, tuple)):
        out.append(b"A")
        out.append(_array(value))
    elif isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        number = 0
        for digit in digits:
            number = number * 10 + digit
        if not isinstance(exponent, int):
            raise WireError(f"{value!r} is not a finite decimal")
        out.append(struct.pack(">cBi", b"D", -exponent, -number if sign else number))
    elif isinstance(value, datetime):
        out.append(b"T" + _U64.pack(int(calendar.timegm(value.utctimetuple()))))
    else:
        raise WireError(
            f"an AMQP field table cannot carry {type(value).__name__} {value!r}"
        )


def encode_table(table: Mapping[str, Any]) -> bytes:
    """A field table: its 4-byte size, then each key (shortstr) and value."""
    out: list[bytes] = []
    for key, value in table.items():
        out.append(_shortstr(key))
        try:
            _item(value, out)
        except WireError as exc:
            raise WireError(f"header {key!r}: {exc}") from None
    data = b"".join(out)
    return _U32.pack(len(data)) + data


def _array(values: Sequence[Any]) -> bytes:
    out: list[bytes] = []
    for value in values:
        _item(value, out)
    data = b"".join(out)
    return _U32.pack(len(data)) + data


def _properties(properties: Mapping[str, Any]) -> tuple[int, bytes]:
    flags = 0
    out: list[bytes] = []
    for name, kind, bit in _PROPERTIES:
        value = properties.get(name)
        if value is None:
            continue
        flags |= bit
        if kind == "s":
            out.append(_shortstr(value))
        elif kind == "o":
            out.append(_U8.pack(value))
        elif kind == "F":
            out.append(encode_table(value))
        else:
            out.append(_U64.pack(value))
    return flags, b"".join(out)


def encode_publish(
    out: list[bytes],
    channel: int,
    frame_max: int,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    body: bytes,
    properties: Mapping[str, Any],
) -> None:
    """Append the frames of one ``basic.publish`` of *body* to *out*.

    Raises:
        WireError: A property or header value AMQP cannot carry.
    """
    names = _shortstr(exchange) + _shortstr(routing_key)
    flags, encoded = _properties(properties)
    size = len(body)
    out += (
        _METHOD_HEAD.pack(1, channel, 7 + len(names), 60, 40, 0),
        names,
        b"\x01\xce" if mandatory else b"\x00\xce",
        _FRAME_HEAD.pack(2, channel, 14 + len(encoded)),
        _CONTENT_HEAD.pack(60, 0, size, flags),
        encoded,
        FRAME_END,
    )
    if not size:
        return
    chunk = frame_max - 8
    for start in range(0, size, chunk):
        piece = body[start : start + chunk]
        out += (_FRAME_HEAD.pack(3, channel, len(piece)), piece, FRAME_END)
