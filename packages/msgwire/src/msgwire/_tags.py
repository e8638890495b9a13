"""kombu's tagged values for types JSON cannot carry.

Since kombu 5.3, a value JSON has no type for travels as an object with exactly
the two keys ``__type__`` and ``__value__``. Using the very same tags means a
Celery consumer decodes what we write and we decode what it writes. A new tag
would crash kombu's decoder, so anything outside this table is refused.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from ._timeutil import parse_datetime
from .errors import DecodeError, EncodeError

__all__ = ["TAGGED_TYPES", "tag", "untag", "untag_object"]

TYPE_KEY = "__type__"
VALUE_KEY = "__value__"

#: Tag name for each Python type, in the order they are tried.
TAGGED_TYPES: tuple[tuple[str, str], ...] = (
    ("datetime", "datetime.datetime"),
    ("date", "datetime.date"),
    ("time", "datetime.time"),
    ("decimal", "decimal.Decimal"),
    ("uuid", "uuid.UUID"),
    ("bytes", "bytes (valid UTF-8)"),
    ("base64", "bytes (other)"),
)


def _tagged(kind: str, value: Any) -> dict[str, Any]:
    return {TYPE_KEY: kind, VALUE_KEY: value}


def tag(obj: Any, *, bytes_native: bool = False) -> Any:
    """Return the JSON-ready stand-in for *obj*, a value of a non-JSON type.

    Objects with a ``__json__()`` method are encoded through it, as kombu does.
    With *bytes_native* (msgpack, YAML) bytes are left to the format itself.

    Raises:
        EncodeError: *obj* has a type that has no tag.
    """
    # datetime before date: a datetime is also a date.
    if isinstance(obj, datetime):
        return _tagged("datetime", obj.isoformat())
    if isinstance(obj, date):
        return _tagged("date", obj.isoformat())
    if isinstance(obj, time):
        return _tagged("time", obj.isoformat())
    if isinstance(obj, Decimal):
        return _tagged("decimal", str(obj))
    if isinstance(obj, UUID):
        return _tagged("uuid", {"hex": obj.hex})
    if isinstance(obj, (bytes, bytearray, memoryview)) and not bytes_native:
        raw = bytes(obj)
        try:
            return _tagged("bytes", raw.decode("utf-8"))
        except UnicodeDecodeError:
            return _tagged("base64", base64.b64encode(raw).decode("ascii"))
    reducer = getattr(obj, "__json__", None)
    if reducer is not None and callable(reducer):
        return reducer()
    kind = type(obj)
    raise EncodeError(
        f"cannot serialize a value of type {kind.__module__}.{kind.__qualname__}: "
        "supported are the format's own types (str, int, float, bool, None, list, "
        "tuple, dict) plus datetime, date, time, Decimal, UUID and bytes; convert it "
        "first (a set to a list, for example) or give the class a __json__() method",
    )


def _uuid(value: Any) -> UUID:
    return UUID(hex=value["hex"])


def _date(value: str) -> date:
    return (
        datetime.fromisoformat(value).date()
        if "T" in value
        else date.fromisoformat(value)
    )


def _datetime(value: str) -> datetime:
    # A naive value stays naive: it was naive when it was encoded.
    if value[-1:] in ("Z", "z"):
        return parse_datetime(value)
    return datetime.fromisoformat(value)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": _datetime,
    "date": _date,
    "time": time.fromisoformat,
    "decimal": Decimal,
    "uuid": _uuid,
    "bytes": lambda v: v.encode("utf-8"),
    "base64": lambda v: base64.b64decode(v.encode("ascii"), validate=True),
}


def untag(kind: Any, value: Any) -> Any:
    """Return the Python value for the tag *kind* holding *value*.

    Raises:
        DecodeError: The tag is unknown or its value is malformed.
    """
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise DecodeError(
            f"unknown extended type tag {kind!r} in __type__; known tags: "
            f"{', '.join(_DECODERS)}",
        )
    if kind != "uuid" and not isinstance(value, str):
        raise DecodeError(
            f"malformed {kind!r} tag: __value__ must be a string, "
            f"got {type(value).__name__}",
        )
    try:
        return decoder(value)
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        InvalidOperation,
        binascii.Error,
    ) as exc:
        raise DecodeError(f"malformed {kind!r} tag value {value!r}: {exc}") from exc


def untag_object(obj: dict[str, Any]) -> Any:
    """Object hook: turn a tag object back into its value, leave others alone."""
    if len(obj) == 2 and TYPE_KEY in obj and VALUE_KEY in obj:
        return untag(obj[TYPE_KEY], obj[VALUE_KEY])
    return obj
