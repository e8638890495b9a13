"""Finding pool classes by kind in the ``pools.implementations`` entry point group.

A kind is imported the first time it is asked for and then cached; nothing is
imported at ``import pools`` time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .base import Pool
from .errors import PoolConflictError, PoolError, UnknownPoolError

__all__ = ["GROUP", "available_pools", "create_pool", "pool_class"]

GROUP = "pools.implementations"

_cache: dict[str, type[Pool]] = {}
_lock = threading.Lock()


def _unique(name: str | None = None) -> list[EntryPoint]:
    found: Iterable[EntryPoint] = (
        entry_points(group=GROUP)
        if name is None
        else entry_points(group=GROUP, name=name)
    )
    # A distribution visible twice on sys.path lists the same entry point twice.
    seen: dict[tuple[str, str], EntryPoint] = {}
    for ep in found:
        dist = ep.dist.name if ep.dist is not None else "?"
        seen.setdefault((ep.name, f"{dist}: {ep.value}"), ep)
    return list(seen.values())


def available_pools() -> tuple[str, ...]:
    """Return the installed pool kinds, sorted, without importing any of them."""
    return tuple(sorted({ep.name for ep in _unique()}))


def pool_class(kind: str) -> type[Pool]:
    """Return the pool class registered as *kind*, importing it on first use.

    Raises:
        UnknownPoolError: No installed distribution provides *kind*.
        MissingDriverError: The kind needs an extra that is not installed.
        PoolConflictError: Two distributions register *kind* differently.
    """
    cls = _cache.get(kind)
    if cls is not None:
        return cls
    with _lock:
        cls = _cache.get(kind)
        if cls is not None:
            return cls
        candidates = _unique(kind)
        if not candidates:
            raise UnknownPoolError(kind, available_pools())
        if len({ep.value for ep in candidates}) > 1:
            raise PoolConflictError(
                kind,
                tuple(
                    f"{ep.dist.name if ep.dist is not None else '?'}: {ep.value}"
                    for ep in candidates
                ),
            )
        loaded: object = candidates[0].load()
        if not (isinstance(loaded, type) and issubclass(loaded, Pool)):
            raise PoolError(
                f"the entry point {candidates[0].value!r} registered as pool kind "
                f"{kind!r} is not a pools.Pool subclass; fix or uninstall the "
                "distribution that provides it",
            )
        _cache[kind] = loaded
        return loaded


def create_pool(
    kind: str = "prefork",
    *,
    size: int | None = None,
    soft_time_limit: float | None = None,
    time_limit: float | None = None,
    max_tasks_per_child: int | None = None,
    max_memory_per_child_kib: int | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: Iterable[Any] = (),
    finalizer: Callable[..., object] | None = None,
    finalargs: Iterable[Any] = (),
    after_fork: Callable[[], object] | None = None,
    **kind_options: Any,
) -> Pool:
    """Create a pool of the given kind; the options are those of :class:`~pools.Pool`.

    Args:
        kind: ``"prefork"`` (the default), ``"threads"``, ``"solo"``,
            ``"asyncio"``, ``"gevent"``, ``"eventlet"`` or any kind a third-party
            distribution registers.
        size: How many calls run at once; each kind has its default.
        soft_time_limit: Seconds before ``SoftTimeLimitExceeded`` is raised
            inside a call.
        time_limit: Seconds before a call is stopped and fails with
            ``TimeLimitExceeded``.
        max_tasks_per_child: Replace a worker after this many calls.
        max_memory_per_child_kib: Replace a worker process whose resident
            memory passed this many KiB after a call.
        initializer: Run with *initargs* in each new worker.
        initargs: Arguments for *initializer*.
        finalizer: Run with *finalargs* in each worker that stops gracefully.
        finalargs: Arguments for *finalizer*.
        after_fork: Run in each new worker process right after the fork.
        **kind_options: Options only one kind takes, such as prefork's
            ``start_method``.

    Raises:
        UnknownPoolError: No installed distribution provides *kind*.
        MissingDriverError: The kind needs an extra, e.g. ``pools[gevent]``.
        ValueError: An option is out of range or not supported by the kind.
    """
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a pool name such as 'prefork', not {kind!r}")
    cls = pool_class(kind)
    return cls(
        size=size,
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
        max_tasks_per_child=max_tasks_per_child,
        max_memory_per_child_kib=max_memory_per_child_kib,
        initializer=initializer,
        initargs=initargs,
        finalizer=finalizer,
        finalargs=finalargs,
        after_fork=after_fork,
        **kind_options,
    )
