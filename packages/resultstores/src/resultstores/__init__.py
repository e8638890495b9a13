"""resultstores: task state and results in Redis, SQL, memcached, MongoDB and more.

This release provides the package's error hierarchy; the store interface and
the stores follow (see CHANGELOG.md).
"""

from __future__ import annotations

from importlib.metadata import version as _version

from .errors import InvalidURLError as InvalidURLError
from .errors import MissingDriverError as MissingDriverError
from .errors import ResultStoreError as ResultStoreError
from .errors import ResultTimeoutError as ResultTimeoutError
from .errors import StoreConnectionError as StoreConnectionError
from .errors import UnknownSchemeError as UnknownSchemeError

__version__ = _version("resultstores")

__all__ = [
    "InvalidURLError",
    "MissingDriverError",
    "ResultStoreError",
    "ResultTimeoutError",
    "StoreConnectionError",
    "UnknownSchemeError",
    "__version__",
]
