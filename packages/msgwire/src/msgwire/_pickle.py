"""Pickle codec, ``application/x-python-serialize``.

Unpickling runs code chosen by whoever wrote the message, so a registry only
decodes pickle when the caller's accept list names it explicitly. Option:
``protocol`` (default: the running Python's default protocol).
"""

from __future__ import annotations

import pickle
from typing import Any

from .base import Codec
from .errors import DecodeError, EncodeError

__all__ = ["PickleCodec"]


class PickleCodec(Codec):
    """Python's pickle; never accepted unless an accept list names it."""

    name = "pickle"
    content_type = "application/x-python-serialize"
    content_encoding = "binary"

    def __init__(self, *, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
        if not 0 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise ValueError(
                f"pickle protocol must be between 0 and {pickle.HIGHEST_PROTOCOL}, "
                f"got {protocol}",
            )
        self.protocol = protocol

    def dumps(self, obj: Any) -> bytes:
        """Pickle *obj*.

        Raises:
            EncodeError: *obj* cannot be pickled.
        """
        try:
            return pickle.dumps(obj, protocol=self.protocol)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            raise EncodeError(f"cannot pickle {type(obj).__name__}: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        """Unpickle *data*.

        Raises:
            DecodeError: *data* is not a valid pickle or names a missing class.
        """
        try:
            return pickle.loads(data)  # noqa: S301 - only reached when accept names pickle
        except Exception as exc:
            raise DecodeError(f"invalid pickle: {type(exc).__name__}: {exc}") from exc
