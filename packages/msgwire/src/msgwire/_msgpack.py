"""msgpack codec, ``application/x-msgpack``; needs ``msgwire[msgpack]``.

Packed as kombu packs (``use_bin_type``), so kombu reads what we write. Bytes
use msgpack's own bin type; datetime, date, time, Decimal and UUID travel as
the same tag maps as in JSON (see :mod:`msgwire._tags`), never as extension
types. kombu's msgpack decoder leaves those tag maps as plain dicts.
Decoding accepts msgpack timestamps (as aware UTC datetimes) and refuses any
other extension type. Map keys must be str or bytes, as in kombu. Option:
``max_size`` (bytes of input, default 64 MiB).
"""

from __future__ import annotations

from typing import Any

from ._tags import tag, untag_object
from .base import DEFAULT_MAX_SIZE, Codec, check_size
from .errors import DecodeError, EncodeError, MissingDependencyError

__all__ = ["MsgpackCodec"]


def _default(obj: Any) -> Any:
    if isinstance(obj, int):
        # msgpack hands integers it cannot pack to the default hook.
        raise EncodeError(
            f"cannot serialize to msgpack: integer {obj} is outside the 64-bit "
            "range msgpack can carry; send it as a string or use JSON",
        )
    return tag(obj, bytes_native=True)


def _refuse_extension(code: int, data: bytes) -> Any:
    raise DecodeError(
        f"msgpack extension type {code} is not supported; extended values travel "
        "as {'__type__': ..., '__value__': ...} maps",
    )


class MsgpackCodec(Codec):
    """msgpack with kombu's packing options and JSON's extended-type tags."""

    name = "msgpack"
    content_type = "application/x-msgpack"
    content_encoding = "binary"

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size
        try:
            import msgpack
        except ImportError:
            raise MissingDependencyError("msgpack codec", "msgpack") from None
        self._msgpack = msgpack

    def dumps(self, obj: Any) -> bytes:
        """Pack *obj*.

        Raises:
            EncodeError: *obj* holds an unsupported type or an out-of-range integer.
        """
        try:
            packed: bytes = self._msgpack.packb(
                obj, use_bin_type=True, default=_default
            )
        except EncodeError:
            raise
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise EncodeError(f"cannot serialize to msgpack: {exc}") from exc
        return packed

    def loads(self, data: bytes) -> Any:
        """Unpack *data*.

        Raises:
            SizeLimitError: *data* is larger than ``max_size``.
            DecodeError: *data* is truncated, has trailing bytes, invalid UTF-8
                strings, an extension type, or a malformed tag.
        """
        check_size(data, self.max_size, "msgpack body")
        try:
            return self._msgpack.unpackb(
                data,
                raw=False,
                object_hook=untag_object,
                ext_hook=_refuse_extension,
                timestamp=3,
                strict_map_key=True,
            )
        except DecodeError:
            raise
        except (ValueError, TypeError, RecursionError) as exc:
            # msgpack's ExtraData, FormatError and StackError are ValueErrors.
            raise DecodeError(f"invalid msgpack: {type(exc).__name__}: {exc}") from exc
