"""Native OS threads, sleeps and locks, also when gevent or eventlet patched them.

Lease renewal must keep running while a task hogs the interpreter, so it runs
in a real thread. Under gevent or eventlet the patched ``threading``,
``_thread`` and ``time`` modules would make it a greenlet that never runs
while the task computes; this module reaches for the originals those
libraries keep.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "allocate_lock",
    "condition",
    "event",
    "original_get_ident",
    "patched",
    "rlock",
    "sleep",
    "start_thread",
]


def patched() -> str | None:
    """Return ``"gevent"`` or ``"eventlet"`` if that library patched threads."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None:
        try:
            if gevent_monkey.is_module_patched("threading"):
                return "gevent"
        except Exception:  # noqa: BLE001 - an odd gevent version: treat as unpatched
            return None
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    if eventlet_patcher is not None:
        try:
            if eventlet_patcher.is_monkey_patched("thread"):
                return "eventlet"
        except Exception:  # noqa: BLE001 - an odd eventlet version: treat as unpatched
            return None
    return None


def _original(module: str, name: str) -> Any:
    kind = patched()
    if kind == "gevent":
        monkey: Any = importlib.import_module("gevent.monkey")
        return monkey.get_original(module, name)
    if kind == "eventlet":
        patcher: Any = importlib.import_module("eventlet.patcher")
        return getattr(patcher.original(module), name)
    return getattr(importlib.import_module(module), name)


def start_thread(target: Callable[[], None]) -> int:
    """Run *target* in a new OS thread, even under monkey-patching; return its id."""
    start: Callable[..., int] = _original("_thread", "start_new_thread")
    return start(target, ())


def sleep(seconds: float) -> None:
    """Block this OS thread for *seconds* (the unpatched ``time.sleep``)."""
    original: Callable[[float], None] = _original("time", "sleep")
    original(seconds)


def allocate_lock() -> Any:
    """Return an unpatched ``_thread`` lock, safe to share with a native thread."""
    return _original("_thread", "allocate_lock")()


def original_get_ident() -> Callable[[], int]:
    """Return the unpatched ``_thread.get_ident``: it names OS threads."""
    get_ident: Callable[[], int] = _original("_thread", "get_ident")
    return get_ident


# -- primitives shared by native threads and green threads ---------------------------
#
# gevent's locks wake waiters in other OS threads; eventlet's do not: a release
# in a native thread schedules the waiter's wake-up on the releasing thread's
# hub, which fails with "Cannot switch to a different thread" and leaves the
# waiter asleep until its timeout. Under eventlet, objects that a native thread
# (lease keeper, AMQP I/O and heartbeat threads) shares with green threads use
# the hybrids below; everywhere else the factories return the ``threading``
# primitives unchanged.


class _HybridRLock:
    """A re-entrant lock owned by one green thread of one OS thread.

    The underlying lock is a native one; a blocked acquirer polls it with the
    current thread's ``time.sleep`` (green under eventlet), so waiting never
    blocks the hub and a release needs no cross-thread wake-up. Contention is
    rare (a heartbeat tick against a publish), so polling costs nothing in
    practice.
    """

    _POLL = 0.0005

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._owner: tuple[int, int] | None = None
        self._count = 0
        self._get_ident = original_get_ident()

    def _me(self) -> tuple[int, int]:
        getcurrent = importlib.import_module("greenlet").getcurrent
        return (self._get_ident(), id(getcurrent()))

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        me = self._me()
        if self._owner == me:
            self._count += 1
            return True
        deadline = (
            None if timeout is None or timeout < 0 else time.monotonic() + timeout
        )
        while not self._lock.acquire(False):
            if not blocking or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(self._POLL)
        self._owner, self._count = me, 1
        return True

    def release(self) -> None:
        if self._owner != self._me():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if not self._count:
            self._owner = None
            self._lock.release()

    def _release_save(self) -> tuple[tuple[int, int] | None, int]:
        state = (self._owner, self._count)
        self._owner, self._count = None, 0
        self._lock.release()
        return state

    def _acquire_restore(self, state: tuple[tuple[int, int] | None, int]) -> None:
        self.acquire()
        self._owner, self._count = state

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class _HybridCondition:
    """``threading.Condition`` whose waiters any OS thread can wake.

    Each waiter sleeps on its own socket pair with ``select`` (green under
    eventlet); ``notify`` writes a byte to the waiters' sockets.
    """

    def __init__(self, lock: _HybridRLock | None = None) -> None:
        self._lock = lock or _HybridRLock()
        self._waiters: list[socket.socket] = []
        self._spare: list[tuple[socket.socket, socket.socket]] = []

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        import select

        pair = self._spare.pop() if self._spare else _socket_pair()
        reader, writer = pair
        with contextlib.suppress(OSError):
            reader.recv(64)  # a byte of a notify that raced a timeout
        self._waiters.append(writer)
        state = self._lock._release_save()
        try:
            ready, _, _ = select.select([reader], [], [], timeout)
            if ready:
                with contextlib.suppress(OSError):
                    reader.recv(64)
        finally:
            self._lock._acquire_restore(state)
            with contextlib.suppress(ValueError):
                self._waiters.remove(writer)
                ready = []  # not notified: a timeout
            self._spare.append(pair)
        return bool(ready)

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float | None = None
    ) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        result = predicate()
        while not result:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            self.wait(remaining)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        for writer in self._waiters[:n]:
            self._waiters.remove(writer)
            with contextlib.suppress(OSError):
                writer.send(b"x")

    def notify_all(self) -> None:
        self.notify(len(self._waiters))


class _HybridEvent:
    """``threading.Event`` on a :class:`_HybridCondition`."""

    def __init__(self) -> None:
        self._cond = _HybridCondition()
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        with self._cond:
            return bool(self._cond.wait_for(lambda: self._flag, timeout))


def _socket_pair() -> tuple[socket.socket, socket.socket]:
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    return reader, writer


def rlock() -> Any:
    """A re-entrant lock a native thread may share with green threads."""
    return _HybridRLock() if patched() == "eventlet" else threading.RLock()


def condition() -> Any:
    """A condition variable shared by native and green threads."""
    return _HybridCondition() if patched() == "eventlet" else threading.Condition()


def event() -> Any:
    """An event a native thread may set while green threads wait (and vice versa)."""
    return _HybridEvent() if patched() == "eventlet" else threading.Event()
