"""The exceptions queue-meta raises, under one base class, :class:`QueueMetaError`.

The libraries keep their own hierarchies (``msgwire.MsgwireError``,
``transports.TransportError``, ...); queue-meta adds the errors of the
application layer. Every exception pickles with all its arguments, so it
crosses from a prefork child to the worker and into a result store intact.

Control-flow exceptions a task raises on purpose: :class:`Retry` (from
``self.retry()``), :class:`Reject` and :class:`Ignore`.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from pools import SoftTimeLimitExceeded as SoftTimeLimitExceeded
from pools import TimeLimitExceeded as TimeLimitExceeded
from pools import WorkerLostError as WorkerLostError

__all__ = [
    "AlreadyRegisteredError",
    "ConfigurationError",
    "DeliveryLimitError",
    "Ignore",
    "ImproperlyConfiguredError",
    "MaxRetriesExceededError",
    "NotRegisteredError",
    "QueueMetaError",
    "Reject",
    "Retry",
    "SoftTimeLimitExceeded",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
]


class QueueMetaError(Exception):
    """Base class for every error raised by queue-meta itself."""


class ConfigurationError(QueueMetaError, ValueError):
    """A setting is unknown, misspelled or of the wrong type."""


class ImproperlyConfiguredError(ConfigurationError):
    """Settings are valid one by one but do not work together (e.g. signing
    is enabled without a key)."""


class NotRegisteredError(QueueMetaError, KeyError):
    """A message names a task that is not registered with the app.

    Attributes:
        name: The task name.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"task {self.name!r} is not registered"

    def __reduce__(self) -> tuple[type[NotRegisteredError], tuple[str]]:
        return (type(self), (self.name,))


class AlreadyRegisteredError(QueueMetaError, ValueError):
    """Two different functions were registered under one task name."""


class TimeoutError(QueueMetaError, builtins.TimeoutError):
    """``AsyncResult.get(timeout=...)`` ran out of time."""


class DeliveryLimitError(QueueMetaError):
    """The broker delivered a task ``task_delivery_limit`` times and it never
    finished: the worker running it stopped each time (killed, crashed, cold
    shutdown). The message is in the dead-letter queue."""


class TaskRevokedError(QueueMetaError):
    """The task was revoked (or had expired) and did not run."""


class MaxRetriesExceededError(QueueMetaError):
    """``self.retry()`` was called more often than the task's ``max_retries``."""


class Retry(QueueMetaError):  # noqa: N818 - Celery's name: raised, not an error
    """Raised by ``Task.retry``: the task is sent again and this run ends in RETRY.

    Attributes:
        message: Why the task is retried.
        exc: The exception that caused the retry, if any.
        when: The countdown in seconds, or the ETA.
    """

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | datetime | None = None,
        sig: dict[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when
        #: What the worker sends again (set by Task.retry, not by users).
        self.sig = sig
        super().__init__(message, exc, when)

    def humanize(self) -> str:
        """Return ``"in 5s"`` or ``"at <eta>"``."""
        if isinstance(self.when, (int, float)):
            return f"in {self.when:g}s"
        return f"at {self.when}"

    def __str__(self) -> str:
        if self.message:
            return self.message
        if self.exc is not None:
            return f"Retry {self.humanize()}: {self.exc!r}"
        return f"Retry {self.humanize()}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.exc, self.when, self.sig))


class Reject(QueueMetaError):  # noqa: N818 - Celery's name: raised, not an error
    """Raised by a task to reject its message (requeue, or dead-letter).

    Attributes:
        reason: Why it was rejected.
        requeue: Put the message back in its queue instead of dead-lettering it.
    """

    def __init__(self, reason: object = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.requeue))


class Ignore(QueueMetaError):  # noqa: N818 - Celery's name: raised, not an error
    """Raised by a task so that the worker records no state for this run."""
