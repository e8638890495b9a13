"""The exceptions msgwire raises, under one base class, :class:`MsgwireError`.

Every exception here pickles with all its arguments, so it can cross a process
boundary (a prefork pool child reporting a decode failure, for example).
"""

from __future__ import annotations

__all__ = [
    "ContentDisallowedError",
    "DecodeError",
    "EncodeError",
    "MalformedMessageError",
    "MissingDependencyError",
    "MsgwireError",
    "PluginConflictError",
    "SizeLimitError",
    "UnknownCodecError",
    "UnknownCompressorError",
]


class MsgwireError(Exception):
    """Base class for every error raised by msgwire."""


class EncodeError(MsgwireError, ValueError):
    """A value could not be serialized (an unsupported type, for example)."""


class DecodeError(MsgwireError, ValueError):
    """Input could not be decoded: truncated, malformed, or of the wrong shape."""


class SizeLimitError(DecodeError):
    """Decoding would exceed the configured size limit (a compression bomb, say)."""


class MalformedMessageError(DecodeError):
    """A task message decoded, but a required header or the body has a bad shape."""


class ContentDisallowedError(MsgwireError):
    """The content type of a message is not in the accept list of the reader.

    Attributes:
        content_type: The refused content type.
        accept: The content types that were accepted.
    """

    def __init__(self, content_type: str, accept: frozenset[str] | None = None) -> None:
        self.content_type = content_type
        self.accept = frozenset(accept or ())
        allowed = ", ".join(sorted(self.accept)) or "nothing"
        super().__init__(
            f"refusing to decode content of type {content_type!r}: it is not in the "
            f"accept list ({allowed}); add it to `accept` if you trust every "
            "producer that can write to this queue",
        )

    def __reduce__(
        self,
    ) -> tuple[type[ContentDisallowedError], tuple[str, frozenset[str]]]:
        return (type(self), (self.content_type, self.accept))


class _LookupFailureError(MsgwireError, LookupError):
    kind = "codec"

    def __init__(self, name: str, installed: tuple[str, ...] = ()) -> None:
        self.name = name
        self.installed = tuple(installed)
        from .plugins import describe_unknown  # plugins imports this module

        super().__init__(describe_unknown(self.kind, name, self.installed))

    def __reduce__(
        self,
    ) -> tuple[type[_LookupFailureError], tuple[str, tuple[str, ...]]]:
        return (type(self), (self.name, self.installed))


class UnknownCodecError(_LookupFailureError):
    """No codec is registered or installed under this name or content type."""

    kind = "codec"


class UnknownCompressorError(_LookupFailureError):
    """No compressor is registered or installed under this name or content type."""

    kind = "compression"


class MissingDependencyError(MsgwireError, ImportError):
    """The codec or compressor exists, but the extra that provides it is missing.

    Attributes:
        feature: What needs the dependency, e.g. ``"msgpack codec"``.
        extra: The extra to install, e.g. ``"msgpack"`` for ``msgwire[msgpack]``.
    """

    def __init__(self, feature: str, extra: str) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(
            f"the {feature} needs an optional dependency that is not installed; "
            f"install it with: pip install 'msgwire[{extra}]'",
        )

    def __reduce__(self) -> tuple[type[MissingDependencyError], tuple[str, str]]:
        return (type(self), (self.feature, self.extra))


class PluginConflictError(MsgwireError):
    """Two installed distributions register a plugin under the same name.

    Attributes:
        group: The entry point group, e.g. ``"msgwire.codecs"``.
        name: The contested name.
        claimants: ``"distribution: module:attr"`` for each claimant.
    """

    def __init__(self, group: str, name: str, claimants: tuple[str, ...]) -> None:
        self.group = group
        self.name = name
        self.claimants = tuple(claimants)
        super().__init__(
            f"{len(self.claimants)} installed distributions register {name!r} in "
            f"entry point group {group!r}: {'; '.join(self.claimants)}; uninstall "
            "all but one, or register the instance you want explicitly",
        )

    def __reduce__(
        self,
    ) -> tuple[type[PluginConflictError], tuple[str, str, tuple[str, ...]]]:
        return (type(self), (self.group, self.name, self.claimants))
