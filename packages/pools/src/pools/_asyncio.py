"""The ``asyncio`` pool: ``async def`` callables run on one persistent event loop.

Kind: ``asyncio`` (``pools.AsyncioPool``); needs nothing extra.

Options: every option of :class:`pools.Pool` except ``max_memory_per_child_kib``
and ``after_fork``. ``size`` bounds both the coroutines running at once and the
threads of the executor beside the loop (default 100 coroutines; threads start
on demand). The initializer runs in the loop's thread before any call and in
each executor thread; the finalizer likewise at shutdown.

Any callable works: coroutine functions run on the loop (thread
``pools-asyncio-loop``); plain callables run on a bounded
:class:`~pools.ThreadsPool` beside it, with that pool's limits and caveats.

Capabilities and limits for coroutines:

* soft limit: the task is cancelled, so the coroutine sees
  :class:`asyncio.CancelledError` (with the message "soft time limit ...
  exceeded") at its current ``await`` and may clean up; if it lets the
  cancellation through, the future fails with ``SoftTimeLimitExceeded``; if it
  returns a value, that is the result;
* hard limit: the future fails with ``TimeLimitExceeded`` at the limit (from a
  timer thread, so even while a coroutine blocks the loop), the task is
  cancelled and its slot freed for the next call. A coroutine that swallows
  cancellation goes on running on the loop: asyncio cannot stop it;
* terminate: the same with ``TerminatedError``; the signal is ignored;
* a coroutine that blocks the loop (CPU work, ``time.sleep``) delays every other
  coroutine and every soft limit until it yields.

Done-callbacks of coroutine calls run in the loop thread (in the timer thread
when a hard limit fails them); those of plain callables as in the threads pool.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import CancelledError, InvalidStateError
from functools import partial
from typing import Any, ClassVar, TypeVar

from ._threads import ThreadsPool
from ._timers import Deadline, TimerThread
from .base import Pool, PoolFuture, PoolStats, WorkerStats
from .errors import SoftTimeLimitExceeded, TerminatedError, TimeLimitExceeded

__all__ = ["AsyncioPool"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_live_pools: weakref.WeakSet[AsyncioPool] = weakref.WeakSet()


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


def is_async_callable(fn: object) -> bool:
    """Whether calling *fn* returns a coroutine (``async def``, partials, objects)."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an async __call__, not callable()
    return call is not None and inspect.iscoroutinefunction(call)


class _Call:
    __slots__ = (
        "args",
        "fn",
        "future",
        "hard",
        "hard_timer",
        "kwargs",
        "released",
        "soft",
        "soft_fired",
        "soft_handle",
        "task",
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
        self.task: asyncio.Task[Any] | None = None
        self.soft_fired = False
        self.soft_handle: asyncio.TimerHandle | None = None
        self.hard_timer: Deadline | None = None
        self.released = False


class AsyncioPool(Pool):
    """Runs coroutine functions on its own event loop, other callables in threads."""

    kind = "asyncio"
    default_size = 100
    unsupported_options: ClassVar[dict[str, str]] = {
        "max_memory_per_child_kib": "the asyncio pool runs in one process; use prefork",
        "after_fork": "the asyncio pool does not fork",
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._options = options
        self._threads: ThreadsPool | None = None
        self._waiting: deque[_Call] = deque()
        self._running: set[_Call] = set()
        self._processed = 0
        self._timers = TimerThread("pools-asyncio-timer")
        self._outstanding = 0  # submitted coroutine calls not yet released
        self._idle = threading.Event()
        self._idle.set()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run_loop, args=(ready,), name="pools-asyncio-loop", daemon=True
        )
        self._thread.start()
        ready.wait()
        _live_pools.add(self)

    def _run_loop(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._hook("initializer", self.initializer, self.initargs)
        ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._hook("finalizer", self.finalizer, self.finalargs)
            with contextlib.suppress(RuntimeError):
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _hook(
        self, name: str, fn: Callable[..., object] | None, args: tuple[Any, ...]
    ) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            logger.exception(
                "the %s of the asyncio pool's loop failed; it goes on", name
            )

    def _thread_pool(self) -> ThreadsPool:
        with self._state_lock:
            if self._threads is None:
                self._threads = ThreadsPool(
                    size=self._size,
                    soft_time_limit=self.soft_time_limit,
                    time_limit=self.time_limit,
                    max_tasks_per_child=self.max_tasks_per_child,
                    initializer=self.initializer,
                    initargs=self.initargs,
                    finalizer=self.finalizer,
                    finalargs=self.finalargs,
                    thread_name_prefix="pools-asyncio-thread",
                )
            return self._threads

    # Submitting.

    def submit_call(
        self,
        fn: Callable[..., _T],
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
    ) -> PoolFuture[_T]:
        """Schedule a call: on the loop for coroutine functions, else in a thread."""
        soft, hard = self._check_call(fn, soft_time_limit, time_limit)
        if not is_async_callable(fn):
            return self._thread_pool().submit_call(
                fn, args, kwargs, soft_time_limit=soft, time_limit=hard
            )
        future: PoolFuture[_T] = PoolFuture()
        call = _Call(
            fn, tuple(args), dict(kwargs) if kwargs else None, future, soft, hard
        )
        future._token = call
        future._terminator = self._request_terminate
        with self._state_lock:
            self._check_open(fn)
            self._outstanding += 1
            self._idle.clear()
            self._loop.call_soon_threadsafe(self._enqueue, call)
        return future

    def submit_many(
        self,
        fn: Callable[..., _T],
        argslist: Iterable[Iterable[Any]],
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
    ) -> list[PoolFuture[_T]]:
        """Schedule ``fn(*args)`` for each *args*, waking the loop once."""
        soft, hard = self._check_call(fn, soft_time_limit, time_limit)
        if not is_async_callable(fn):
            return self._thread_pool().submit_many(
                fn, argslist, soft_time_limit=soft, time_limit=hard
            )
        calls = []
        futures: list[PoolFuture[_T]] = []
        for args in argslist:
            future: PoolFuture[_T] = PoolFuture()
            call = _Call(fn, tuple(args), None, future, soft, hard)
            future._token = call
            future._terminator = self._request_terminate
            calls.append(call)
            futures.append(future)
        if calls:
            with self._state_lock:
                self._check_open(fn)
                self._outstanding += len(calls)
                self._idle.clear()
                self._loop.call_soon_threadsafe(self._enqueue_many, calls)
        return futures

    # On the loop.

    def _enqueue(self, call: _Call) -> None:
        self._waiting.append(call)
        self._launch()

    def _enqueue_many(self, calls: list[_Call]) -> None:
        self._waiting.extend(calls)
        self._launch()

    def _launch(self) -> None:
        waiting, running = self._waiting, self._running
        while waiting and len(running) < self._size:
            call = waiting.popleft()
            if not call.future.set_running_or_notify_cancel():
                self._done_one()
                continue
            running.add(call)
            call.task = self._loop.create_task(self._execute(call))
            if call.soft is not None:
                call.soft_handle = self._loop.call_later(call.soft, self._on_soft, call)
            if call.hard is not None:
                call.hard_timer = self._timers.schedule(
                    call.hard, partial(self._on_hard, call)
                )

    def _done_one(self) -> None:
        with self._state_lock:
            self._outstanding -= 1
            if self._outstanding == 0:
                self._idle.set()

    async def _execute(self, call: _Call) -> None:
        try:
            coroutine = (
                call.fn(*call.args, **call.kwargs)
                if call.kwargs
                else call.fn(*call.args)
            )
            value = await coroutine
        except asyncio.CancelledError as exc:
            task = call.task
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
            if call.soft_fired:
                error = SoftTimeLimitExceeded(str(exc) or "soft time limit exceeded")
                error.__cause__ = exc
                _settle(call.future, exc=error)
            else:
                _settle(call.future, exc=CancelledError())
        except BaseException as exc:  # noqa: BLE001 - the exception is the call's outcome
            _settle(call.future, exc=exc)
        else:
            _settle(call.future, value)
        finally:
            self._release(call)

    def _on_hard(self, call: _Call) -> None:
        self._stop(call, TimeLimitExceeded(call.hard))

    def _on_soft(self, call: _Call) -> None:
        task = call.task
        if task is not None and not task.done() and not call.future.done():
            call.soft_fired = True
            task.cancel(msg=f"soft time limit ({call.soft:g} s) exceeded")

    def _release(self, call: _Call) -> None:
        if call.released:
            return
        call.released = True
        self._processed += 1
        self._running.discard(call)
        if call.soft_handle is not None:
            call.soft_handle.cancel()
        if call.hard_timer is not None:
            call.hard_timer.cancel()
        self._done_one()
        self._launch()

    def _cancel_task(self, call: _Call) -> None:
        if call.task is not None and not call.task.done():
            call.task.cancel()
        self._release(call)

    # From any thread.

    def _stop(self, call: _Call, outcome: BaseException) -> bool:
        if not _settle(call.future, exc=outcome):
            return False
        logger.warning("stopping a coroutine call on the asyncio pool: %s", outcome)
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._cancel_task, call)
        return True

    def _request_terminate(self, future: PoolFuture[Any], signum: int | None) -> bool:
        return self._stop(future._token, TerminatedError())

    def grow(self, n: int = 1) -> None:
        """Allow *n* more coroutines (and threads) at once; see :meth:`Pool.grow`."""
        count = self._resize_check(n, shrinking=False)
        with self._state_lock:
            self._size += count
        self._loop.call_soon_threadsafe(self._launch)
        if self._threads is not None:
            self._threads.grow(count)

    def shrink(self, n: int = 1) -> None:
        """Allow *n* fewer coroutines (and threads) at once; see :meth:`Pool.shrink`."""
        with self._state_lock:
            count = self._resize_check(n, shrinking=True)
            self._size -= count
        if self._threads is not None:
            self._threads.shrink(count)

    def stats(self) -> PoolStats:
        """Return the loop's and the executor threads' activity together."""
        running = len(self._running)
        loop_worker = WorkerStats(
            name="pools-asyncio-loop",
            pid=os.getpid(),
            busy=running > 0,
            processed=self._processed,
        )
        threads = self._threads.stats() if self._threads is not None else None
        return PoolStats(
            kind=self.kind,
            size=self._size,
            busy=running + (threads.busy if threads else 0),
            queued=len(self._waiting) + (threads.queued if threads else 0),
            processed=self._processed + (threads.processed if threads else 0),
            workers=(loop_worker, *(threads.workers if threads else ())),
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool; see :meth:`Pool.shutdown`."""
        with self._state_lock:
            first = not self._closed
            self._closed = True
        if self._threads is not None:
            self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)
        if first and self._loop.is_running():
            cold = not wait and cancel_futures

            def begin() -> None:
                if cancel_futures:
                    while self._waiting:
                        self._waiting.popleft().future.cancel()
                        self._done_one()
                if cold:
                    for call in list(self._running):
                        self._stop(call, TerminatedError())
                self._launch()

            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(begin)
        if wait:
            if threading.current_thread() is self._thread:
                return
            self._idle.wait()
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._timers.stop()
        elif first:
            threading.Thread(
                target=self._stop_when_idle, name="pools-asyncio-shutdown", daemon=True
            ).start()

    def _stop_when_idle(self) -> None:
        self._idle.wait()
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._timers.stop()


@atexit.register
def _shutdown_live_pools() -> None:
    for pool in list(_live_pools):
        pool.shutdown(wait=True)
