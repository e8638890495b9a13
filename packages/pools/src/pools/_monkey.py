"""Monkey-patching for the green pools, to be done before anything else is imported."""

from __future__ import annotations

from .errors import MissingDriverError, UnknownPoolError

__all__ = ["monkey_patch"]

_PLAIN = ("prefork", "threads", "solo", "asyncio")


def monkey_patch(kind: str) -> bool:
    """Prepare this process for pools of *kind*; call it first thing in the program.

    gevent and eventlet replace blocking parts of the standard library
    (sockets, ``time.sleep``, threads, locks) with cooperative ones, and that
    only works reliably when done before other modules import them: the
    ``queue`` CLI calls this before it imports user code. For the other kinds
    it does nothing.

    Args:
        kind: The pool kind that will be used.

    Returns:
        Whether the process was patched.

    Raises:
        MissingDriverError: *kind* is ``gevent`` or ``eventlet`` and its extra is
            not installed.
        UnknownPoolError: *kind* names no built-in pool.
    """
    if kind == "gevent":
        try:
            from gevent import monkey  # type: ignore[import-untyped]
        except ImportError as exc:
            raise MissingDriverError("gevent", "gevent") from exc
        monkey.patch_all()
        return True
    if kind == "eventlet":
        try:
            import eventlet
        except ImportError as exc:
            raise MissingDriverError("eventlet", "eventlet") from exc
        eventlet.monkey_patch()
        return True
    if kind in _PLAIN:
        return False
    raise UnknownPoolError(kind, (*_PLAIN, "eventlet", "gevent"))
