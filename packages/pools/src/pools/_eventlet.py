"""The ``eventlet`` pool: each call runs in a green thread (needs ``pools[eventlet]``).

Kind: ``eventlet`` (``pools.EventletPool``). eventlet is in maintenance mode;
prefer gevent or asyncio for new code.

Options: ``size`` (calls running at once, default 100), ``soft_time_limit``,
``time_limit``, ``initializer``/``finalizer`` (run once, at creation and at
shutdown). Call :func:`pools.monkey_patch` with ``"eventlet"`` before anything
else is imported; submit from the hub's thread.

Capabilities and limits:

* soft limit: an :class:`eventlet.Timeout` raises ``SoftTimeLimitExceeded`` in
  the green thread at its next switch (``time.sleep`` and I/O switch);
* hard limit: a hub timer fails the future with ``TimeLimitExceeded``, raises
  it in the green thread and frees its slot for the next call;
* under CPU load neither limit can act: a green thread that never switches
  keeps the hub from running until it returns or switches;
* terminate: raises ``TerminatedError`` in the green thread; the signal is
  ignored.

Done-callbacks run in the call's green thread, or in the hub for limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._green import GreenDriver, GreenPool
from .errors import MissingDriverError

try:
    import eventlet
    import eventlet.event
    import eventlet.patcher
    from eventlet import hubs
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingDriverError("eventlet", "eventlet") from exc

__all__ = ["EventletPool"]


class _Event:
    """A resettable event (eventlet's own Event fires only once)."""

    def __init__(self) -> None:
        self._flag = False
        self._waiters: list[Any] = []

    def set(self) -> None:
        self._flag = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.send(None)

    def clear(self) -> None:
        self._flag = False

    def wait(self) -> None:
        while not self._flag:
            waiter = eventlet.event.Event()
            self._waiters.append(waiter)
            waiter.wait()


class _EventletDriver(GreenDriver):
    name = "eventlet"

    def is_patched(self) -> bool:
        return bool(eventlet.patcher.is_monkey_patched("thread"))

    def spawn(self, fn: Callable[[], None]) -> Any:
        return eventlet.spawn(fn)

    def throw(self, green: Any, exc: BaseException) -> None:
        if not green.dead:
            hubs.get_hub().schedule_call_global(0, green.throw, exc)

    def later(self, seconds: float, fn: Callable[[], None]) -> Callable[[], None]:
        timer = hubs.get_hub().schedule_call_global(seconds, fn)
        return timer.cancel  # type: ignore[no-any-return]

    def timeout(self, seconds: float, exc: BaseException) -> Callable[[], None]:
        return eventlet.Timeout(seconds, exc).cancel  # type: ignore[no-any-return]

    def event(self) -> Any:
        return _Event()


class EventletPool(GreenPool):
    """Runs up to ``size`` calls at once in green threads; see the module docstring."""

    kind = "eventlet"
    driver = _EventletDriver()
