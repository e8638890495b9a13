"""The ``threads`` pool: calls run in threads of the calling process.

Kind: ``threads`` (``pools.ThreadsPool``); needs nothing extra.

Options: every option of :class:`pools.Pool` except ``max_memory_per_child_kib``
and ``after_fork`` (threads share one process and are not forked). Default
size: ``min(32, CPUs + 4)``, as :class:`~concurrent.futures.ThreadPoolExecutor`.
Threads start on demand, up to the size.

Capabilities and limits:

* soft limit: ``SoftTimeLimitExceeded`` is raised inside the call as an
  asynchronous exception. It arrives at the next Python bytecode, so a CPU loop
  in Python sees it at once but ``time.sleep`` or a blocking C call sees it only
  when that call returns;
* hard limit: a thread cannot be stopped from outside. At the limit the future
  fails with ``TimeLimitExceeded``, the same exception is raised inside the call
  (same caveat), and a new thread takes the worker's place; the old thread
  exits whenever its call returns;
* terminate: the same as the hard limit with ``TerminatedError``; the signal
  argument is ignored;
* recycling: ``max_tasks_per_child`` replaces a thread (finalizer, then a new
  thread with the initializer);
* fair dispatch: idle threads take calls from one shared queue.

Done-callbacks run in the worker thread that ran the call; when a limit or
``terminate()`` fails a future, in the pool's timer thread or in the thread
that called ``terminate()``.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import InvalidStateError
from functools import partial
from typing import Any, ClassVar, TypeVar

from ._timers import Deadline, TimerThread, clear_async_exception, raise_in_thread
from .base import Pool, PoolFuture, PoolStats, WorkerStats
from .errors import SoftTimeLimitExceeded, TerminatedError, TimeLimitExceeded

__all__ = ["ThreadsPool"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_INJECTED = (SoftTimeLimitExceeded, TimeLimitExceeded, TerminatedError)
_live_pools: weakref.WeakSet[ThreadsPool] = weakref.WeakSet()


class _Call:
    __slots__ = ("args", "fn", "future", "hard", "kwargs", "soft", "timers", "worker")

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
        self.worker: _Worker | None = None
        self.timers: list[Deadline] = []


class _Worker:
    __slots__ = (
        "abandoned",
        "call",
        "ident",
        "index",
        "lock",
        "processed",
        "retired",
        "thread",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.ident = 0
        self.call: _Call | None = None
        self.processed = 0
        self.abandoned = False
        self.retired = False
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None


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


def _abandoned(w: _Worker) -> bool:
    return w.abandoned


class ThreadsPool(Pool):
    """Runs calls in a bounded set of threads; see the module docstring for limits.

    Args:
        thread_name_prefix: Prefix of the worker threads' names.
        **options: The options of :class:`pools.Pool`.
    """

    kind = "threads"
    default_size = min(32, (os.cpu_count() or 1) + 4)
    unsupported_options: ClassVar[dict[str, str]] = {
        "max_memory_per_child_kib": "threads share one process; use the prefork pool",
        "after_fork": "threads are not forked; use initializer",
    }

    def __init__(
        self, *, thread_name_prefix: str = "pools-threads", **options: Any
    ) -> None:
        super().__init__(**options)
        self._prefix = thread_name_prefix
        self._queue: deque[_Call] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._workers: list[_Worker] = []
        self._idle = 0
        self._retire = 0
        self._processed = 0
        self._indexes = itertools.count(1)
        self._timers = TimerThread(f"{thread_name_prefix}-timer")
        self._all_threads: list[threading.Thread] = []
        _live_pools.add(self)

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
        """Schedule ``fn(*args, **kwargs)`` in a worker thread."""
        soft, hard = self._check_call(fn, soft_time_limit, time_limit)
        future: PoolFuture[_T] = PoolFuture()
        call = _Call(
            fn, tuple(args), dict(kwargs) if kwargs else None, future, soft, hard
        )
        future._token = call
        future._terminator = self._request_terminate
        with self._cond:
            self._check_open(fn)
            self._queue.append(call)
            self._start_if_needed()
            self._cond.notify()
        return future

    def submit_many(
        self,
        fn: Callable[..., _T],
        argslist: Iterable[Iterable[Any]],
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
    ) -> list[PoolFuture[_T]]:
        """Schedule ``fn(*args)`` for each *args* under one lock acquisition."""
        soft, hard = self._check_call(fn, soft_time_limit, time_limit)
        calls = []
        futures: list[PoolFuture[_T]] = []
        for args in argslist:
            future: PoolFuture[_T] = PoolFuture()
            call = _Call(fn, tuple(args), None, future, soft, hard)
            future._token = call
            future._terminator = self._request_terminate
            calls.append(call)
            futures.append(future)
        with self._cond:
            self._check_open(fn)
            self._queue.extend(calls)
            for _ in range(min(len(calls), self._size)):
                self._start_if_needed()
            self._cond.notify(len(calls))
        return futures

    def _start_if_needed(self) -> None:
        """Start a thread when no thread is idle and the pool is below its size."""
        active = sum(1 for w in self._workers if not w.retired)
        if self._idle >= len(self._queue) or active - self._retire >= self._size:
            return
        self._start_worker()

    def _start_worker(self) -> None:
        worker = _Worker(next(self._indexes))
        thread = threading.Thread(
            target=self._work,
            args=(worker,),
            name=f"{self._prefix}-{worker.index}",
            daemon=True,
        )
        worker.thread = thread
        self._workers.append(worker)
        self._all_threads.append(thread)
        self._idle += 1  # counted idle until it takes its first call
        thread.start()

    # The worker threads.

    def _hook(
        self, name: str, fn: Callable[..., object] | None, args: tuple[Any, ...]
    ) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            logger.exception(
                "the %s of %s failed; the worker goes on",
                name,
                threading.current_thread().name,
            )

    def _work(self, w: _Worker) -> None:
        w.ident = threading.get_ident()
        self._hook("initializer", self.initializer, self.initargs)
        cond, queue = self._cond, self._queue
        limit = self.max_tasks_per_child
        while True:
            with cond:
                call = None
                while True:
                    if w.abandoned:
                        return
                    if self._retire > 0:
                        self._retire -= 1
                        break
                    if queue:
                        call = queue.popleft()
                        self._idle -= 1
                        break
                    if self._closed:
                        break
                    cond.wait()
                if call is None:
                    self._idle -= 1
                    w.retired = True
            if call is None:
                break
            if call.future.set_running_or_notify_cancel():
                self._run(w, call)
            with cond:
                self._processed += 1
                if _abandoned(w):  # a limit or terminate() replaced this thread
                    return
                w.processed += 1
                if limit is not None and w.processed >= limit:
                    w.retired = True
                    # Threads start on demand: replace this one only if work waits.
                    if queue:
                        self._start_if_needed()
                    break
                self._idle += 1
        self._hook("finalizer", self.finalizer, self.finalargs)
        with cond:
            if w in self._workers:
                self._workers.remove(w)
            cond.notify_all()

    def _run(self, w: _Worker, call: _Call) -> None:
        exc: BaseException | None = None
        value: Any = None
        try:
            with w.lock:
                w.call = call
                call.worker = w
            if call.soft is not None:
                call.timers.append(
                    self._timers.schedule(call.soft, partial(self._on_soft, w, call))
                )
            if call.hard is not None:
                call.timers.append(
                    self._timers.schedule(call.hard, partial(self._on_hard, w, call))
                )
            try:
                value = (
                    call.fn(*call.args, **call.kwargs)
                    if call.kwargs
                    else call.fn(*call.args)
                )
            except BaseException as error:  # noqa: BLE001 - the exception is the call's outcome
                exc = error
        except _INJECTED as late:
            # Raised just before or after the callable, while the call was current.
            exc = late
        while True:
            try:
                with w.lock:
                    w.call = None
                    clear_async_exception(w.ident)
                break
            except _INJECTED:
                continue
        for deadline in call.timers:
            deadline.cancel()
        if exc is None:
            _settle(call.future, value)
        else:
            _settle(call.future, exc=exc)

    def _on_soft(self, w: _Worker, call: _Call) -> None:
        with w.lock:
            if w.call is call:
                raise_in_thread(w.ident, SoftTimeLimitExceeded)

    def _on_hard(self, w: _Worker, call: _Call) -> None:
        self._stop_call(w, call, TimeLimitExceeded, TimeLimitExceeded(call.hard))

    def _stop_call(
        self,
        w: _Worker,
        call: _Call,
        inside: type[BaseException],
        outcome: BaseException,
    ) -> bool:
        with w.lock:
            if w.call is not call:
                return False
            raise_in_thread(w.ident, inside)
        if not _settle(call.future, exc=outcome):
            return False
        logger.warning(
            "stopping the call in %s: %s; a new thread replaces it",
            w.thread.name if w.thread is not None else "a worker thread",
            outcome,
        )
        with self._cond:
            if not w.abandoned and not w.retired:
                w.abandoned = True
                self._workers.remove(w)
                if self._queue:
                    self._start_if_needed()
                self._cond.notify_all()
        return True

    def _request_terminate(self, future: PoolFuture[Any], signum: int | None) -> bool:
        call: _Call = future._token
        w = call.worker
        if w is None:
            return False
        return self._stop_call(w, call, TerminatedError, TerminatedError())

    # Control.

    def grow(self, n: int = 1) -> None:
        """Allow *n* more threads; see :meth:`Pool.grow`."""
        count = self._resize_check(n, shrinking=False)
        with self._cond:
            self._size += count
            for _ in range(count):
                self._start_if_needed()

    def shrink(self, n: int = 1) -> None:
        """Stop *n* threads once they finish their current call."""
        with self._cond:
            count = self._resize_check(n, shrinking=True)
            self._size -= count
            active = sum(1 for w in self._workers if not w.retired)
            self._retire += max(0, min(count, active - self._retire - self._size))
            self._cond.notify_all()

    def stats(self) -> PoolStats:
        """Return the pool's size, busy threads, queue length and processed calls."""
        with self._cond:
            workers = tuple(
                WorkerStats(
                    name=w.thread.name if w.thread is not None else str(w.index),
                    pid=os.getpid(),
                    busy=w.call is not None,
                    processed=w.processed,
                )
                for w in self._workers
            )
            return PoolStats(
                kind=self.kind,
                size=self._size,
                busy=sum(1 for w in workers if w.busy),
                queued=len(self._queue),
                processed=self._processed,
                workers=workers,
            )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool; see :meth:`Pool.shutdown`."""
        with self._cond:
            self._closed = True
            if cancel_futures:
                while self._queue:
                    self._queue.popleft().future.cancel()
            running = [w for w in self._workers if w.call is not None]
            self._cond.notify_all()
        if not wait and cancel_futures:
            for w in running:
                call = w.call
                if call is not None:
                    self._stop_call(w, call, TerminatedError, TerminatedError())
        if wait:
            current = threading.current_thread()
            while True:
                with self._cond:
                    waiting = [
                        w.thread for w in self._workers if w.thread is not current
                    ]
                if not waiting:
                    break
                for thread in waiting:
                    if thread is not None:
                        thread.join()
            self._timers.stop()


@atexit.register
def _shutdown_live_pools() -> None:
    deadline = time.monotonic() + 60
    for pool in list(_live_pools):
        if time.monotonic() > deadline:
            break
        pool.shutdown(wait=True)
