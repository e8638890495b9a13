"""The interface every pool implements: :class:`Pool` (an Executor).

A pool runs callables concurrently and hands back :class:`PoolFuture` objects.
Beyond ``submit``, ``map`` and ``shutdown`` it offers what a task worker needs:
per-call time limits (:meth:`Pool.submit_call`), a batch path
(:meth:`Pool.submit_many`), termination of a running call
(:meth:`PoolFuture.terminate`), resizing (:meth:`Pool.grow`,
:meth:`Pool.shrink`) and :meth:`Pool.stats`.

Implementations subclass :class:`Pool` and register the class in the
``pools.implementations`` entry point group under their kind name.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .errors import PoolClosedError

__all__ = ["Pool", "PoolFuture", "PoolStats", "WorkerStats"]

_T = TypeVar("_T")

_OPTION_DEFAULTS: dict[str, Any] = {
    "max_tasks_per_child": None,
    "max_memory_per_child_kib": None,
    "initializer": None,
    "initargs": (),
    "finalizer": None,
    "finalargs": (),
    "after_fork": None,
}


class PoolFuture(Future[_T]):
    """A :class:`~concurrent.futures.Future` whose running call can be stopped.

    Pools create these; user code never needs to.
    """

    # Set by the pool that made the future: how to stop it, and its record of
    # the call. Class defaults keep creation as cheap as a plain Future's.
    _terminator: Callable[[PoolFuture[Any], int | None], bool] | None = None
    _token: Any = None

    def terminate(self, signal: int | None = None) -> bool:
        """Stop this call: cancel it if it has not started, otherwise stop it.

        A call that has not started is cancelled (the future raises
        :class:`~concurrent.futures.CancelledError`). A running call is stopped
        and the future fails with :class:`~pools.TerminatedError`: the prefork
        pool sends *signal* to the worker process (``SIGTERM`` when ``None``)
        and replaces it; the other pools raise ``TerminatedError`` inside the
        call and ignore *signal*.

        Args:
            signal: The signal for a prefork worker process, e.g.
                ``signal.SIGKILL`` when the call must not run any cleanup.

        Returns:
            ``True`` if the call was cancelled or a stop was started, ``False``
            if it had already finished (or, in the solo pool, always).

        Raises:
            ValueError: *signal* is not a signal number.
        """
        if signal is not None:
            import signal as signals

            try:
                signals.Signals(signal)
            except (ValueError, TypeError):
                raise ValueError(
                    f"{signal!r} is not a signal number; pass e.g. signal.SIGTERM",
                ) from None
        if self.done():
            return False
        if self.cancel():
            return True
        if self._terminator is None:
            return False
        return self._terminator(self, signal)


@dataclass(frozen=True)
class WorkerStats:
    """A snapshot of one worker of a pool.

    Attributes:
        name: The worker's name, e.g. ``"prefork-3"``.
        pid: The process running the worker (the pool's own process for
            threads, greenlets and asyncio).
        busy: Whether it is running a call.
        processed: Calls it has finished.
        rss_kib: Resident memory of its process in KiB, where the pool runs
            each worker in a process of its own and the platform tells it;
            otherwise ``None``.
    """

    name: str
    pid: int | None
    busy: bool
    processed: int
    rss_kib: int | None = None


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of a pool, as returned by :meth:`Pool.stats`.

    Attributes:
        kind: The pool kind, e.g. ``"prefork"``.
        size: How many workers the pool keeps (its target size).
        busy: Calls running now.
        queued: Calls submitted and not yet started.
        processed: Calls finished since the pool started, failures included.
        workers: One entry per live worker.
    """

    kind: str
    size: int
    busy: int
    queued: int
    processed: int
    workers: tuple[WorkerStats, ...]


def check_limit(name: str, value: object) -> float | None:
    """Return *value* as a positive number of seconds, or ``None``.

    Raises:
        TypeError: *value* is not a number.
        ValueError: *value* is not positive and finite.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a number of seconds or None, not {value!r}",
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"{name} must be a positive number of seconds or None, not {value!r}",
        )
    return float(value)


def check_count(name: str, value: object) -> int | None:
    """Return *value* as a positive ``int``, or ``None``.

    Raises:
        TypeError: *value* is not an integer.
        ValueError: *value* is not positive.
    """
    return None if value is None else _positive(name, value)


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


def _check_hook(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, not {value!r}")


def _limits_in_order(soft: float | None, hard: float | None) -> None:
    if soft is not None and hard is not None and soft > hard:
        raise ValueError(
            f"soft_time_limit ({soft:g} s) is longer than time_limit ({hard:g} s), "
            "so it could never fire; make it shorter",
        )


def _describe(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    module = getattr(fn, "__module__", None)
    if name is None:
        return repr(fn)
    return f"{module}.{name}()" if module else f"{name}()"


class Pool(Executor, ABC):
    """Runs callables concurrently, with time limits, termination and recycling.

    Every option is keyword-only; durations are seconds as ``float``.

    Args:
        size: How many calls run at once (workers). Each kind has its default.
        soft_time_limit: Seconds after which :class:`~pools.SoftTimeLimitExceeded`
            is raised inside a call, which may catch it to clean up.
        time_limit: Seconds after which a call is stopped and its future fails
            with :class:`~pools.TimeLimitExceeded`.
        max_tasks_per_child: Replace a worker after it ran this many calls.
        max_memory_per_child_kib: Replace a worker process after a call left
            its resident memory above this many KiB (process pools only).
        initializer: Called with *initargs* in each new worker before its first
            call.
        initargs: Arguments for *initializer*.
        finalizer: Called with *finalargs* in each worker when it stops
            gracefully (recycling, shrinking, shutdown).
        finalargs: Arguments for *finalizer*.
        after_fork: Called with no arguments in each new worker process right
            after the fork, before *initializer*: the place to drop connections
            inherited from the parent (process pools only).

    Raises:
        ValueError: An option is out of range, or not supported by this kind.
        TypeError: An option has the wrong type.
    """

    #: The name this pool is registered under.
    kind: ClassVar[str] = ""
    #: Options this kind cannot honour, with the reason shown in the error.
    unsupported_options: ClassVar[Mapping[str, str]] = {}
    #: The size used when ``size`` is not given.
    default_size: ClassVar[int] = 1

    def __init__(
        self,
        *,
        size: int | None = None,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child_kib: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        finalizer: Callable[..., object] | None = None,
        finalargs: Iterable[Any] = (),
        after_fork: Callable[[], object] | None = None,
    ) -> None:
        init_args, final_args = tuple(initargs), tuple(finalargs)
        given: dict[str, object] = {
            "max_tasks_per_child": max_tasks_per_child,
            "max_memory_per_child_kib": max_memory_per_child_kib,
            "initializer": initializer,
            "initargs": init_args,
            "finalizer": finalizer,
            "finalargs": final_args,
            "after_fork": after_fork,
        }
        for option, reason in self.unsupported_options.items():
            if given.get(option, _OPTION_DEFAULTS.get(option)) != _OPTION_DEFAULTS.get(
                option
            ):
                raise ValueError(
                    f"the {self.kind} pool does not support {option}: {reason}",
                )
        self._size: int = _positive("size", self.default_size if size is None else size)
        self.soft_time_limit = check_limit("soft_time_limit", soft_time_limit)
        self.time_limit = check_limit("time_limit", time_limit)
        _limits_in_order(self.soft_time_limit, self.time_limit)
        self.max_tasks_per_child = check_count(
            "max_tasks_per_child", max_tasks_per_child
        )
        self.max_memory_per_child_kib = check_count(
            "max_memory_per_child_kib", max_memory_per_child_kib
        )
        _check_hook("initializer", initializer)
        _check_hook("finalizer", finalizer)
        _check_hook("after_fork", after_fork)
        self.initializer = initializer
        self.initargs: tuple[Any, ...] = init_args
        self.finalizer = finalizer
        self.finalargs: tuple[Any, ...] = final_args
        self.after_fork = after_fork
        self._closed = False
        self._state_lock = threading.Lock()

    @property
    def size(self) -> int:
        """How many workers the pool keeps (after :meth:`grow` and :meth:`shrink`)."""
        return self._size

    def submit(
        self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any
    ) -> PoolFuture[_T]:
        """Schedule ``fn(*args, **kwargs)`` with the pool's default limits.

        Raises:
            PoolClosedError: The pool is shut down.
            TypeError: *fn* is not callable.
        """
        return self.submit_call(fn, args, kwargs)

    @abstractmethod
    def submit_call(
        self,
        fn: Callable[..., _T],
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
    ) -> PoolFuture[_T]:
        """Schedule ``fn(*args, **kwargs)`` with limits for this call.

        Args:
            fn: The callable.
            args: Positional arguments.
            kwargs: Keyword arguments.
            soft_time_limit: Overrides the pool's soft limit for this call.
            time_limit: Overrides the pool's hard limit for this call.

        Raises:
            PoolClosedError: The pool is shut down.
            TypeError: *fn* is not callable.
            ValueError: A limit is not a positive number.
        """

    def submit_many(
        self,
        fn: Callable[..., _T],
        argslist: Iterable[Iterable[Any]],
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
    ) -> list[PoolFuture[_T]]:
        """Schedule ``fn(*args)`` for every *args* of *argslist*: the batch path.

        Cheaper per call than :meth:`submit` in a loop where the pool can
        group calls (prefork sends them to workers in chunks); results are
        still delivered one future per call.

        Raises:
            PoolClosedError: The pool is shut down.
            TypeError: *fn* is not callable.
        """
        return [
            self.submit_call(
                fn, args, None, soft_time_limit=soft_time_limit, time_limit=time_limit
            )
            for args in argslist
        ]

    @abstractmethod
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work and release the workers.

        ``shutdown(wait=True)`` lets queued and running calls finish first.
        ``cancel_futures=True`` cancels the calls that have not started.
        ``shutdown(wait=False, cancel_futures=True)`` is a cold shutdown: it
        cancels what has not started, stops running calls now (their futures
        fail with :class:`~pools.TerminatedError`) and returns at once; the
        pool finishes cleaning up in the background. Calling it again is safe.
        """

    @abstractmethod
    def grow(self, n: int = 1) -> None:
        """Add *n* workers.

        Raises:
            PoolClosedError: The pool is shut down.
            ValueError: *n* is not a positive integer.
        """

    @abstractmethod
    def shrink(self, n: int = 1) -> None:
        """Remove *n* workers once they finish their current call.

        Raises:
            PoolClosedError: The pool is shut down.
            ValueError: *n* is not positive, or would leave no worker.
        """

    @abstractmethod
    def stats(self) -> PoolStats:
        """Return a snapshot of the pool: size, busy, processed and each worker."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} kind={self.kind!r} size={self._size} {state}>"

    # Helpers for implementations.

    def _check_call(
        self,
        fn: object,
        soft_time_limit: float | None,
        time_limit: float | None,
    ) -> tuple[float | None, float | None]:
        """Validate a call and return its effective (soft, hard) limits."""
        self._check_open(fn)
        if not callable(fn):
            raise TypeError(f"the pool runs callables; {fn!r} is not callable")
        soft = check_limit("soft_time_limit", soft_time_limit)
        hard = check_limit("time_limit", time_limit)
        soft = self.soft_time_limit if soft is None else soft
        hard = self.time_limit if hard is None else hard
        _limits_in_order(soft, hard)
        return soft, hard

    def _check_open(self, fn: object) -> None:
        if self._closed:
            raise PoolClosedError(
                f"cannot submit {_describe(fn)}: the {self.kind} pool is shut down; "
                "create a new pool",
            )

    def _resize_check(self, n: object, *, shrinking: bool) -> int:
        if self._closed:
            raise PoolClosedError(
                f"cannot resize the {self.kind} pool: it is shut down"
            )
        count = _positive("n", n)
        if shrinking and count >= self._size:
            raise ValueError(
                f"cannot shrink the {self.kind} pool by {count}: it has {self._size} "
                "worker(s) and must keep at least one; use shutdown() to stop it",
            )
        return count


def describe_callable(fn: object) -> str:
    """Return ``module.qualname()`` for *fn*, for messages."""
    return _describe(fn)
