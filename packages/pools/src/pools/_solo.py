"""The ``solo`` pool: each call runs in the calling thread, inside ``submit()``.

Kind: ``solo`` (``pools.SoloPool``); needs nothing extra.

Options: ``soft_time_limit``, ``time_limit``, ``initializer``/``initargs``
(run once, when the pool is created) and ``finalizer``/``finalargs`` (run
once, at shutdown). ``size`` is always 1. Recycling and ``after_fork`` do not
apply: there is no worker besides the caller.

Capabilities and limits:

* soft limit: in the main thread, ``SIGALRM`` raises ``SoftTimeLimitExceeded``
  inside the call, interrupting ``time.sleep`` too (the pool borrows the
  ``SIGALRM`` handler and timer for the duration of the call). In other
  threads it is an asynchronous exception, which a blocking sleep or C call
  only sees once it returns;
* hard limit: raised the same way as ``TimeLimitExceeded`` at the limit; a
  call that swallows it or sits in C code cannot be stopped, and its future
  fails with ``TimeLimitExceeded`` when it returns after the limit;
* terminate: impossible: the call has finished when ``submit()`` returns the
  future, so ``terminate()`` returns ``False``.

Done-callbacks run in the calling thread, before ``submit()`` returns.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import _base as futures_base
from types import FrameType
from typing import Any, ClassVar, TypeVar

from ._timers import TimerThread, clear_async_exception, raise_in_thread
from .base import Pool, PoolFuture, PoolStats, WorkerStats
from .errors import PoolError, SoftTimeLimitExceeded, TimeLimitExceeded

__all__ = ["SoloPool"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class SoloPool(Pool):
    """Runs each call at once in the thread that submits it.

    Raises:
        ValueError: ``size`` is not 1, or an option that needs workers is set.
    """

    kind = "solo"
    default_size = 1
    unsupported_options: ClassVar[dict[str, str]] = {
        "max_tasks_per_child": "calls run in the calling thread; no worker to replace",
        "max_memory_per_child_kib": "calls run in the calling process; use prefork",
        "after_fork": "the solo pool does not fork",
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self._size != 1:
            raise ValueError(
                f"the solo pool runs one call at a time in the calling thread; "
                f"size must be 1, not {self._size}",
            )
        self._busy = 0
        self._processed = 0
        self._timers: TimerThread | None = None
        self._phase = ""
        self._remaining_hard: float | None = None
        if self.initializer is not None:
            try:
                self.initializer(*self.initargs)
            except Exception:
                logger.exception(
                    "the initializer of the solo pool failed; the pool goes on"
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
        """Run ``fn(*args, **kwargs)`` now and return its finished future."""
        soft, hard = self._check_call(fn, soft_time_limit, time_limit)
        self._busy += 1
        started = time.monotonic()
        try:
            if soft is None and hard is None:
                outcome = _call(fn, tuple(args), kwargs)
            elif threading.current_thread() is threading.main_thread():
                outcome = self._call_with_alarm(fn, tuple(args), kwargs, soft, hard)
            else:
                outcome = self._call_with_timer(fn, tuple(args), kwargs, soft, hard)
        finally:
            self._busy -= 1
            self._processed += 1
        ok, value = outcome
        if hard is not None and time.monotonic() - started >= hard:
            ok, value = False, TimeLimitExceeded(hard)
        return _finished(ok, value)

    def _call_with_alarm(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        soft: float | None,
        hard: float | None,
    ) -> tuple[bool, Any]:
        previous = signal.signal(signal.SIGALRM, self._on_alarm)
        if soft is not None:
            self._phase = "soft"
            self._remaining_hard = None if hard is None else hard - soft
            signal.setitimer(signal.ITIMER_REAL, soft)
        else:
            self._phase = "hard"
            signal.setitimer(signal.ITIMER_REAL, hard or 0)
        try:
            try:
                return _call(fn, args, kwargs)
            finally:
                self._phase = ""
                signal.setitimer(signal.ITIMER_REAL, 0)
        except (SoftTimeLimitExceeded, TimeLimitExceeded) as late:
            return False, late
        finally:
            signal.signal(signal.SIGALRM, previous)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._phase == "soft":
            remaining = self._remaining_hard
            if remaining is not None:
                self._phase = "hard"
                # Never 0: that would disarm the timer.
                signal.setitimer(signal.ITIMER_REAL, max(remaining, 1e-6))
            else:
                self._phase = ""
            raise SoftTimeLimitExceeded()
        if self._phase == "hard":
            self._phase = ""
            raise TimeLimitExceeded()

    def _call_with_timer(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        soft: float | None,
        hard: float | None,
    ) -> tuple[bool, Any]:
        if self._timers is None:
            self._timers = TimerThread("pools-solo-timer")
        ident = threading.get_ident()
        lock = threading.Lock()
        state = {"running": True}

        def deliver(exc_type: type[BaseException]) -> None:
            with lock:
                if state["running"]:
                    raise_in_thread(ident, exc_type)

        deadlines = []
        if soft is not None:
            deadlines.append(
                self._timers.schedule(soft, lambda: deliver(SoftTimeLimitExceeded))
            )
        if hard is not None:
            deadlines.append(
                self._timers.schedule(hard, lambda: deliver(TimeLimitExceeded))
            )
        outcome: tuple[bool, Any]
        try:
            outcome = _call(fn, args, kwargs)
        except (SoftTimeLimitExceeded, TimeLimitExceeded) as late:
            outcome = (False, late)
        while True:
            try:
                with lock:
                    state["running"] = False
                    clear_async_exception(ident)
                break
            except (SoftTimeLimitExceeded, TimeLimitExceeded):
                continue
        for deadline in deadlines:
            deadline.cancel()
        return outcome

    def grow(self, n: int = 1) -> None:
        """Always raises: the solo pool has exactly one worker, the caller.

        Raises:
            PoolError: Always.
        """
        raise PoolError(
            "the solo pool cannot grow: it runs calls in the calling thread"
        )

    def shrink(self, n: int = 1) -> None:
        """Always raises: the solo pool has exactly one worker, the caller.

        Raises:
            PoolError: Always.
        """
        raise PoolError(
            "the solo pool cannot shrink: it runs calls in the calling thread"
        )

    def stats(self) -> PoolStats:
        """Return the pool's snapshot: one worker, the calling thread."""
        import os

        busy = self._busy > 0
        return PoolStats(
            kind=self.kind,
            size=1,
            busy=int(busy),
            queued=0,
            processed=self._processed,
            workers=(
                WorkerStats(
                    name="solo", pid=os.getpid(), busy=busy, processed=self._processed
                ),
            ),
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Run the finalizer once and refuse further calls."""
        if self._closed:
            return
        self._closed = True
        if self._timers is not None:
            self._timers.stop()
        if self.finalizer is not None:
            try:
                self.finalizer(*self.finalargs)
            except Exception:
                logger.exception("the finalizer of the solo pool failed")


#: Held by every future :func:`_finished` makes: they are done when made, so no
#: one ever waits on it, and a future need not build a Condition of its own
#: (a lock and a Condition object per call: 6 % of a solo worker's time).
_DONE_CONDITION = threading.Condition()
#: The attributes of CPython's ``Future``; on an interpreter whose futures
#: differ, :func:`_finished` takes the public way.
_FUTURE_FIELDS = frozenset(
    ("_condition", "_done_callbacks", "_exception", "_result", "_state", "_waiters")
)
_LEAN = set(vars(Future())) == _FUTURE_FIELDS and hasattr(futures_base, "FINISHED")


def _finished(ok: bool, value: Any) -> PoolFuture[Any]:
    """A finished future of *value* (the result when *ok*, else the exception)."""
    future: PoolFuture[Any]
    if not _LEAN:
        future = PoolFuture()
        future.set_running_or_notify_cancel()
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
        return future
    future = PoolFuture.__new__(PoolFuture)
    fields = vars(future)
    fields["_condition"] = _DONE_CONDITION
    fields["_state"] = futures_base.FINISHED
    fields["_result"] = value if ok else None
    fields["_exception"] = None if ok else value
    fields["_waiters"] = []
    fields["_done_callbacks"] = []
    return future


def _call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any] | None
) -> tuple[bool, Any]:
    try:
        return True, fn(*args, **kwargs) if kwargs else fn(*args)
    except BaseException as exc:  # noqa: BLE001 - the exception is the call's outcome
        return False, exc
