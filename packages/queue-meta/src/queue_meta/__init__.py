"""queue-meta: a distributed task queue for Python, batteries included.

queue-meta assembles msgwire (wire formats), transports (brokers),
resultstores (results), pools (concurrency) and signing into the complete
queue, worker and ``queue`` command. This release carries the package layout,
the error hierarchy and ``queue --version``; the app, tasks and worker follow
(see CHANGELOG.md).
"""

from __future__ import annotations

from importlib.metadata import version as _version

from .errors import ConfigurationError as ConfigurationError
from .errors import NotRegisteredError as NotRegisteredError
from .errors import QueueMetaError as QueueMetaError

__version__ = _version("queue-meta")

__all__ = ["ConfigurationError", "NotRegisteredError", "QueueMetaError", "__version__"]
