"""The exceptions resultstores raises, under one base class, :class:`ResultStoreError`.

Every exception pickles with all its arguments, so it can cross a process
boundary. Messages never contain passwords: URLs are masked before they are
put in a message.
"""

from __future__ import annotations

from msgwire.plugins import describe_unknown

__all__ = [
    "InvalidStateError",
    "InvalidURLError",
    "MissingDriverError",
    "RemoteTaskError",
    "ResultStoreConnectionError",
    "ResultStoreError",
    "ResultTimeoutError",
    "ResultTooLargeError",
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


class ResultStoreConnectionError(ResultStoreError):
    """The store is unreachable or dropped the connection, and retrying gave up.

    Raised after the bounded retries of a read, a write or a wait; the message
    names the store (URL masked), the operation and the last driver error.
    """


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


class ResultTooLargeError(ResultStoreError, ValueError):
    """A serialized result is larger than the store can hold in one item.

    Nothing is written when this is raised: the previous state stays.

    Attributes:
        store: The store's name, e.g. ``"memcached"``.
        task_id: The task (or group) whose result was refused.
        size: The serialized size in bytes.
        limit: The most bytes the store accepts.
    """

    def __init__(self, store: str, task_id: str, size: int, limit: int) -> None:
        self.store = store
        self.task_id = task_id
        self.size = size
        self.limit = limit
        super().__init__(
            f"result of {task_id} is {size} bytes serialized, more than the "
            f"{store} result store holds in one item ({limit} bytes); return a "
            "smaller value (a reference to the data, for example) or use a store "
            "without this limit",
        )

    def __reduce__(
        self,
    ) -> tuple[type[ResultTooLargeError], tuple[str, str, int, int]]:
        return (type(self), (self.store, self.task_id, self.size, self.limit))


class InvalidStateError(ResultStoreError, ValueError):
    """A task state that is not a non-empty string (``"SUCCESS"``, ``"PROGRESS"``)."""


class RemoteTaskError(ResultStoreError):
    """A task failed with an exception that the reader would not rebuild.

    Exceptions are rebuilt only when their class is a ``BaseException``
    subclass from a module on the store's allow-list (``exception_modules``);
    any other stored exception is reported as this wrapper, which keeps the
    original type, module, message and traceback text.

    Attributes:
        exc_type: The class name the task raised, e.g. ``"KeyError"``.
        exc_module: Its module, e.g. ``"myapp.errors"``.
        exc_message: The exception's arguments.
        traceback: The traceback text stored with the failure, if any.
        reason: Why the exception was not rebuilt.
    """

    def __init__(
        self,
        exc_type: str,
        exc_module: str,
        exc_message: tuple[object, ...] = (),
        traceback: str | None = None,
        reason: str = "",
    ) -> None:
        self.exc_type = exc_type
        self.exc_module = exc_module
        self.exc_message = tuple(exc_message)
        self.traceback = traceback
        self.reason = reason
        shown = ", ".join(repr(arg) for arg in self.exc_message)
        text = f"task raised {exc_module}.{exc_type}({shown})"
        if reason:
            text += f" [not rebuilt: {reason}]"
        super().__init__(text)

    def __reduce__(
        self,
    ) -> tuple[
        type[RemoteTaskError],
        tuple[str, str, tuple[object, ...], str | None, str],
    ]:
        return (
            type(self),
            (
                self.exc_type,
                self.exc_module,
                self.exc_message,
                self.traceback,
                self.reason,
            ),
        )
