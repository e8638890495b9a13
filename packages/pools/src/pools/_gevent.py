"""The ``gevent`` pool: each call runs in a greenlet (needs ``pools[gevent]``).

Kind: ``gevent`` (``pools.GeventPool``).

Options: ``size`` (calls running at once, default 100), ``soft_time_limit``,
``time_limit``, ``initializer``/``finalizer`` (run once, at creation and at
shutdown). Call :func:`pools.monkey_patch` with ``"gevent"`` before anything
else is imported; submit from the hub's thread.

Capabilities and limits:

* soft limit: a :class:`gevent.Timeout` raises ``SoftTimeLimitExceeded`` in
  the greenlet at its next switch (``time.sleep`` and I/O switch);
* hard limit: a hub timer fails the future with ``TimeLimitExceeded``, raises
  it in the greenlet and frees its slot for the next call;
* under CPU load neither limit can act: a greenlet that never switches keeps
  the hub (and so every timer) from running until it returns or switches;
* terminate: raises ``TerminatedError`` in the greenlet; the signal is ignored.

Done-callbacks run in the call's greenlet, or in the hub for limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._green import GreenDriver, GreenPool
from .errors import MissingDriverError

try:
    import gevent  # type: ignore[import-untyped]
    import gevent.event  # type: ignore[import-untyped]
    from gevent import monkey
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingDriverError("gevent", "gevent") from exc

__all__ = ["GeventPool"]


class _GeventDriver(GreenDriver):
    name = "gevent"

    def is_patched(self) -> bool:
        return bool(monkey.is_module_patched("threading"))

    def spawn(self, fn: Callable[[], None]) -> Any:
        return gevent.spawn(fn)

    def throw(self, green: Any, exc: BaseException) -> None:
        green.kill(exception=exc, block=False)

    def later(self, seconds: float, fn: Callable[[], None]) -> Callable[[], None]:
        timer = gevent.get_hub().loop.timer(seconds)
        timer.start(fn)
        return timer.close  # type: ignore[no-any-return]

    def timeout(self, seconds: float, exc: BaseException) -> Callable[[], None]:
        return gevent.Timeout.start_new(seconds, exc).close  # type: ignore[no-any-return]

    def event(self) -> Any:
        return gevent.event.Event()


class GeventPool(GreenPool):
    """Runs up to ``size`` calls at once in greenlets; see the module docstring."""

    kind = "gevent"
    driver = _GeventDriver()
