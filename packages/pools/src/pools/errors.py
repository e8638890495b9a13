"""The exceptions pools raises, under one base class, :class:`PoolError`.

Every exception pickles with all its arguments: they cross from pool children
to the parent.
"""

from __future__ import annotations

from difflib import get_close_matches

__all__ = [
    "MissingDriverError",
    "PoolBrokenError",
    "PoolClosedError",
    "PoolConflictError",
    "PoolError",
    "RemoteException",
    "RemoteTraceback",
    "SoftTimeLimitExceeded",
    "TerminatedError",
    "TimeLimitExceeded",
    "UnknownPoolError",
    "UnpicklableCallError",
    "UnpicklableResultError",
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


class PoolConflictError(PoolError):
    """Two installed distributions register the same pool kind differently.

    Attributes:
        name: The pool kind.
        claimants: ``"distribution: module:Class"`` for each registration.
    """

    def __init__(self, name: str, claimants: tuple[str, ...]) -> None:
        self.name = name
        self.claimants = tuple(claimants)
        super().__init__(
            f"pool kind {name!r} is registered by more than one distribution: "
            f"{'; '.join(self.claimants)}; uninstall one of them",
        )

    def __reduce__(self) -> tuple[type[PoolConflictError], tuple[str, tuple[str, ...]]]:
        return (type(self), (self.name, self.claimants))


class PoolClosedError(PoolError, RuntimeError):
    """Work was submitted to a pool that is shut down."""


class PoolBrokenError(PoolError, RuntimeError):
    """The pool lost a part it cannot replace (its fork server) and stopped.

    Every call that had not finished fails with this error; create a new pool.
    """


class SoftTimeLimitExceeded(PoolError):  # noqa: N818 - a signal raised inside the callable, named as in Celery
    """Raised inside a running callable when its soft time limit passes.

    The callable may catch it to clean up; the hard limit still applies.
    """


class TimeLimitExceeded(PoolError):  # noqa: N818 - the name Celery users know
    """A call ran past its hard time limit and was stopped.

    Pools that cannot stop a call from outside (threads, gevent, eventlet,
    asyncio, solo) also raise it inside the call, where it arrives without a
    limit.

    Attributes:
        limit: The hard limit in seconds, or ``None`` when raised inside a call.
    """

    def __init__(self, limit: float | None = None) -> None:
        self.limit = limit
        if limit is None:
            super().__init__("hard time limit exceeded")
        else:
            super().__init__(f"hard time limit ({limit:g} s) exceeded")

    def __reduce__(self) -> tuple[type[TimeLimitExceeded], tuple[float | None]]:
        return (type(self), (self.limit,))


class TerminatedError(PoolError):
    """The call was stopped on request with :meth:`PoolFuture.terminate`.

    Attributes:
        signal: The signal sent to the worker process (prefork), or ``None``
            when the pool stopped the call by raising this error inside it.
    """

    def __init__(self, signal: int | None = None) -> None:
        self.signal = signal
        if signal is None:
            super().__init__("the call was terminated")
        else:
            super().__init__(f"the call was terminated with {_signal_name(signal)}")

    def __reduce__(self) -> tuple[type[TerminatedError], tuple[int | None]]:
        return (type(self), (self.signal,))


class UnpicklableCallError(PoolError, TypeError):
    """The callable or its arguments cannot be pickled to send to a worker process.

    Attributes:
        function: The callable's qualified name.
        reason: Why pickling failed.
    """

    def __init__(self, function: str, reason: str) -> None:
        self.function = function
        self.reason = reason
        super().__init__(
            f"cannot send the call to {function} to a worker process: {reason}; "
            "pass a module-level function and picklable arguments, or use the "
            "'threads' pool",
        )

    def __reduce__(self) -> tuple[type[UnpicklableCallError], tuple[str, str]]:
        return (type(self), (self.function, self.reason))


class UnpicklableResultError(PoolError, TypeError):
    """A call finished, but its return value could not be pickled back.

    Only the future of that call fails; the worker keeps going.

    Attributes:
        type_name: Qualified name of the result's type.
        reason: Why pickling (or unpickling in the parent) failed.
    """

    def __init__(self, type_name: str, reason: str) -> None:
        self.type_name = type_name
        self.reason = reason
        super().__init__(
            f"the call returned a {type_name} that cannot be sent back from the "
            f"worker process: {reason}; return plain data instead",
        )

    def __reduce__(self) -> tuple[type[UnpicklableResultError], tuple[str, str]]:
        return (type(self), (self.type_name, self.reason))


class WorkerLostError(PoolError):
    """The process running a call died before the call finished.

    Attributes:
        exitcode: The child's exit status, or ``None`` if a signal killed it.
        signal: The number of the signal that killed it, or ``None``.
    """

    def __init__(self, exitcode: int | None = None, signal: int | None = None) -> None:
        self.exitcode = exitcode
        self.signal = signal
        how = _signal_name(signal) if signal is not None else f"exit code {exitcode}"
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


class RemoteTraceback(PoolError):  # noqa: N818 - a carrier of text, never raised
    """Carries the traceback text of an exception raised in a worker process.

    Set as ``__cause__`` of the exception a prefork future raises, so that the
    printed traceback shows where the call failed in the child.

    Attributes:
        traceback: The formatted traceback from the worker process.
    """

    def __init__(self, traceback: str) -> None:
        self.traceback = traceback
        super().__init__(traceback)

    def __str__(self) -> str:
        return f'\n"""\n{self.traceback}"""'

    def __reduce__(self) -> tuple[type[RemoteTraceback], tuple[str]]:
        return (type(self), (self.traceback,))


def _signal_name(number: int) -> str:
    import signal as signals  # only on error paths

    try:
        return f"signal {signals.Signals(number).name} ({number})"
    except ValueError:
        return f"signal {number}"
