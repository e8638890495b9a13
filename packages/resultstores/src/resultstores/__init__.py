"""resultstores: task state and results in Redis, SQL, memcached, MongoDB and more.

Open a store with :func:`connect` and a URL; every store follows
:class:`ResultStore`::

    from resultstores import connect

    store = connect("sqlite:///results.db")
    store.mark_success(task_id, {"x": 1})
    meta = store.wait(task_id, timeout=10.0)

On Redis the keys, values and notifications are Celery's, so Celery clients
and ours read each other's results.
"""

from __future__ import annotations

from importlib.metadata import version as _version

from . import states as states
from ._meta import ChordPart as ChordPart
from ._meta import ChordResult as ChordResult
from ._meta import ExceptionPolicy as ExceptionPolicy
from ._meta import ResultMeta as ResultMeta
from ._meta import ResultWrite as ResultWrite
from ._meta import TaskInfo as TaskInfo
from ._registry import connect as connect
from ._registry import resolve as resolve
from ._url import mask_url as mask_url
from .base import DEFAULT_EXPIRES as DEFAULT_EXPIRES
from .base import Capabilities as Capabilities
from .base import ResultStore as ResultStore
from .errors import InvalidStateError as InvalidStateError
from .errors import InvalidURLError as InvalidURLError
from .errors import MissingDriverError as MissingDriverError
from .errors import RemoteTaskError as RemoteTaskError
from .errors import ResultStoreConnectionError as ResultStoreConnectionError
from .errors import ResultStoreError as ResultStoreError
from .errors import ResultTimeoutError as ResultTimeoutError
from .errors import ResultTooLargeError as ResultTooLargeError
from .errors import UnknownSchemeError as UnknownSchemeError
from .kv import KeyValueResultStore as KeyValueResultStore

__version__ = _version("resultstores")

__all__ = [
    "DEFAULT_EXPIRES",
    "Capabilities",
    "ChordPart",
    "ChordResult",
    "ExceptionPolicy",
    "InvalidStateError",
    "InvalidURLError",
    "KeyValueResultStore",
    "MissingDriverError",
    "RemoteTaskError",
    "ResultMeta",
    "ResultStore",
    "ResultStoreConnectionError",
    "ResultStoreError",
    "ResultTimeoutError",
    "ResultTooLargeError",
    "ResultWrite",
    "TaskInfo",
    "UnknownSchemeError",
    "__version__",
    "connect",
    "mask_url",
    "resolve",
    "states",
]
