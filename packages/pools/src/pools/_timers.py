"""A deadline thread for pools that enforce limits from outside the call, and
raising an exception inside another thread.

Thread pools cannot stop a thread, so they deliver limits with
``PyThreadState_SetAsyncExc``: the exception is raised in the target thread at
its next Python bytecode. A thread blocked in ``time.sleep`` or in C code sees
it only once that call returns.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Deadline", "TimerThread", "clear_async_exception", "raise_in_thread"]

logger = logging.getLogger(__name__)

# Two prototypes of one C function: passing NULL (not None) clears the exception.
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


def raise_in_thread(ident: int, exc_type: type[BaseException]) -> bool:
    """Raise *exc_type* (instantiated without arguments) in the thread *ident*.

    Returns:
        Whether the thread was found.
    """
    return bool(_set_async_exc(ident, exc_type))


def clear_async_exception(ident: int) -> None:
    """Drop an exception scheduled by :func:`raise_in_thread` and not yet raised."""
    _clear_async_exc(ident, None)


class Deadline:
    """A scheduled callback; :meth:`cancel` stops it from running."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the callback from running, if it has not run yet."""
        self.cancelled = True


class TimerThread:
    """Runs callbacks at monotonic deadlines in one daemon thread, started lazily."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._heap: list[tuple[float, int, Deadline]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, delay: float, callback: Callable[[], object]) -> Deadline:
        """Run *callback* in the timer thread after *delay* seconds."""
        deadline = Deadline(time.monotonic() + delay, callback)
        with self._cond:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._run, name=self._name, daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (deadline.when, next(self._counter), deadline))
            if self._heap[0][2] is deadline:
                self._cond.notify()
        return deadline

    def stop(self) -> None:
        """Stop the thread; callbacks not yet run are dropped."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        deadline = heapq.heappop(self._heap)[2]
                        break
                    timeout = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(timeout)
            if deadline.cancelled:
                continue
            try:
                deadline.callback()
            except Exception:
                logger.exception("a %s callback failed", self._name)
