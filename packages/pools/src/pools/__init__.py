"""pools: run callables concurrently with time limits, termination and recycling.

Every pool is a :class:`concurrent.futures.Executor`; :func:`create_pool` makes
one by kind (``prefork``, ``threads``, ``solo``, ``asyncio``, ``gevent``,
``eventlet``). The pool classes themselves are importable from here too; each
is imported only when first used.
"""

from __future__ import annotations

from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

from ._monkey import monkey_patch as monkey_patch
from ._registry import available_pools as available_pools
from ._registry import create_pool as create_pool
from ._registry import pool_class as pool_class
from .base import Pool as Pool
from .base import PoolFuture as PoolFuture
from .base import PoolStats as PoolStats
from .base import WorkerStats as WorkerStats
from .errors import MissingDriverError as MissingDriverError
from .errors import PoolBrokenError as PoolBrokenError
from .errors import PoolClosedError as PoolClosedError
from .errors import PoolConflictError as PoolConflictError
from .errors import PoolError as PoolError
from .errors import RemoteException as RemoteException
from .errors import RemoteTraceback as RemoteTraceback
from .errors import SoftTimeLimitExceeded as SoftTimeLimitExceeded
from .errors import TerminatedError as TerminatedError
from .errors import TimeLimitExceeded as TimeLimitExceeded
from .errors import UnknownPoolError as UnknownPoolError
from .errors import UnpicklableCallError as UnpicklableCallError
from .errors import UnpicklableResultError as UnpicklableResultError
from .errors import WorkerLostError as WorkerLostError

if TYPE_CHECKING:
    from ._asyncio import AsyncioPool as AsyncioPool
    from ._eventlet import EventletPool as EventletPool
    from ._gevent import GeventPool as GeventPool
    from ._prefork import PreforkPool as PreforkPool
    from ._solo import SoloPool as SoloPool
    from ._threads import ThreadsPool as ThreadsPool

__version__ = _version("pools")

# Pool classes load on first access, so that `import pools` imports no driver.
_LAZY = {
    "AsyncioPool": "asyncio",
    "EventletPool": "eventlet",
    "GeventPool": "gevent",
    "PreforkPool": "prefork",
    "SoloPool": "solo",
    "ThreadsPool": "threads",
}


def __getattr__(name: str) -> Any:
    kind = _LAZY.get(name)
    if kind is None:
        raise AttributeError(f"module 'pools' has no attribute {name!r}")
    return pool_class(kind)


__all__ = [
    "AsyncioPool",
    "EventletPool",
    "GeventPool",
    "MissingDriverError",
    "Pool",
    "PoolBrokenError",
    "PoolClosedError",
    "PoolConflictError",
    "PoolError",
    "PoolFuture",
    "PoolStats",
    "PreforkPool",
    "RemoteException",
    "RemoteTraceback",
    "SoftTimeLimitExceeded",
    "SoloPool",
    "TerminatedError",
    "ThreadsPool",
    "TimeLimitExceeded",
    "UnknownPoolError",
    "UnpicklableCallError",
    "UnpicklableResultError",
    "WorkerLostError",
    "WorkerStats",
    "__version__",
    "available_pools",
    "create_pool",
    "monkey_patch",
    "pool_class",
]
