"""AMQP 0-9-1 ``basic.publish`` frames encoded, ``basic.deliver`` frames decoded.

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

Consuming is the mirror image: py-amqp turns each delivered message into a
``Message`` through a generic frame handler, a method dispatch table and a
property decoder that slices and decodes field by field, most of a consuming
I/O thread's time. :class:`FrameSplitter` takes the complete frames out of a
received buffer, handing whole deliveries (method, content header and body
frames) to a callback with their properties decoded here, and every other
frame to py-amqp. The values decoded are py-amqp's (``S`` to str, or bytes
when not UTF-8, ``T`` to a naive UTC datetime, ``D`` to Decimal, ...).
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

__all__ = [
    "FRAME_END",
    "DeliverHandler",
    "FrameHandler",
    "FrameSplitter",
    "WireError",
    "decode_properties",
    "decode_table",
    "encode_publish",
    "encode_table",
]

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


_INT = struct.Struct(">ci")  # an "I" value: the type octet, then the int


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
            out.append(_INT.pack(b"I", value))
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


#: Encoded table keys (shortstrs): a producer sends the same few keys in
#: every message (Celery's headers), so each is encoded once.
_KEYS: dict[str, bytes] = {}
_KEYS_LIMIT = 4096


def _key(key: str) -> bytes:
    head = _shortstr(key)
    if type(key) is str and len(_KEYS) < _KEYS_LIMIT:
        _KEYS[key] = head
    return head


def encode_table(table: Mapping[str, Any]) -> bytes:
    """A field table: its 4-byte size, then each key (shortstr) and value.

    Strings, ``None``, ints and bools, most of a task message's headers, are
    encoded inline; other values through :func:`_item`.
    """
    out: list[bytes] = []
    append = out.append
    keys = _KEYS
    pack = _U32.pack
    for key, value in table.items():
        head = keys.get(key) or _key(key)
        kind = type(value)
        if kind is str:
            try:
                data = value.encode()
            except UnicodeEncodeError:  # lone surrogates pass, as py-amqp's do
                data = value.encode("utf-8", "surrogatepass")
            append(head + b"S" + pack(len(data)) + data)
        elif value is None:
            append(head + b"V")
        elif kind is bool:
            append(head + (b"t\x01" if value else b"t\x00"))
        elif kind is int and -2147483647 <= value <= 2147483647:
            append(head + _INT.pack(b"I", value))
        else:
            append(head)
            try:
                _item(value, out)
            except WireError as exc:
                raise WireError(f"header {key!r}: {exc}") from None
    data = b"".join(out)
    return pack(len(data)) + data


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


# -- decoding --------------------------------------------------------------------------

_DELIVER = b"\x00\x3c\x00\x3c"  # class 60 (basic), method 60 (deliver)
_U16 = struct.Struct(">H")
_DELIVERY_TAG = struct.Struct(">QB")  # delivery tag, then the redelivered bit
_BODY_SIZE = struct.Struct(">Q")
_I32 = struct.Struct(">i")
_SIMPLE = {
    # type: (struct, size) of the fixed-size field values
    ord("s"): (struct.Struct(">h"), 2),
    ord("b"): (struct.Struct(">b"), 1),
    ord("B"): (struct.Struct(">B"), 1),
    ord("U"): (struct.Struct(">h"), 2),
    ord("u"): (struct.Struct(">H"), 2),
    ord("I"): (_I32, 4),
    ord("i"): (struct.Struct(">I"), 4),
    ord("L"): (struct.Struct(">q"), 8),
    ord("l"): (struct.Struct(">q"), 8),
    ord("f"): (struct.Struct(">f"), 4),
    ord("d"): (struct.Struct(">d"), 8),
}
_DECIMAL = struct.Struct(">Bi")


def _text(data: bytes) -> str | bytes:
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data


def _short(buf: bytes, offset: int) -> tuple[Any, int]:
    """The shortstr at *offset* (str, or bytes when not UTF-8) and the offset after."""
    end = offset + 1 + buf[offset]
    return _text(buf[offset + 1 : end]), end


def _value(buf: bytes, offset: int) -> tuple[Any, int]:
    kind = buf[offset]
    offset += 1
    if kind == 83:  # S
        (size,) = _U32.unpack_from(buf, offset)
        offset += 4
        return _text(buf[offset : offset + size]), offset + size
    simple = _SIMPLE.get(kind)
    if simple is not None:
        packer, size = simple
        return packer.unpack_from(buf, offset)[0], offset + size
    if kind == 116:  # t
        return bool(buf[offset]), offset + 1
    if kind == 70:  # F
        return _table(buf, offset)
    if kind == 86:  # V
        return None, offset
    if kind == 65:  # A
        (size,) = _U32.unpack_from(buf, offset)
        offset += 4
        limit = offset + size
        items = []
        while offset < limit:
            item, offset = _value(buf, offset)
            items.append(item)
        return items, offset
    if kind == 84:  # T
        (stamp,) = _U64.unpack_from(buf, offset)
        moment = datetime.fromtimestamp(stamp, tz=timezone.utc).replace(tzinfo=None)
        return moment, offset + 8
    if kind == 68:  # D
        places, number = _DECIMAL.unpack_from(buf, offset)
        return Decimal(number) / Decimal(10**places), offset + 5
    if kind == 120:  # x
        (size,) = _U32.unpack_from(buf, offset)
        offset += 4
        return buf[offset : offset + size], offset + size
    raise WireError(f"unknown field type {chr(kind)!r} in a field table")


#: Decoded table keys by their bytes: a producer sends the same few keys in
#: every message (Celery's headers), so each is decoded once.
_KEYS_READ: dict[bytes, str | bytes] = {}


def _table(buf: bytes, offset: int) -> tuple[dict[Any, Any], int]:
    (size,) = _U32.unpack_from(buf, offset)
    offset += 4
    limit = offset + size
    table: dict[Any, Any] = {}
    keys = _KEYS_READ
    unpack = _U32.unpack_from
    while offset < limit:
        # _short inline: a table's keys are the most frequent shortstrs
        end = offset + 1 + buf[offset]
        raw = buf[offset + 1 : end]
        key = keys.get(raw)
        if key is None:
            key = _text(raw)
            if len(keys) < _KEYS_LIMIT:
                keys[raw] = key
        # The values of a task message's headers, inline; the rest: _value.
        kind = buf[end]
        if kind == 83:  # S
            (length,) = unpack(buf, end + 1)
            offset = end + 5 + length
            data = buf[end + 5 : offset]
            try:
                table[key] = data.decode()
            except UnicodeDecodeError:
                table[key] = _text(data)
        elif kind == 86:  # V
            table[key] = None
            offset = end + 1
        elif kind == 116:  # t
            table[key] = buf[end + 1] != 0
            offset = end + 2
        elif kind == 73:  # I
            (table[key],) = _I32.unpack_from(buf, end + 1)
            offset = end + 5
        else:
            table[key], offset = _value(buf, end)
    if offset != limit:
        raise WireError("a field table's values overran its size")
    return table, offset


def decode_table(buf: bytes, offset: int = 0) -> tuple[dict[Any, Any], int]:
    """The field table at *offset* of *buf* and the offset after it.

    Raises:
        WireError: An unknown field type or a table overrunning its size.
    """
    try:
        return _table(buf, offset)
    except (IndexError, struct.error):
        raise WireError("a field table runs past the end of its frame") from None


def decode_properties(buf: bytes, offset: int) -> dict[str, Any]:
    """The basic properties of a content header, from its property flags on.

    Raises:
        WireError: A malformed property list.
    """
    try:
        (flags,) = _U16.unpack_from(buf, offset)
        offset += 2
        while buf[offset - 1] & 1:  # a continuation: basic has only 14 properties
            offset += 2
        properties: dict[str, Any] = {}
        for name, kind, bit in _PROPERTIES:
            if not flags & bit:
                continue
            if kind == "s":
                properties[name], offset = _short(buf, offset)
            elif kind == "F":
                properties[name], offset = _table(buf, offset)
            elif kind == "o":
                properties[name] = buf[offset]
                offset += 1
            else:
                (properties[name],) = _U64.unpack_from(buf, offset)
                offset += 8
    except (IndexError, struct.error):
        raise WireError("a content header runs past the end of its frame") from None
    return properties


#: ``on_deliver(channel, consumer_tag, delivery_tag, redelivered, exchange,
#: routing_key, properties, body)``; *properties* is the :class:`WireError` when
#: they cannot be decoded (an unknown field type, say), so that the consumer
#: can reject that one message rather than lose the connection over it.
DeliverHandler = Callable[
    [int, str, int, bool, str, str, "dict[str, Any] | WireError", bytes], None
]
#: ``on_frame((frame_type, channel, payload))``, py-amqp's inbound frame handler.
FrameHandler = Callable[[tuple[int, int, bytes]], Any]


class FrameSplitter:
    """Hands the complete frames at the start of a buffer to their handlers.

    A ``basic.deliver`` is handled once all its frames are in the buffer, so
    that a delivery is never split between this reader and py-amqp's. After
    :meth:`split` returns or raises (a handler's exception propagates),
    :attr:`handled` is the offset of the first byte not yet handled,
    :attr:`needed` how many bytes from there the next frame or delivery needs
    at least, and :attr:`frames` counts the frames handled (the heartbeat's
    traffic count).
    """

    __slots__ = ("frames", "handled", "needed", "on_deliver", "on_frame")

    def __init__(self, on_deliver: DeliverHandler, on_frame: FrameHandler) -> None:
        self.on_deliver = on_deliver
        self.on_frame = on_frame
        self.handled = 0
        self.needed = 8
        self.frames = 0

    def split(self, buf: bytes) -> None:
        """Handle the complete frames of *buf*, from its start.

        Raises:
            WireError: A frame that does not end with the frame-end octet, or a
                delivery's content frames out of order.
        """
        self.handled = 0
        size_of = len(buf)
        pos = 0
        unpack_head = _FRAME_HEAD.unpack_from
        on_frame = self.on_frame
        self.needed = 8
        while size_of - pos >= 8:
            kind, channel, size = unpack_head(buf, pos)
            end = pos + 7 + size
            if end >= size_of:
                self.needed = end + 1 - pos
                return
            if buf[end] != 206:
                raise WireError(f"frame-end octet {buf[end]:#x}, not 0xce")
            if kind != 1 or buf[pos + 7 : pos + 11] != _DELIVER:
                self.handled = end + 1
                self.frames += 1
                on_frame((kind, channel, buf[pos + 7 : end]))
                pos = end + 1
                continue
            # A delivery: its content header and body frames must follow whole.
            head = end + 1
            if size_of - head < 8:
                self.needed = head + 8 - pos
                return
            header_kind, _, header_size = unpack_head(buf, head)
            header_end = head + 7 + header_size
            if header_end >= size_of:
                self.needed = header_end + 1 - pos
                return
            if header_kind != 2 or buf[header_end] != 206:
                raise WireError(
                    f"frame type {header_kind} after a basic.deliver, or no frame end"
                )
            (body_size,) = _BODY_SIZE.unpack_from(buf, head + 11)
            cursor = header_end + 1
            chunks: list[bytes] = []
            remaining = body_size
            while remaining > 0:
                # At least: the rest of the body, in frames of 8 bytes' overhead.
                self.needed = cursor + remaining + 8 - pos
                if size_of - cursor < 8:
                    return
                body_kind, _, piece = unpack_head(buf, cursor)
                piece_end = cursor + 7 + piece
                if piece_end >= size_of:
                    return  # the rest of the body has not arrived yet
                if body_kind != 3 or buf[piece_end] != 206:
                    raise WireError(
                        f"frame type {body_kind} inside a message body, or no frame end"
                    )
                chunks.append(buf[cursor + 7 : piece_end])
                remaining -= piece
                cursor = piece_end + 1
            consumer_tag, offset = _short(buf, pos + 11)
            delivery_tag, redelivered = _DELIVERY_TAG.unpack_from(buf, offset)
            exchange, offset = _short(buf, offset + 9)
            routing_key, _ = _short(buf, offset)
            properties: dict[str, Any] | WireError
            try:
                properties = decode_properties(buf, head + 19)
            except WireError as exc:  # the consumer rejects this one message
                properties = exc
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.frames += 2 + len(chunks)
            self.handled = pos = cursor
            self.needed = 8
            self.on_deliver(
                channel,
                consumer_tag,
                delivery_tag,
                bool(redelivered & 1),
                exchange,
                routing_key,
                properties,
                body,
            )
