"""The exceptions transports raise, under one base class, :class:`TransportError`.

Every exception pickles with all its arguments, so it can cross a process
boundary. Messages never contain passwords: URLs are masked before they are
put in a message.
"""

from __future__ import annotations

from msgwire.plugins import describe_unknown

__all__ = [
    "DeclarationMismatchError",
    "InvalidURLError",
    "MissingDriverError",
    "TransportClosedError",
    "TransportConnectionError",
    "TransportError",
    "UnknownSchemeError",
    "UnroutableError",
]


class TransportError(Exception):
    """Base class for every error raised by transports."""


class InvalidURLError(TransportError, ValueError):
    """A broker URL could not be parsed or has an option of the wrong form."""


class UnknownSchemeError(TransportError, ValueError):
    """No installed distribution provides a transport for this URL scheme.

    Attributes:
        scheme: The scheme asked for.
        installed: The schemes that are installed.
    """

    def __init__(self, scheme: str, installed: tuple[str, ...] = ()) -> None:
        self.scheme = scheme
        self.installed = tuple(installed)
        super().__init__(describe_unknown("transport scheme", scheme, self.installed))

    def __reduce__(
        self,
    ) -> tuple[type[UnknownSchemeError], tuple[str, tuple[str, ...]]]:
        return (type(self), (self.scheme, self.installed))


class MissingDriverError(TransportError, ImportError):
    """The transport exists, but the extra that provides its driver is missing.

    Attributes:
        transport: The transport's name, e.g. ``"redis"``.
        extra: The extra to install, e.g. ``"redis"`` for ``transports[redis]``.
    """

    def __init__(self, transport: str, extra: str) -> None:
        self.transport = transport
        self.extra = extra
        super().__init__(
            f"the {transport} transport needs its driver; install it with: "
            f"pip install 'transports[{extra}]'",
        )

    def __reduce__(self) -> tuple[type[MissingDriverError], tuple[str, str]]:
        return (type(self), (self.transport, self.extra))


class TransportConnectionError(TransportError):
    """The broker is unreachable or dropped the connection; retrying is safe."""


class TransportClosedError(TransportError):
    """The connection was closed by this process; it cannot be used again."""


class DeclarationMismatchError(TransportError):
    """A queue or exchange was declared again with different arguments.

    Attributes:
        name: The queue or exchange.
        existing: The arguments it was declared with.
        requested: The arguments of the new declaration.
    """

    def __init__(
        self, name: str, existing: dict[str, object], requested: dict[str, object]
    ) -> None:
        self.name = name
        self.existing = dict(existing)
        self.requested = dict(requested)
        super().__init__(
            f"{name!r} already exists with arguments {self.existing!r}, which differ "
            f"from the requested {self.requested!r}; use a new name, or delete it "
            "first if nothing else uses it",
        )

    def __reduce__(
        self,
    ) -> tuple[
        type[DeclarationMismatchError], tuple[str, dict[str, object], dict[str, object]]
    ]:
        return (type(self), (self.name, self.existing, self.requested))


class UnroutableError(TransportError):
    """A publish with the mandatory flag matched no queue."""
