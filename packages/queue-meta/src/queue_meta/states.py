"""Task states, as Celery names them (re-exported from :mod:`resultstores.states`).

``PENDING`` (unknown or waiting), ``RECEIVED``, ``STARTED``, ``SUCCESS``,
``FAILURE``, ``RETRY`` and ``REVOKED``; any other non-empty string is a custom
state set with ``self.update_state(state="PROGRESS", meta={...})``.
"""

from __future__ import annotations

from resultstores.states import EXCEPTION_STATES as EXCEPTION_STATES
from resultstores.states import FAILURE as FAILURE
from resultstores.states import IGNORED as IGNORED
from resultstores.states import PENDING as PENDING
from resultstores.states import PROPAGATE_STATES as PROPAGATE_STATES
from resultstores.states import READY_STATES as READY_STATES
from resultstores.states import RECEIVED as RECEIVED
from resultstores.states import REJECTED as REJECTED
from resultstores.states import RETRY as RETRY
from resultstores.states import REVOKED as REVOKED
from resultstores.states import STARTED as STARTED
from resultstores.states import SUCCESS as SUCCESS
from resultstores.states import UNREADY_STATES as UNREADY_STATES

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
