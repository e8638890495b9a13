"""Result documents in Celery's layout, and the exception encoding inside them."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from . import states
from .errors import RemoteTaskError

__all__ = [
    "DEFAULT_EXCEPTION_MODULES",
    "ChordPart",
    "ChordResult",
    "ExceptionPolicy",
    "ResultMeta",
    "ResultWrite",
    "TaskInfo",
    "build_document",
    "encode_exception",
    "format_traceback",
    "parse_date",
]

#: Modules whose exceptions are rebuilt when no allow-list is given.
DEFAULT_EXCEPTION_MODULES = ("builtins",)

# The keys Celery writes, in its order; everything else read goes to ``extra``.
_KNOWN = frozenset(
    {
        "status",
        "result",
        "traceback",
        "children",
        "date_done",
        "group_id",
        "parent_id",
        "name",
        "args",
        "kwargs",
        "worker",
        "retries",
        "queue",
        "task_id",
    }
)


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """What a worker knows about the task whose state it stores.

    ``group_id`` and ``parent_id`` are stored whenever set; the other fields
    are Celery's "extended" result fields and are stored when ``name`` is set.

    Attributes:
        name: The task name, e.g. ``"proj.add"``.
        args: The positional arguments.
        kwargs: The keyword arguments.
        worker: The node name of the worker, e.g. ``"w1@host"``.
        retries: How many times the task was retried.
        queue: The queue the task came from (the routing key).
        group_id: The group the task belongs to.
        parent_id: The task that sent this one.
    """

    name: str | None = None
    args: Sequence[Any] | None = None
    kwargs: Mapping[str, Any] | None = None
    worker: str | None = None
    retries: int | None = None
    queue: str | None = None
    group_id: str | None = None
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResultWrite:
    """One state write, for :meth:`~resultstores.ResultStore.mark_many`.

    Attributes:
        task_id: The task.
        state: Its new state.
        result: The return value, an exception (for exception states) or
            the state's metadata.
        traceback: Traceback text for exception states.
        info: What the worker knows about the task.
        children: Result tuples of tasks sent from inside this one.
    """

    task_id: str
    state: str
    result: Any = None
    traceback: str | None = None
    info: TaskInfo | None = None
    children: Sequence[Any] | None = None


@dataclass(frozen=True, slots=True)
class ResultMeta:
    """A task's stored state and result, as read from a store.

    For exception states (``FAILURE``, ``RETRY``, ``REVOKED``) ``result`` is
    an exception: the original type when the store's exception policy allows
    it, a :class:`~resultstores.RemoteTaskError` otherwise.

    Attributes:
        task_id: The task.
        state: ``PENDING`` when the store knows nothing of the task.
        result: The return value, the exception, or the state's metadata.
        traceback: The traceback text of a failure.
        date_done: When the task reached a ready state (aware, UTC).
        children: Result tuples of tasks sent from inside this one.
        group_id: The group of the task, when stored.
        parent_id: The task that sent this one, when stored.
        name: Extended field: the task name.
        args: Extended field: positional arguments.
        kwargs: Extended field: keyword arguments.
        worker: Extended field: the worker's node name.
        retries: Extended field: the retry count.
        queue: Extended field: the queue the task came from.
        extra: Fields of the stored document not listed above.
    """

    task_id: str
    state: str = states.PENDING
    result: Any = None
    traceback: str | None = None
    date_done: datetime | None = None
    children: list[Any] = field(default_factory=list)
    group_id: str | None = None
    parent_id: str | None = None
    name: str | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    worker: str | None = None
    retries: int | None = None
    queue: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Whether the state is final (``SUCCESS``, ``FAILURE`` or ``REVOKED``)."""
        return self.state in states.READY_STATES

    @property
    def successful(self) -> bool:
        """Whether the task succeeded."""
        return self.state == states.SUCCESS

    @property
    def failed(self) -> bool:
        """Whether the task failed."""
        return self.state == states.FAILURE

    def value(self) -> Any:
        """Return the result, raising the stored exception for FAILURE and REVOKED.

        Raises:
            RemoteTaskError: The task failed with an exception the store's
                policy does not rebuild (any rebuilt exception is raised as is).
        """
        if self.state in states.PROPAGATE_STATES and isinstance(
            self.result, BaseException
        ):
            raise self.result
        return self.result


@dataclass(frozen=True, slots=True)
class ChordPart:
    """The result of one task of a chord header.

    Attributes:
        task_id: The header task.
        state: Its final state.
        result: Its return value, or its exception for exception states.
    """

    task_id: str
    state: str
    result: Any


@dataclass(frozen=True, slots=True)
class ChordResult:
    """Every part of a completed chord header, in header order.

    Returned by :meth:`~resultstores.ResultStore.chord_part_return` to the one
    caller whose part completed the header.

    Attributes:
        group_id: The chord's group.
        parts: One entry per header task, ordered by group index.
    """

    group_id: str
    parts: list[ChordPart]

    def values(self) -> list[Any]:
        """Return the results in header order (the chord body's first argument)."""
        return [part.result for part in self.parts]

    @property
    def failed(self) -> list[ChordPart]:
        """The parts whose state is FAILURE or REVOKED."""
        return [part for part in self.parts if part.state in states.PROPAGATE_STATES]


def now_utc() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(timezone.utc)


def parse_date(value: Any) -> datetime | None:
    """Read ``date_done`` as Celery writes it (ISO-8601, or a datetime)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def format_traceback(
    exc: BaseException, traceback: str | TracebackType | None
) -> str | None:
    """Return traceback text for *exc*: given text, a formatted frame, or its own."""
    import traceback as tb_module

    if isinstance(traceback, str):
        return traceback
    frames = traceback if traceback is not None else exc.__traceback__
    if frames is None:
        return None
    return "".join(tb_module.format_exception(type(exc), exc, frames))


def encode_exception(
    exc: BaseException, serializable: Callable[[Any], bool], *, as_object: bool
) -> Any:
    """Encode *exc* as Celery does.

    With a pickle serializer (*as_object*) the exception itself is stored
    when it pickles; otherwise Celery's dict with ``exc_type``,
    ``exc_message`` (the arguments, each replaced by its repr when the
    serializer cannot hold it) and ``exc_module``.
    """
    if as_object and serializable(exc):
        return exc
    cls = type(exc)
    message = [arg if serializable(arg) else repr(arg) for arg in exc.args]
    return {
        "exc_type": cls.__qualname__,
        "exc_message": message,
        "exc_module": cls.__module__,
    }


def build_document(
    task_id: str,
    state: str,
    result: Any,
    traceback: str | None,
    info: TaskInfo | None,
    children: Sequence[Any] | None,
) -> dict[str, Any]:
    """Return the result document with Celery's fields in Celery's order."""
    document: dict[str, Any] = {
        "status": state,
        "result": result,
        "traceback": traceback,
        "children": list(children) if children else [],
        "date_done": now_utc().isoformat() if state in states.READY_STATES else None,
    }
    if info is not None:
        if info.group_id:
            document["group_id"] = info.group_id
        if info.parent_id:
            document["parent_id"] = info.parent_id
        if info.name is not None:
            document["name"] = info.name
            document["args"] = list(info.args) if info.args is not None else None
            document["kwargs"] = dict(info.kwargs) if info.kwargs is not None else None
            document["worker"] = info.worker
            document["retries"] = info.retries
            document["queue"] = info.queue
    document["task_id"] = task_id
    return document


class ExceptionPolicy:
    """Decides which stored exceptions are rebuilt as their own type.

    A stored exception is rebuilt only when its module is ``builtins`` or on
    the allow-list (a listed package also allows its submodules), the module
    is importable, the dotted class name resolves to a ``BaseException``
    subclass, and the class accepts the stored arguments. Anything else is
    a :class:`~resultstores.RemoteTaskError` carrying the type, module,
    message and traceback text.
    """

    def __init__(self, modules: Iterable[str] = DEFAULT_EXCEPTION_MODULES) -> None:
        self.modules = frozenset({"builtins", *modules})

    def allows(self, module: str) -> bool:
        """Return whether exceptions of *module* may be rebuilt."""
        return any(
            module == allowed or module.startswith(allowed + ".")
            for allowed in self.modules
        )

    def rebuild(self, value: Any, traceback: str | None) -> Any:
        """Turn a stored exception (dict or object) into an exception instance."""
        if isinstance(value, BaseException):
            return value
        if not isinstance(value, Mapping) or "exc_type" not in value:
            return value
        exc_type = str(value.get("exc_type"))
        module = str(value.get("exc_module") or "builtins")
        message = value.get("exc_message", ())
        args = tuple(message) if isinstance(message, (list, tuple)) else (message,)

        def wrap(reason: str) -> RemoteTaskError:
            return RemoteTaskError(exc_type, module, args, traceback, reason)

        if not self.allows(module):
            return wrap(f"module {module!r} is not in the store's exception_modules")
        try:
            target: Any = sys.modules.get(module) or importlib.import_module(module)
        except ImportError:
            return wrap(f"module {module!r} cannot be imported here")
        for part in exc_type.split("."):
            target = getattr(target, part, None)
        if not (isinstance(target, type) and issubclass(target, BaseException)):
            return wrap(f"{module}.{exc_type} is not an exception class")
        try:
            return target(*args)
        except Exception as exc:  # noqa: BLE001 - any constructor failure is reported
            return wrap(f"its constructor refused the stored arguments: {exc!r}")


def meta_from_document(
    task_id: str, document: Mapping[str, Any] | None, policy: ExceptionPolicy
) -> ResultMeta:
    """Build a :class:`ResultMeta` from a stored document (``None``: PENDING)."""
    if document is None:
        return ResultMeta(task_id=task_id)
    state = str(document.get("status") or states.PENDING)
    traceback = document.get("traceback")
    result = document.get("result")
    if state in states.EXCEPTION_STATES:
        result = policy.rebuild(result, traceback)
    children = document.get("children") or []
    args = document.get("args")
    kwargs = document.get("kwargs")
    retries = document.get("retries")
    return ResultMeta(
        task_id=str(document.get("task_id") or task_id),
        state=state,
        result=result,
        traceback=traceback if isinstance(traceback, str) else None,
        date_done=parse_date(document.get("date_done")),
        children=list(children) if isinstance(children, (list, tuple)) else [],
        group_id=document.get("group_id"),
        parent_id=document.get("parent_id"),
        name=document.get("name"),
        args=list(args) if isinstance(args, (list, tuple)) else None,
        kwargs=dict(kwargs) if isinstance(kwargs, Mapping) else None,
        worker=document.get("worker"),
        retries=retries if isinstance(retries, int) else None,
        queue=document.get("queue"),
        extra={key: value for key, value in document.items() if key not in _KNOWN},
    )
