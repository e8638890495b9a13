"""Callables for the pool tests, importable by name in every worker process."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from pathlib import Path

from pools import SoftTimeLimitExceeded

_hoard: list[bytes] = []


def add(a: int, b: int) -> int:
    return a + b


def noop() -> None:
    return None


def pid() -> int:
    time.sleep(0.01)
    return os.getpid()


def pid_now() -> int:
    return os.getpid()


def thread_name() -> str:
    return threading.current_thread().name


def sleep_then(seconds: float, value: object = None) -> object:
    time.sleep(seconds)
    return value


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def cpu_for(seconds: float) -> str:
    """Busy-loop in Python; report whether the soft limit interrupted it."""
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            pass
    except SoftTimeLimitExceeded:
        return f"soft after {time.monotonic() - started:.2f}"
    return "finished"


def sleep_for(seconds: float) -> str:
    """Block in time.sleep; report whether and when the soft limit arrived."""
    started = time.monotonic()
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return f"soft after {time.monotonic() - started:.2f}"
    return "finished"


def sleep_and_cleanup(seconds: float) -> str:
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "finished"


def ignore_limits(seconds: float) -> str:
    """Swallow every limit exception and keep sleeping."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(BaseException):  # the point of this helper
            time.sleep(0.05)
    return "finished"


def exit_with(code: int) -> None:
    os._exit(code)


def kill_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(5)


def segfault() -> None:
    import faulthandler

    faulthandler.disable()  # the crash is the point; keep its dump out of the log
    ctypes.string_at(0)


class CustomError(Exception):
    pass


class StrictError(Exception):
    """Pickles, but cannot be rebuilt: __init__ takes two arguments."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class LockedError(Exception):
    """Cannot be pickled at all: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def raise_custom(message: str) -> None:
    raise CustomError(message)


def raise_strict() -> None:
    raise StrictError(7, "strict")


def raise_locked() -> None:
    raise LockedError("holds a lock")


def return_lock() -> object:
    return threading.Lock()


def hoard_kib(kib: int) -> int:
    _hoard.append(b"x" * (kib * 1024))
    return os.getpid()


def rss_kib() -> int | None:
    from pools._child import process_rss_kib

    return process_rss_kib()


def record(path: str, label: str) -> None:
    """Append "label pid" to *path* (used by the hooks)."""
    with open(path, "a") as file:
        file.write(f"{label} {os.getpid()}\n")


def read_records(path: str | Path) -> list[tuple[str, int]]:
    text = Path(path).read_text() if Path(path).exists() else ""
    return [
        (label, int(pid)) for label, pid in (line.split() for line in text.splitlines())
    ]


def failing_hook() -> None:
    raise RuntimeError("hook exploded")


def ignore_sigterm_then_sleep(seconds: float) -> str:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)
    return "finished"


async def async_add(a: int, b: int) -> int:
    import asyncio

    await asyncio.sleep(0)
    return a + b
