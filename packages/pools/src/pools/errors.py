"""The exceptions pools raises, under one base class, :class:`PoolError`.

Every exception pickles with all its arguments: they cross from pool children
to the parent.
"""

from __future__ import annotations

from difflib import get_close_matches

__all__ = [
    "MissingDriverError",
    "PoolClosedError",
    "PoolError",
    "RemoteException",
    "SoftTimeLimitExceeded",
    "TimeLimitExceeded",
    "UnknownPoolError",
    "WorkerLostError",
]


class PoolError(Exception):
    """Base class for every error raised by pools."""


class UnknownPoolError(PoolError, ValueError):
    """No pool implementation is installed under this name.

    Attributes:
        name: The pool kind asked for.
        installed: The kinds that are installed.
    """

    def __init__(self, name: str, installed: tuple[str, ...] = ()) -> None:
        self.name = name
        self.installed = tuple(installed)
        message = f"unknown pool {name!r}"
        close = get_close_matches(name, self.installed, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        message += f" installed: {', '.join(sorted(self.installed)) or 'none'}"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[UnknownPoolError], tuple[str, tuple[str, ...]]]:
        return (type(self), (self.name, self.installed))


class MissingDriverError(PoolError, ImportError):
    """The pool exists, but the extra that provides it is missing.

    Attributes:
        pool: The pool kind, e.g. ``"gevent"``.
        extra: The extra to install, e.g. ``"gevent"`` for ``pools[gevent]``.
    """

    def __init__(self, pool: str, extra: str) -> None:
        self.pool = pool
        self.extra = extra
        super().__init__(
            f"the {pool} pool needs an optional dependency; install it with: "
            f"pip install 'pools[{extra}]'",
        )

    def __reduce__(self) -> tuple[type[MissingDriverError], tuple[str, str]]:
        return (type(self), (self.pool, self.extra))


class PoolClosedError(PoolError, RuntimeError):
    """Work was submitted to a pool that is shut down."""


class SoftTimeLimitExceeded(PoolError):  # noqa: N818 - a signal raised inside the callable, named as in Celery
    """Raised inside a running callable when its soft time limit passes.

    The callable may catch it to clean up; the hard limit still applies.
    """


class TimeLimitExceeded(PoolError):  # noqa: N818 - the name Celery users know
    """A call ran past its hard time limit and was stopped.

    Attributes:
        limit: The hard limit in seconds.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        super().__init__(f"hard time limit ({limit:g} s) exceeded")

    def __reduce__(self) -> tuple[type[TimeLimitExceeded], tuple[float]]:
        return (type(self), (self.limit,))


class WorkerLostError(PoolError):
    """The process running a call died before the call finished.

    Attributes:
        exitcode: The child's exit status, or ``None`` if a signal killed it.
        signal: The number of the signal that killed it, or ``None``.
    """

    def __init__(self, exitcode: int | None = None, signal: int | None = None) -> None:
        self.exitcode = exitcode
        self.signal = signal
        if signal is not None:
            import signal as signals  # only on this error path

            try:
                how = f"signal {signals.Signals(signal).name} ({signal})"
            except ValueError:
                how = f"signal {signal}"
        else:
            how = f"exit code {exitcode}"
        super().__init__(f"the worker process running this call died with {how}")

    def __reduce__(self) -> tuple[type[WorkerLostError], tuple[int | None, int | None]]:
        return (type(self), (self.exitcode, self.signal))


class RemoteException(PoolError):  # noqa: N818 - stands in for the callable's own exception
    """Stands in for an exception raised by a callable that could not be pickled.

    Attributes:
        type_name: Qualified name of the original exception's class.
        message: ``str()`` of the original exception.
        traceback: The formatted traceback from the process that raised it.
    """

    def __init__(self, type_name: str, message: str, traceback: str) -> None:
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        super().__init__(f"{type_name}: {message}")

    def __reduce__(self) -> tuple[type[RemoteException], tuple[str, str, str]]:
        return (type(self), (self.type_name, self.message, self.traceback))
