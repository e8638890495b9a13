"""pools: run callables concurrently with time limits, termination and recycling.

This release provides the package's error hierarchy; the executor interface and
the prefork, threads, solo, eventlet, gevent and asyncio pools follow (see
CHANGELOG.md).
"""

from __future__ import annotations

from importlib.metadata import version as _version

from .errors import MissingDriverError as MissingDriverError
from .errors import PoolClosedError as PoolClosedError
from .errors import PoolError as PoolError
from .errors import RemoteException as RemoteException
from .errors import SoftTimeLimitExceeded as SoftTimeLimitExceeded
from .errors import TimeLimitExceeded as TimeLimitExceeded
from .errors import UnknownPoolError as UnknownPoolError
from .errors import WorkerLostError as WorkerLostError

__version__ = _version("pools")

__all__ = [
    "MissingDriverError",
    "PoolClosedError",
    "PoolError",
    "RemoteException",
    "SoftTimeLimitExceeded",
    "TimeLimitExceeded",
    "UnknownPoolError",
    "WorkerLostError",
    "__version__",
]
