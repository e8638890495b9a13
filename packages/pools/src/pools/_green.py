"""What the gevent and eventlet pools share: one green thread per running call.

Both libraries run every green thread in one OS thread and switch only where a
green thread waits (on I/O, a lock, ``time.sleep`` once patched). The pool
keeps at most ``size`` calls running, each in a green thread of its own, and
queues the rest in submission order. Everything here runs in the hub's OS
thread, so it needs no locks; submit only from that thread.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import InvalidStateError
from functools import partial
from typing import Any, ClassVar, TypeVar

from .base import Pool, PoolFuture, PoolStats, WorkerStats
from .errors import SoftTimeLimitExceeded, TerminatedError, TimeLimitExceeded

__all__ = ["GreenDriver", "GreenPool"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class GreenDriver(ABC):
    """The few primitives a green pool needs from gevent or eventlet."""

    #: The pool kind and the extra that installs the library.
    name: str

    @abstractmethod
    def is_patched(self) -> bool:
        """Whether the standard library was monkey-patched (threading at least)."""

    @abstractmethod
    def spawn(self, fn: Callable[[], None]) -> Any:
        """Start a green thread running *fn*."""

    @abstractmethod
    def throw(self, green: Any, exc: BaseException) -> None:
        """Raise *exc* in *green* at its next switch, without blocking the caller."""

    @abstractmethod
    def later(self, seconds: float, fn: Callable[[], None]) -> Callable[[], None]:
        """Run *fn* in the hub after *seconds*; return a function that cancels it."""

    @abstractmethod
    def timeout(self, seconds: float, exc: BaseException) -> Callable[[], None]:
        """Raise *exc* in the current green thread after *seconds*; return a cancel."""

    @abstractmethod
    def event(self) -> Any:
        """Return an event with ``set()``, ``clear()`` and ``wait()``."""


class _Call:
    __slots__ = (
        "args",
        "cancels",
        "fn",
        "future",
        "green",
        "hard",
        "kwargs",
        "released",
        "soft",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        future: PoolFuture[Any],
        soft: float | None,
        hard: float | None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.future = future
        self.soft = soft
        self.hard = hard
        self.green: Any = None
        self.cancels: list[Callable[[], None]] = []
        self.released = False


def _settle(
    future: PoolFuture[Any], value: Any = None, exc: BaseException | None = None
) -> bool:
    try:
        if exc is None:
            future.set_result(value)
        else:
            future.set_exception(exc)
    except InvalidStateError:
        return False
    return True


class GreenPool(Pool):
    """Runs up to ``size`` calls at once, each in a green thread of its own."""

    default_size = 100
    unsupported_options: ClassVar[dict[str, str]] = {
        "max_tasks_per_child": "green threads are not reused; nothing to recycle",
        "max_memory_per_child_kib": "green threads share one process; use prefork",
        "after_fork": "green pools do not fork",
    }
    driver: GreenDriver

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not self.driver.is_patched():
            raise ValueError(
                f"the {self.kind} pool needs {self.driver.name}'s monkey-patching "
                f"before anything else is imported: call "
                f"pools.monkey_patch({self.kind!r}) first thing in the program",
            )
        self._waiting: deque[_Call] = deque()
        self._running: set[_Call] = set()
        self._processed = 0
        self._idle = self.driver.event()
        self._idle.set()
        if self.initializer is not None:
            self._hook("initializer", self.initializer, self.initargs)

    def _hook(
        self, name: str, fn: Callable[..., object] | None, args: tuple[Any, ...]
    ) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            logger.exception(
                "the %s of the %s pool failed; it goes on", name, self.kind
            )

    def submit_call(
        self,
        fn: Callable[..., _T],
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
    ) -> PoolFuture[_T]:
        """Schedule ``fn(*args, **kwargs)`` in a green thread of its own."""
        soft, hard = self._check_call(fn, soft_time_limit, time_limit)
        future: PoolFuture[_T] = PoolFuture()
        call = _Call(
            fn, tuple(args), dict(kwargs) if kwargs else None, future, soft, hard
        )
        future._token = call
        future._terminator = self._request_terminate
        self._waiting.append(call)
        self._idle.clear()
        self._launch()
        return future

    def _launch(self) -> None:
        waiting, running = self._waiting, self._running
        while waiting and len(running) < self._size:
            call = waiting.popleft()
            if not call.future.set_running_or_notify_cancel():
                continue
            running.add(call)
            call.green = self.driver.spawn(partial(self._execute, call))
            if call.hard is not None:
                call.cancels.append(
                    self.driver.later(call.hard, partial(self._on_hard, call))
                )
        if not waiting and not running:
            self._idle.set()

    def _execute(self, call: _Call) -> None:
        cancel_soft = None
        try:
            try:
                if call.soft is not None:
                    cancel_soft = self.driver.timeout(
                        call.soft, SoftTimeLimitExceeded()
                    )
                value = (
                    call.fn(*call.args, **call.kwargs)
                    if call.kwargs
                    else call.fn(*call.args)
                )
            finally:
                if cancel_soft is not None:
                    cancel_soft()
        except BaseException as exc:  # noqa: BLE001 - the exception is the call's outcome
            _settle(call.future, exc=exc)
        else:
            _settle(call.future, value)
        finally:
            self._release(call)

    def _release(self, call: _Call) -> None:
        if call.released:
            return
        call.released = True
        self._processed += 1
        self._running.discard(call)
        for cancel in call.cancels:
            cancel()
        self._launch()

    def _on_hard(self, call: _Call) -> None:
        self._stop(call, TimeLimitExceeded(call.hard))

    def _stop(self, call: _Call, outcome: BaseException) -> bool:
        if not _settle(call.future, exc=outcome):
            return False
        logger.warning("stopping a call on the %s pool: %s", self.kind, outcome)
        if call.green is not None:
            self.driver.throw(call.green, type(outcome)())
        self._release(call)
        return True

    def _request_terminate(self, future: PoolFuture[Any], signum: int | None) -> bool:
        return self._stop(future._token, TerminatedError())

    def grow(self, n: int = 1) -> None:
        """Allow *n* more calls at once; see :meth:`Pool.grow`."""
        self._size += self._resize_check(n, shrinking=False)
        self._launch()

    def shrink(self, n: int = 1) -> None:
        """Allow *n* fewer calls at once; running calls finish."""
        self._size -= self._resize_check(n, shrinking=True)

    def stats(self) -> PoolStats:
        """Return the pool's size, running and queued calls."""
        pid = os.getpid()
        workers = tuple(
            WorkerStats(name=f"{self.kind}-{index}", pid=pid, busy=True, processed=0)
            for index, _call in enumerate(list(self._running), 1)
        )
        return PoolStats(
            kind=self.kind,
            size=self._size,
            busy=len(self._running),
            queued=len(self._waiting),
            processed=self._processed,
            workers=workers,
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool; see :meth:`Pool.shutdown`."""
        first = not self._closed
        self._closed = True
        if cancel_futures:
            while self._waiting:
                self._waiting.popleft().future.cancel()
        if not wait and cancel_futures:
            for call in list(self._running):
                self._stop(call, TerminatedError())
        self._launch()
        if wait:
            self._idle.wait()
        if first:
            self._hook("finalizer", self.finalizer, self.finalargs)
