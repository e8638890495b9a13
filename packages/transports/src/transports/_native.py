"""Native OS threads, sleeps and locks, also when gevent or eventlet patched them.

Lease renewal must keep running while a task hogs the interpreter, so it runs
in a real thread. Under gevent or eventlet the patched ``threading``,
``_thread`` and ``time`` modules would make it a greenlet that never runs
while the task computes; this module reaches for the originals those
libraries keep.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["allocate_lock", "original_get_ident", "patched", "sleep", "start_thread"]


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
