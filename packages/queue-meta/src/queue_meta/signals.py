"""Hooks into the life of tasks and workers.

Connect a receiver with ``@task_success.connect`` (or ``signal.connect(fn,
sender=...)``); it is called with ``sender=`` and keyword arguments. A
receiver that raises is logged and never stops the task or the worker.

Task signals (sent where the task runs, so in the prefork child for
``task_prerun``, ``task_postrun``, ``task_success``, ``task_failure`` and
``task_retry``): ``task_received`` and ``task_revoked`` are sent in the
worker's main process. Worker signals: ``worker_init`` (before the pool
starts), ``worker_process_init`` (in each prefork child), ``worker_ready``,
``worker_shutdown``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "Signal",
    "task_failure",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_retry",
    "task_revoked",
    "task_success",
    "worker_init",
    "worker_process_init",
    "worker_ready",
    "worker_shutdown",
]

logger = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


class Signal:
    """A named hook: receivers are called in the order they connected.

    Args:
        name: The signal's name, used in log messages.
        arguments: The keyword arguments receivers get besides ``sender``.
    """

    def __init__(self, name: str, arguments: tuple[str, ...] = ()) -> None:
        self.name = name
        self.arguments = arguments
        self._receivers: list[tuple[Any, Any]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Signal {self.name}: {len(self._receivers)} receivers>"

    def connect(
        self, receiver: _F | None = None, *, sender: Any = None, weak: bool = False
    ) -> Any:
        """Connect *receiver*: ``@signal.connect`` or ``@signal.connect(sender=...)``.

        Args:
            receiver: Called as ``receiver(sender=..., **arguments)``.
            sender: Only signals from this sender (a task name or object) reach it.
            weak: Hold the receiver weakly (it goes away with its object).
        """

        def register(fn: _F) -> _F:
            if not callable(fn):
                raise TypeError(f"a signal receiver must be callable, got {fn!r}")
            ref: Any = (
                weakref.WeakMethod(fn)
                if weak and hasattr(fn, "__self__")
                else (weakref.ref(fn) if weak else (lambda: fn))
            )
            with self._lock:
                self._receivers.append((ref, sender))
            return fn

        if receiver is None:
            return register
        return register(receiver)

    def disconnect(self, receiver: Callable[..., Any]) -> bool:
        """Remove *receiver*; return whether it was connected."""
        with self._lock:
            before = len(self._receivers)
            self._receivers = [
                (ref, sender)
                for ref, sender in self._receivers
                if ref() is not receiver
            ]
            return len(self._receivers) != before

    def send(self, sender: Any = None, **arguments: Any) -> list[tuple[Any, Any]]:
        """Call every receiver; return ``(receiver, result_or_exception)`` pairs.

        A receiver that raises is logged with its traceback; the others still run.
        """
        if not self._receivers:
            return []
        with self._lock:
            receivers = list(self._receivers)
        replies: list[tuple[Any, Any]] = []
        for ref, wanted in receivers:
            fn = ref()
            if fn is None:
                continue
            if (
                wanted is not None
                and wanted is not sender
                and wanted != getattr(sender, "name", sender)
            ):
                continue
            try:
                replies.append((fn, fn(sender=sender, signal=self, **arguments)))
            except Exception as exc:
                logger.exception("signal %s: receiver %r raised", self.name, fn)
                replies.append((fn, exc))
        return replies


task_received = Signal("task_received", ("request",))
task_prerun = Signal("task_prerun", ("task_id", "task", "args", "kwargs"))
task_postrun = Signal(
    "task_postrun", ("task_id", "task", "args", "kwargs", "retval", "state")
)
task_success = Signal("task_success", ("result",))
task_failure = Signal(
    "task_failure", ("task_id", "exception", "args", "kwargs", "traceback", "einfo")
)
task_retry = Signal("task_retry", ("request", "reason", "einfo"))
task_revoked = Signal("task_revoked", ("request", "terminated", "signum", "expired"))
worker_init = Signal("worker_init")
worker_process_init = Signal("worker_process_init")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
