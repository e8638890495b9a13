"""Signatures: a task call packed up to be sent later, passed around or linked.

``add.s(2, 3)`` is a :class:`Signature`; ``add.si(2, 3)`` an immutable one
(a parent's result is not prepended). Their dict form is Celery's (six keys:
``task``, ``args``, ``kwargs``, ``options``, ``subtask_type``, ``immutable``),
so signatures cross between Celery and queue-meta in ``link``, ``link_error``
and the message's ``embed``. Chains, groups and chords build on this class
(DESIGN.md: canvas comes after the first wave).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from .app import App
    from .result import AsyncResult

__all__ = ["Signature", "maybe_signature", "signature"]

R = TypeVar("R")


class Signature(dict[str, Any], Generic[R]):
    """A task name with arguments and call options; a ``dict`` on the wire.

    Args:
        task: The task name (or a task object).
        args: Positional arguments.
        kwargs: Keyword arguments.
        options: ``apply_async`` options (queue, countdown, link, ...).
        immutable: Do not prepend a parent's result when applied as a callback.
        subtask_type: ``None`` for a task; ``"chain"``, ``"group"``, ``"chord"``
            for canvas primitives.
        app: The app that sends it (default: the current app).
    """

    def __init__(
        self,
        task: Any,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        immutable: bool = False,
        subtask_type: str | None = None,
        app: App | None = None,
    ) -> None:
        name = task if isinstance(task, str) else getattr(task, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"a signature needs a task name or task, got {task!r}")
        super().__init__(
            task=name,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}),
            subtask_type=subtask_type,
            immutable=bool(immutable),
        )
        self._app = app if app is not None else getattr(task, "app", None)

    # dict access by attribute, as in Celery
    @property
    def task(self) -> str:
        """The task name."""
        return str(self["task"])

    name = task

    @property
    def args(self) -> list[Any]:
        """Positional arguments."""
        return self["args"]  # type: ignore[no-any-return]

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments."""
        return self["kwargs"]  # type: ignore[no-any-return]

    @property
    def options(self) -> dict[str, Any]:
        """Call options."""
        return self["options"]  # type: ignore[no-any-return]

    @property
    def immutable(self) -> bool:
        """Whether a parent's result is ignored."""
        return bool(self["immutable"])

    @property
    def app(self) -> App:
        """The app that sends this signature."""
        if self._app is None:
            from .app import current_app

            self._app = current_app()
        return self._app

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [
            f"{k}={v!r}" for k, v in self.kwargs.items()
        ]
        prefix = "%" if self.immutable else ""
        return f"{prefix}{self.task}({', '.join(parts)})"

    def __json__(self) -> dict[str, Any]:
        return dict(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_from_dict, (dict(self),))

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature[R]:
        """Return a copy with *args* prepended, *kwargs* and *options* merged.

        Immutable signatures keep their arguments and only merge options.
        """
        new_args, new_kwargs = list(self.args), dict(self.kwargs)
        if not self.immutable:
            new_args = [*(args or ()), *new_args]
            new_kwargs.update(kwargs or {})
        return Signature(
            self.task,
            new_args,
            new_kwargs,
            {**self.options, **options},
            immutable=self.immutable,
            subtask_type=self["subtask_type"],
            app=self._app,
        )

    def set(self, **options: Any) -> Signature[R]:
        """Set call options in place; return the signature."""
        self.options.update(options)
        return self

    def link(self, callback: Signature[Any]) -> Signature[Any]:
        """Send *callback* with this task's result when it succeeds."""
        self.options.setdefault("link", []).append(callback)
        return callback

    def link_error(self, errback: Signature[Any]) -> Signature[Any]:
        """Send *errback* with this task's id when it fails."""
        self.options.setdefault("link_error", []).append(errback)
        return errback

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Send the task with extra *args* prepended and *kwargs*/*options* merged."""
        sig = (
            self.clone(args, kwargs, **options) if (args or kwargs or options) else self
        )
        return sig.app.send_task(sig.task, sig.args, sig.kwargs, **sig.options)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[R]:
        """Send the task with extra positional and keyword arguments."""
        return self.apply_async(args, kwargs)

    def apply(self, args: Sequence[Any] | None = None, **kwargs: Any) -> Any:
        """Run the task in this process now; return an eager result."""
        sig = self.clone(args, kwargs)
        task = sig.app.tasks[sig.task]
        return task.apply(sig.args, sig.kwargs, **sig.options)

    def freeze(self, task_id: str | None = None) -> AsyncResult[R]:
        """Fix the task id now (for linking); return the result handle."""
        import uuid

        from .result import AsyncResult

        opts = self.options
        opts["task_id"] = task_id or opts.get("task_id") or str(uuid.uuid4())
        return AsyncResult(opts["task_id"], self.app, task_name=self.task)


def _from_dict(data: dict[str, Any]) -> Signature[Any]:
    return signature(data)


def signature(
    value: Mapping[str, Any] | Signature[Any], app: App | None = None
) -> Signature[Any]:
    """Build a :class:`Signature` from Celery's dict form.

    Raises:
        TypeError: *value* is not a signature dict.
    """
    if isinstance(value, Signature):
        return value
    given: object = value
    if not isinstance(given, Mapping) or "task" not in given:
        raise TypeError(f"not a signature: {value!r}")
    options = dict(value.get("options") or {})
    for key in ("link", "link_error"):
        if options.get(key):
            items = options[key]
            items = items if isinstance(items, list) else [items]
            options[key] = [signature(item, app) for item in items]
    return Signature(
        value["task"],
        value.get("args") or (),
        value.get("kwargs") or {},
        options,
        immutable=bool(value.get("immutable")),
        subtask_type=value.get("subtask_type"),
        app=app,
    )


def maybe_signature(value: Any, app: App | None = None) -> Signature[Any] | None:
    """Return a :class:`Signature` for a signature or dict, ``None`` for ``None``."""
    if value is None:
        return None
    return signature(value, app)
