"""The exceptions resultstores raises, under one base class, :class:`ResultStoreError`.

Every exception pickles with all its arguments, so it can cross a process
boundary. Messages never contain passwords.
"""

from __future__ import annotations

from msgwire.plugins import describe_unknown

__all__ = [
    "InvalidURLError",
    "MissingDriverError",
    "ResultStoreError",
    "ResultTimeoutError",
    "StoreConnectionError",
    "UnknownSchemeError",
]


class ResultStoreError(Exception):
    """Base class for every error raised by resultstores."""


class InvalidURLError(ResultStoreError, ValueError):
    """A result store URL could not be parsed or has an option of the wrong form."""


class UnknownSchemeError(ResultStoreError, ValueError):
    """No installed distribution provides a result store for this URL scheme.

    Attributes:
        scheme: The scheme asked for.
        installed: The schemes that are installed.
    """

    def __init__(self, scheme: str, installed: tuple[str, ...] = ()) -> None:
        self.scheme = scheme
        self.installed = tuple(installed)
        super().__init__(
            describe_unknown("result store scheme", scheme, self.installed)
        )

    def __reduce__(
        self,
    ) -> tuple[type[UnknownSchemeError], tuple[str, tuple[str, ...]]]:
        return (type(self), (self.scheme, self.installed))


class MissingDriverError(ResultStoreError, ImportError):
    """The store exists, but the extra that provides its driver is missing.

    Attributes:
        store: The store's name, e.g. ``"memcached"``.
        extra: The extra to install, e.g. ``"memcached"`` for
            ``resultstores[memcached]``.
    """

    def __init__(self, store: str, extra: str) -> None:
        self.store = store
        self.extra = extra
        super().__init__(
            f"the {store} result store needs its driver; install it with: "
            f"pip install 'resultstores[{extra}]'",
        )

    def __reduce__(self) -> tuple[type[MissingDriverError], tuple[str, str]]:
        return (type(self), (self.store, self.extra))


class StoreConnectionError(ResultStoreError):
    """The store is unreachable or dropped the connection; retrying is safe."""


class ResultTimeoutError(ResultStoreError, TimeoutError):
    """A result did not reach a final state within the time asked for.

    Attributes:
        task_id: The task waited for.
        timeout: The seconds waited.
    """

    def __init__(self, task_id: str, timeout: float) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(f"task {task_id} did not finish within {timeout:g} seconds")

    def __reduce__(self) -> tuple[type[ResultTimeoutError], tuple[str, float]]:
        return (type(self), (self.task_id, self.timeout))
