"""queue-meta: a distributed task queue for Python, batteries included.

::

    from queue_meta import App

    app = App("hello")   # no broker given: the embedded SQLite default

    @app.task
    def hello() -> str:
        return "hello world"

Run ``queue -A hello worker -l info``; then ``hello.delay().get(timeout=10)``.

queue-meta assembles msgwire (wire formats), transports (brokers),
resultstores (results), pools (concurrency) and signing. Names are imported
on first use, so that ``queue worker -P gevent`` can monkey-patch the
standard library before any broker code is loaded.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App as App
    from .app import current_app as current_app
    from .app import shared_task as shared_task
    from .canvas import Signature as Signature
    from .canvas import signature as signature
    from .errors import ConfigurationError as ConfigurationError
    from .errors import DeliveryLimitError as DeliveryLimitError
    from .errors import Ignore as Ignore
    from .errors import MaxRetriesExceededError as MaxRetriesExceededError
    from .errors import NotRegisteredError as NotRegisteredError
    from .errors import QueueMetaError as QueueMetaError
    from .errors import Reject as Reject
    from .errors import Retry as Retry
    from .errors import SoftTimeLimitExceeded as SoftTimeLimitExceeded
    from .errors import TaskRevokedError as TaskRevokedError
    from .errors import TimeLimitExceeded as TimeLimitExceeded
    from .errors import TimeoutError as TimeoutError
    from .errors import WorkerLostError as WorkerLostError
    from .result import AsyncResult as AsyncResult
    from .task import Task as Task
    from .task import get_task_logger as get_task_logger

__version__ = _version("queue-meta")

_WHERE = {
    "App": "app",
    "current_app": "app",
    "shared_task": "app",
    "Signature": "canvas",
    "signature": "canvas",
    "AsyncResult": "result",
    "Task": "task",
    "get_task_logger": "task",
    **dict.fromkeys(
        (
            "ConfigurationError", "DeliveryLimitError", "Ignore",
            "MaxRetriesExceededError",
            "NotRegisteredError", "QueueMetaError", "Reject", "Retry",
            "SoftTimeLimitExceeded", "TaskRevokedError", "TimeLimitExceeded",
            "TimeoutError", "WorkerLostError",
        ),
        "errors",
    ),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'queue_meta' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [*sorted(_WHERE), "__version__"]
