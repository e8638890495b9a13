"""Task states, named and grouped as Celery names and groups them.

Any other non-empty string is a valid custom state (``"PROGRESS"``, for
example); only the built-in final states end a :meth:`~resultstores.ResultStore.wait`.
"""

from __future__ import annotations

__all__ = [
    "EXCEPTION_STATES",
    "FAILURE",
    "IGNORED",
    "PENDING",
    "PROPAGATE_STATES",
    "READY_STATES",
    "RECEIVED",
    "REJECTED",
    "RETRY",
    "REVOKED",
    "STARTED",
    "SUCCESS",
    "UNREADY_STATES",
]

#: Not known to the store: never stored, a missing result reads as PENDING.
PENDING = "PENDING"
#: A worker received the task.
RECEIVED = "RECEIVED"
#: A worker started the task (stored only when the app tracks it).
STARTED = "STARTED"
#: The task returned; the result is its return value. Never overwritten.
SUCCESS = "SUCCESS"
#: The task raised; the result is the encoded exception.
FAILURE = "FAILURE"
#: The task will be retried; the result is the exception that caused it.
RETRY = "RETRY"
#: The task was revoked.
REVOKED = "REVOKED"
#: The task was rejected.
REJECTED = "REJECTED"
#: The task asked for its result to be ignored.
IGNORED = "IGNORED"

#: States after which the result does not change any more.
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
#: States that are not final.
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, REJECTED, RETRY})
#: States whose result is an exception.
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
#: States whose exception is raised by :meth:`~resultstores.ResultMeta.value`.
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})
