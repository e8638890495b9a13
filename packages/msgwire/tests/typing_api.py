"""Uses msgwire's public API as a user would; mypy checks it, pytest never runs it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from typing_extensions import assert_type

import msgwire
from msgwire import (
    Codec,
    Encoded,
    JsonCodec,
    Registry,
    TaskMessage,
    TimeLimit,
    WireMessage,
)


class Reverse(Codec):
    name = "reverse"
    content_type = "application/x-reverse"
    content_encoding = "utf-8"

    def dumps(self, obj: Any) -> bytes:
        return str(obj)[::-1].encode()

    def loads(self, data: bytes) -> Any:
        return data.decode()[::-1]


registry = Registry(
    accept=["json", "reverse"], codecs=[JsonCodec(compact=True), Reverse()]
)
encoded = registry.dumps({"a": 1}, "json", compression="zlib")
assert_type(encoded, Encoded)
assert_type(encoded.data, bytes)
assert_type(encoded.compression, "str | None")
value: Any = registry.loads(
    encoded.data, encoded.content_type, compression=encoded.compression
)
assert_type(msgwire.dumps([1]), Encoded)

message = TaskMessage.new(
    "proj.add",
    (1, 2),
    {"k": "v"},
    eta=datetime.now(timezone.utc),
    timelimit=TimeLimit(hard=10, soft=5),
)
wire = message.encode(registry=registry, serializer="json")
assert_type(wire, WireMessage)
assert_type(wire.body, bytes)
decoded = TaskMessage.decode(wire.body, wire.headers, wire.properties, accept=["json"])
assert_type(decoded, TaskMessage)
assert_type(decoded.timelimit.hard, "float | None")
assert_type(decoded.eta, "datetime | None")

try:
    msgwire.loads(b"", "application/x-python-serialize")
except msgwire.ContentDisallowedError as exc:
    assert_type(exc.content_type, str)
except msgwire.DecodeError:
    pass
