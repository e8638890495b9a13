"""Handles on task results: :class:`AsyncResult`.

``task.delay(...)`` returns an ``AsyncResult[R]`` whose :meth:`~AsyncResult.get`
waits for the worker's result in the app's result backend and returns it
(typed ``R``), or raises the task's exception.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from resultstores import RemoteTaskError, ResultMeta, ResultTimeoutError

from . import states
from .errors import TimeoutError as QueueTimeoutError

if TYPE_CHECKING:
    from .app import App

__all__ = ["AsyncResult"]

R = TypeVar("R")


class AsyncResult(Generic[R]):
    """The result of one task, read from the app's result backend.

    Args:
        id: The task id.
        app: The app whose backend holds the result.
        parent: The result of the task that sent this one (chains).
        task_name: The task's name, when known.
    """

    def __init__(
        self,
        id: str,
        app: App | None = None,
        *,
        parent: AsyncResult[Any] | None = None,
        task_name: str | None = None,
    ) -> None:
        given: object = id
        if not isinstance(given, str) or not given:
            raise TypeError(f"a task id must be a non-empty string, got {id!r}")
        if app is None:
            from .app import current_app

            app = current_app()
        self.id = id
        self.app = app
        self.parent = parent
        self.task_name = task_name
        self._cache: ResultMeta | None = None

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.id, self.task_name))

    @property
    def task_id(self) -> str:
        """The task id (Celery's alias of :attr:`id`)."""
        return self.id

    def _meta(self) -> ResultMeta:
        if self._cache is not None:
            return self._cache
        meta = _own_exception(self.app.backend.get(self.id))
        if meta.state in states.READY_STATES:
            self._cache = meta
        return meta

    # -- state -----------------------------------------------------------------------

    @property
    def state(self) -> str:
        """The task's current state (``PENDING`` when unknown)."""
        return self._meta().state

    status = state

    def ready(self) -> bool:
        """Whether the task has finished (SUCCESS, FAILURE or REVOKED)."""
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        """Whether the task succeeded."""
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        """Whether the task failed."""
        return self.state == states.FAILURE

    def exists(self) -> bool:
        """Whether the backend knows the task (tells an unknown id from PENDING).

        A task that was sent but not yet received reads as unknown on backends
        that store nothing before the worker does.
        """
        exists = getattr(self.app.backend, "exists", None)
        if exists is None:
            return self.state != states.PENDING
        return bool(exists(self.id))

    @property
    def result(self) -> Any:
        """The return value, the exception, or a custom state's metadata."""
        return self._meta().result

    info = result

    @property
    def traceback(self) -> str | None:
        """The traceback text of a failure."""
        return self._meta().traceback

    @property
    def date_done(self) -> datetime | None:
        """When the task finished."""
        return self._meta().date_done

    @property
    def children(self) -> list[AsyncResult[Any]]:
        """Results of the tasks this one sent while it ran."""
        found: list[AsyncResult[Any]] = []
        for child in self._meta().children or []:
            child_id = _child_id(child)
            if child_id:
                found.append(AsyncResult(child_id, self.app))
        return found

    # -- waiting ---------------------------------------------------------------------

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        *,
        on_message: Callable[[ResultMeta], None] | None = None,
    ) -> R:
        """Wait until the task is finished and return its result.

        Args:
            timeout: Seconds to wait at most (``None``: for ever).
            propagate: Raise the task's exception if it failed or was revoked;
                with ``False`` the exception is returned instead.
            interval: On polling backends, the longest pause between two reads.
            on_message: Called with each state read while waiting (where the
                backend reports intermediate states).

        Raises:
            queue_meta.TimeoutError: The task did not finish in time.
            Exception: The task's own exception (``propagate=True``).
        """
        if self._cache is None:
            try:
                self._cache = self.app.backend.wait(
                    self.id, timeout=timeout, interval=interval
                )
            except ResultTimeoutError as exc:
                raise QueueTimeoutError(
                    f"task {self.id} ({self.task_name or 'unknown task'}) did not "
                    f"finish within {timeout:g} s"
                ) from exc
        meta = self._cache = _own_exception(self._cache)
        if on_message is not None:
            on_message(meta)
        if meta.state in states.PROPAGATE_STATES and not propagate:
            return meta.result  # type: ignore[no-any-return]
        return meta.value()  # type: ignore[no-any-return]

    wait = get

    # -- actions ---------------------------------------------------------------------

    def forget(self) -> None:
        """Delete the stored result."""
        self._cache = None
        self.app.backend.forget(self.id)

    def revoke(self, terminate: bool = False, signal: str | int = "SIGTERM") -> None:
        """Ask every worker not to run this task (and stop it if *terminate*)."""
        self.app.control.revoke(self.id, terminate=terminate, signal=signal)

    def as_tuple(self) -> tuple[tuple[str, Any], Any]:
        """Celery's serialized form ``((id, parent), None)``."""
        parent = self.parent.as_tuple() if self.parent is not None else None
        return ((self.id, parent), None)


#: Modules whose exceptions queue_meta.errors has under the same name: Celery's
#: (its workers and the stores' REVOKED encoding) and the pools' time limits.
_FOREIGN_MODULES = ("celery.exceptions", "billiard.exceptions", "pools.errors")


def _own_exception(meta: ResultMeta) -> ResultMeta:
    """Rebuild a stored TaskRevokedError, TimeLimitExceeded, ... as ours."""
    exc = meta.result
    if not (isinstance(exc, RemoteTaskError) and exc.exc_module in _FOREIGN_MODULES):
        return meta
    from . import errors

    if exc.exc_type not in errors.__all__:
        return meta
    cls = getattr(errors, exc.exc_type)
    try:
        rebuilt = cls(*exc.exc_message)
    except (TypeError, ValueError):
        # Stored args are the message, not the constructor's (pools' time limits).
        rebuilt = cls.__new__(cls, *exc.exc_message)
    return dataclasses.replace(meta, result=rebuilt)


def _child_id(child: Any) -> str | None:
    """Find the id in Celery's stored child forms ``[[id, parent], None]``."""
    while isinstance(child, (list, tuple)) and child:
        child = child[0]
    return child if isinstance(child, str) else None


def _rebuild(task_id: str, task_name: str | None) -> AsyncResult[Any]:
    return AsyncResult(task_id, task_name=task_name)
