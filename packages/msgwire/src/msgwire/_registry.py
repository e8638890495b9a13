"""Registries of configured codec and compressor instances."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .base import (
    DEFAULT_MAX_SIZE,
    Codec,
    Compressor,
    DecodeContext,
    EncodeContext,
    check_size,
)
from .errors import (
    ContentDisallowedError,
    DecodeError,
    EncodeError,
    MissingDependencyError,
    MsgwireError,
    UnknownCodecError,
    UnknownCompressorError,
)
from .plugins import load_plugin, plugin_names

__all__ = [
    "CODEC_GROUP",
    "COMPRESSOR_GROUP",
    "DEFAULT_MAX_SIZE",
    "Encoded",
    "Registry",
    "default_registry",
]

CODEC_GROUP = "msgwire.codecs"
COMPRESSOR_GROUP = "msgwire.compressors"

# The built-ins' content types and compression names, so that a content type
# read off a message maps to an entry point name without importing every plugin.
_BUILTIN_CODEC_TYPES = {
    "application/json": "json",
    "application/x-python-serialize": "pickle",
    "application/x-yaml": "yaml",
    "application/x-msgpack": "msgpack",
    "application/data": "raw",
    "text/plain": "text",
}
_BUILTIN_CODEC_NAMES = {name: ctype for ctype, name in _BUILTIN_CODEC_TYPES.items()}
_BUILTIN_COMPRESSION_KEYS = {
    "application/x-gzip": "zlib",
    "gzip": "zlib",
    "application/x-bz2": "bzip2",
    "bzip": "bzip2",
    "application/x-lzma": "lzma",
    "xz": "lzma",
    "application/zstd": "zstd",
    "zstandard": "zstd",
}


class Encoded(NamedTuple):
    """A serialized payload and the values for its message properties.

    Attributes:
        data: The body bytes (compressed when ``compression`` is set).
        content_type: For the ``content_type`` property.
        content_encoding: For the ``content_encoding`` property.
        compression: For the ``compression`` header, or ``None``.
    """

    data: bytes
    content_type: str
    content_encoding: str
    compression: str | None = None


def _normalize_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


class Registry:
    """Codec and compressor instances for one application, plus its decode policy.

    Two registries never share state: an application builds its own with the
    codec options, accept list and size limit it wants, and another in the same
    process is unaffected. Built-in and third-party implementations are found
    through the ``msgwire.codecs`` and ``msgwire.compressors`` entry point
    groups, each imported the first time its name or content type is asked for.

    Args:
        accept: Codec names or content types :meth:`loads` accepts when the call
            gives no accept list. Defaults to JSON only.
        max_size: The most bytes a body may have, before and after
            decompression; also bounds msgpack and YAML input.
        codecs: Configured codec instances to use instead of the defaults.
        compressors: Configured compressor instances.
        entry_points: Look up names that were not registered in entry points.

    Raises:
        UnknownCodecError: A name in *accept* is not a known codec.
    """

    def __init__(
        self,
        *,
        accept: Iterable[str] = ("json",),
        max_size: int = DEFAULT_MAX_SIZE,
        codecs: Iterable[Codec] = (),
        compressors: Iterable[Compressor] = (),
        entry_points: bool = True,
    ) -> None:
        if max_size < 1:
            raise ValueError(
                f"max_size must be a positive number of bytes, got {max_size}"
            )
        self.max_size = max_size
        self.entry_points = entry_points
        self._lock = threading.RLock()
        self._codecs: dict[str, Codec] = {}
        self._codecs_by_type: dict[str, Codec] = {}
        self._compressors: dict[str, Compressor] = {}
        self._accept_cache: dict[frozenset[str], frozenset[str]] = {}
        for codec in codecs:
            self.register(codec)
        for compressor in compressors:
            self.register_compressor(compressor)
        self.accept: frozenset[str] = self.normalize_accept(accept)

    # -- registration and lookup ------------------------------------------------

    def register(self, codec: Codec) -> None:
        """Use *codec* for its name and content type in this registry only."""
        with self._lock:
            self._codecs[codec.name] = codec
            self._codecs_by_type[_normalize_type(codec.content_type)] = codec
            self._accept_cache.clear()

    def register_compressor(self, compressor: Compressor) -> None:
        """Use *compressor* for its name, aliases and content type in this registry."""
        with self._lock:
            for key in (compressor.name, compressor.content_type, *compressor.aliases):
                self._compressors[key.lower()] = compressor

    def codec(self, key: str) -> Codec:
        """Return the codec registered or installed under a name or content type.

        Raises:
            UnknownCodecError: Nothing provides *key*.
            MissingDependencyError: The codec needs an extra that is missing.
            PluginConflictError: Two distributions claim the name.
        """
        found = self._codecs.get(key) or self._codecs_by_type.get(key)
        if found is not None:
            return found
        with self._lock:
            return self._find_codec(key)

    def _find_codec(self, key: str) -> Codec:
        ctype = _normalize_type(key)
        found = self._codecs.get(ctype) or self._codecs_by_type.get(ctype)
        if found is not None:
            return found
        is_type = "/" in ctype
        name = _BUILTIN_CODEC_TYPES.get(ctype) if is_type else key
        if name is not None:
            codec = self._load_codec(name)
            if codec is not None and (
                not is_type or _normalize_type(codec.content_type) == ctype
            ):
                return codec
        if is_type and self.entry_points:
            # A third-party content type: import the plugins not tried yet.
            for other in plugin_names(CODEC_GROUP):
                if other in self._codecs:
                    continue
                try:
                    codec = self._load_codec(other)
                except MissingDependencyError:
                    continue
                if codec is not None and _normalize_type(codec.content_type) == ctype:
                    return codec
        raise UnknownCodecError(key, self._installed_codecs(types=is_type))

    def _load_codec(self, name: str) -> Codec | None:
        if not self.entry_points:
            return None
        factory = load_plugin(CODEC_GROUP, name)
        if factory is None:
            return None
        codec = factory()  # type: ignore[operator]
        if not isinstance(codec, Codec):
            raise TypeError(
                f"entry point {name!r} in {CODEC_GROUP!r} made {codec!r}, not a Codec",
            )
        self._codecs[name] = codec
        # An instance registered explicitly keeps its content type.
        self._codecs_by_type.setdefault(_normalize_type(codec.content_type), codec)
        return codec

    def _installed_codecs(self, *, types: bool) -> tuple[str, ...]:
        if types:
            known = set(self._codecs_by_type) | set(_BUILTIN_CODEC_TYPES)
        else:
            known = set(self._codecs)
            if self.entry_points:
                known |= set(plugin_names(CODEC_GROUP))
        return tuple(sorted(known))

    def compressor(self, key: str) -> Compressor:
        """Return the compressor for a name, alias or header value.

        Raises:
            UnknownCompressorError: Nothing provides *key*.
            MissingDependencyError: The compressor needs an extra that is missing.
        """
        lowered = key.lower()
        found = self._compressors.get(lowered)
        if found is not None:
            return found
        with self._lock:
            name = _BUILTIN_COMPRESSION_KEYS.get(lowered, lowered)
            factory = load_plugin(COMPRESSOR_GROUP, name) if self.entry_points else None
            if factory is None:
                installed = set(self._compressors)
                if self.entry_points:
                    installed |= set(plugin_names(COMPRESSOR_GROUP))
                raise UnknownCompressorError(key, tuple(sorted(installed)))
            compressor = factory()  # type: ignore[operator]
            if not isinstance(compressor, Compressor):
                raise TypeError(
                    f"entry point {name!r} in {COMPRESSOR_GROUP!r} made "
                    f"{compressor!r}, not a Compressor",
                )
            for alias in (
                compressor.name,
                compressor.content_type,
                *compressor.aliases,
            ):
                self._compressors.setdefault(alias.lower(), compressor)
            return compressor

    def normalize_accept(self, accept: Iterable[str]) -> frozenset[str]:
        """Turn codec names and content types into a set of content types.

        Raises:
            UnknownCodecError: A name is not a known codec.
        """
        key = frozenset(accept)
        cached = self._accept_cache.get(key)
        if cached is not None:
            return cached
        types = set()
        for item in key:
            if "/" in item:
                types.add(_normalize_type(item))
            elif item in self._codecs:
                types.add(_normalize_type(self._codecs[item].content_type))
            elif item in _BUILTIN_CODEC_NAMES:
                types.add(_BUILTIN_CODEC_NAMES[item])
            else:
                types.add(_normalize_type(self.codec(item).content_type))
        result = frozenset(types)
        self._accept_cache[key] = result
        return result

    # -- encoding and decoding --------------------------------------------------

    def dumps(
        self,
        obj: Any,
        serializer: str = "json",
        *,
        compression: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> Encoded:
        """Serialize *obj* with the codec *serializer*, then optionally compress.

        Args:
            obj: The value to serialize.
            serializer: A codec name (or content type).
            compression: A compressor name, alias or header value, or ``None``.
            headers: The message headers, for codecs that sign them.

        Raises:
            EncodeError: *obj* cannot be serialized by this codec.
            UnknownCodecError: No codec is called *serializer*.
            UnknownCompressorError: No compressor is called *compression*.
        """
        codec = self._codecs.get(serializer) or self.codec(serializer)
        try:
            if type(codec).encode is Codec.encode:
                data = codec.dumps(obj)
            else:
                data = codec.encode(obj, EncodeContext(self, headers))
        except MsgwireError:
            raise
        except Exception as exc:
            raise EncodeError(
                f"{codec.name} codec failed: {type(exc).__name__}: {exc}"
            ) from exc
        header = None
        if compression is not None:
            compressor = self.compressor(compression)
            data = compressor.compress(data)
            header = compressor.content_type
        # tuple.__new__ skips NamedTuple's Python-level constructor (hot path).
        return tuple.__new__(
            Encoded, (data, codec.content_type, codec.content_encoding, header)
        )

    def loads(
        self,
        data: bytes | bytearray | memoryview | str,
        content_type: str | None,
        content_encoding: str | None = None,
        *,
        accept: Iterable[str] | None = None,
        compression: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> Any:
        """Decompress and deserialize a body after checking it may be decoded.

        Args:
            data: The body as received.
            content_type: The message's ``content_type`` property.
            content_encoding: The ``content_encoding`` property (informational:
                each codec knows its encoding).
            accept: Codec names or content types allowed; the registry's
                ``accept`` when ``None``. Anything else is refused before a
                byte is decoded.
            compression: The message's ``compression`` header, if any.
            headers: The message headers, for codecs that verify them.

        Raises:
            ContentDisallowedError: *content_type* is not accepted.
            DecodeError: The body is malformed, truncated, too large, or of a
                content type no codec handles.
            MissingDependencyError: The codec exists but its extra is missing.
        """
        if not content_type:
            raise DecodeError(
                "message has no content_type property, so its body cannot be "
                "decoded; the producer must set one (application/json, for example)",
            )
        allowed = self.accept if accept is None else self.normalize_accept(accept)
        ctype = (
            content_type if content_type in allowed else _normalize_type(content_type)
        )
        if ctype not in allowed:
            raise ContentDisallowedError(content_type, allowed)
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, bytes):
            data = bytes(data)
        check_size(data, self.max_size, "body")
        if compression:
            data = self.decompress(data, compression)
        try:
            codec = self._codecs_by_type.get(ctype) or self.codec(ctype)
        except UnknownCodecError as exc:
            raise DecodeError(
                f"cannot decode content type {content_type!r}: {exc}"
            ) from exc
        try:
            if type(codec).decode is Codec.decode:
                return codec.loads(data)
            return codec.decode(data, DecodeContext(self, allowed, headers))
        except MsgwireError:
            raise
        except Exception as exc:
            raise DecodeError(
                f"{codec.name} codec failed: {type(exc).__name__}: {exc}"
            ) from exc

    def compress(self, data: bytes, compression: str) -> tuple[bytes, str]:
        """Compress *data*; return it with the value for the ``compression`` header.

        Raises:
            UnknownCompressorError: No compressor is called *compression*.
        """
        compressor = self.compressor(compression)
        return compressor.compress(data), compressor.content_type

    def decompress(
        self, data: bytes, compression: str, *, max_size: int | None = None
    ) -> bytes:
        """Decompress *data* named by its ``compression`` header, bounded in size.

        Raises:
            SizeLimitError: The output would exceed *max_size* (default: the
                registry's ``max_size``).
            DecodeError: The data is corrupt, or no compressor has that name.
        """
        try:
            compressor = self.compressor(compression)
        except UnknownCompressorError as exc:
            raise DecodeError(f"cannot decompress body: {exc}") from exc
        return compressor.decompress(
            data, self.max_size if max_size is None else max_size
        )

    def __repr__(self) -> str:
        return f"<Registry accept={sorted(self.accept)} max_size={self.max_size}>"


#: The registry behind the module-level helpers; applications build their own.
default_registry = Registry()
