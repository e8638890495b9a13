"""msgwire: codecs, compression and Celery's task message, protocol version 2.

The bottom library of queue-meta; it depends on nothing else of ours. A
:class:`Registry` holds configured codec and compressor instances and an accept
list; :data:`default_registry` backs the module-level helpers::

    import msgwire

    encoded = msgwire.dumps({"x": 1}, "json", compression="zlib")
    value = msgwire.loads(encoded.data, encoded.content_type,
                          compression=encoded.compression, accept={"json"})

:class:`TaskMessage` encodes and decodes Celery task messages.
"""

from __future__ import annotations

from importlib.metadata import version as _version
from typing import Any

from ._compression import (
    Bzip2Compressor as Bzip2Compressor,
)
from ._compression import (
    LzmaCompressor as LzmaCompressor,
)
from ._compression import (
    ZlibCompressor as ZlibCompressor,
)
from ._compression import (
    ZstdCompressor as ZstdCompressor,
)
from ._json import JsonCodec as JsonCodec
from ._msgpack import MsgpackCodec as MsgpackCodec
from ._pickle import PickleCodec as PickleCodec
from ._protocol import REPR_MAXSIZE as REPR_MAXSIZE
from ._protocol import Embed as Embed
from ._protocol import TaskMessage as TaskMessage
from ._protocol import TimeLimit as TimeLimit
from ._protocol import WireMessage as WireMessage
from ._protocol import anon_nodename as anon_nodename
from ._raw import RawCodec as RawCodec
from ._raw import TextCodec as TextCodec
from ._registry import Encoded as Encoded
from ._registry import Registry as Registry
from ._registry import default_registry as default_registry
from ._saferepr import saferepr as saferepr
from ._yaml import YamlCodec as YamlCodec
from .base import DEFAULT_MAX_SIZE as DEFAULT_MAX_SIZE
from .base import Codec as Codec
from .base import Compressor as Compressor
from .base import DecodeContext as DecodeContext
from .base import EncodeContext as EncodeContext
from .errors import ContentDisallowedError as ContentDisallowedError
from .errors import DecodeError as DecodeError
from .errors import EncodeError as EncodeError
from .errors import MalformedMessageError as MalformedMessageError
from .errors import MissingDependencyError as MissingDependencyError
from .errors import MsgwireError as MsgwireError
from .errors import PluginConflictError as PluginConflictError
from .errors import SizeLimitError as SizeLimitError
from .errors import UnknownCodecError as UnknownCodecError
from .errors import UnknownCompressorError as UnknownCompressorError

__version__ = _version("msgwire")

__all__ = [
    "DEFAULT_MAX_SIZE",
    "REPR_MAXSIZE",
    "Bzip2Compressor",
    "Codec",
    "Compressor",
    "ContentDisallowedError",
    "DecodeContext",
    "DecodeError",
    "Embed",
    "EncodeContext",
    "EncodeError",
    "Encoded",
    "JsonCodec",
    "LzmaCompressor",
    "MalformedMessageError",
    "MissingDependencyError",
    "MsgpackCodec",
    "MsgwireError",
    "PickleCodec",
    "PluginConflictError",
    "RawCodec",
    "Registry",
    "SizeLimitError",
    "TaskMessage",
    "TextCodec",
    "TimeLimit",
    "UnknownCodecError",
    "UnknownCompressorError",
    "WireMessage",
    "YamlCodec",
    "ZlibCompressor",
    "ZstdCompressor",
    "__version__",
    "anon_nodename",
    "compress",
    "decompress",
    "default_registry",
    "dumps",
    "loads",
    "saferepr",
]


def dumps(
    obj: Any, serializer: str = "json", *, compression: str | None = None
) -> Encoded:
    """Serialize *obj* with the default registry; see :meth:`Registry.dumps`."""
    return default_registry.dumps(obj, serializer, compression=compression)


def loads(
    data: bytes | bytearray | memoryview | str,
    content_type: str | None,
    content_encoding: str | None = None,
    *,
    accept: Any = None,
    compression: str | None = None,
) -> Any:
    """Deserialize with the default registry; see :meth:`Registry.loads`.

    Only JSON is accepted unless *accept* names other codecs or content types.
    """
    return default_registry.loads(
        data, content_type, content_encoding, accept=accept, compression=compression
    )


def compress(data: bytes, compression: str) -> tuple[bytes, str]:
    """Compress with the default registry; see :meth:`Registry.compress`."""
    return default_registry.compress(data, compression)


def decompress(data: bytes, compression: str, *, max_size: int | None = None) -> bytes:
    """Decompress with the default registry; see :meth:`Registry.decompress`."""
    return default_registry.decompress(data, compression, max_size=max_size)
