"""Tasks: functions registered with an app, run by workers.

``@app.task`` turns a function into a :class:`Task`. Calling the task runs the
function here and now; ``task.delay(...)`` / ``task.apply_async(...)`` send it to
a worker and return an :class:`~queue_meta.result.AsyncResult`. Arguments are
checked against the function's signature before anything is sent, and type
hints flow through: ``add.delay(1, 2)`` is an ``AsyncResult[int]`` for
``def add(x: int, y: int) -> int``.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, ParamSpec, TypeVar

from . import states
from .canvas import Signature
from .errors import MaxRetriesExceededError, Retry

if TYPE_CHECKING:
    from .app import App
    from .result import AsyncResult

__all__ = ["Context", "Task", "current_request", "get_task_logger"]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger(__name__)


@dataclass
class Context:
    """What a running task knows about its own call: ``self.request``.

    Attributes:
        id: The task id.
        task: The task name.
        args: Positional arguments.
        kwargs: Keyword arguments.
        retries: How many times this task was retried so far.
        hostname: The node name of the worker running it.
        delivery_info: ``exchange``, ``routing_key``, ``queue``, ``priority``,
            ``redelivered``.
        eta: When it was scheduled to run, if it was.
        expires: When it expires, if it does.
        parent_id: The task that sent this one.
        root_id: The first task of the workflow.
        group: The group id, for group members.
        correlation_id: The message's correlation id.
        reply_to: The reply queue (``rpc://`` results).
        is_eager: It runs in-process through ``apply()``.
        timelimit: ``(hard, soft)`` seconds, per call.
        headers: Custom message headers.
        callbacks: Signatures sent with the result on success (``link``).
        errbacks: Signatures sent with the id on failure (``link_error``).
        chain: The rest of a chain, last task first (Celery's order).
        chord: The chord body this task is a header part of.
        ignore_result: The caller asked for no result.
        origin: The node that sent it.
    """

    id: str = ""
    task: str = ""
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    hostname: str | None = None
    delivery_info: dict[str, Any] = field(default_factory=dict)
    eta: datetime | None = None
    expires: datetime | None = None
    parent_id: str | None = None
    root_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    is_eager: bool = False
    timelimit: tuple[float | None, float | None] = (None, None)
    headers: dict[str, Any] = field(default_factory=dict)
    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    chain: list[dict[str, Any]] | None = None
    chord: dict[str, Any] | None = None
    ignore_result: bool = False
    origin: str | None = None

    def get(self, key: str, default: Any = None) -> Any:
        """Return attribute *key*, or *default* (Celery's dict-like access)."""
        return getattr(self, key, default)


_current: contextvars.ContextVar[tuple[Task[Any, Any], Context] | None] = (
    contextvars.ContextVar("queue_meta_current_task", default=None)
)


def current_request() -> Context | None:
    """Return the request of the task running in this thread or coroutine."""
    found = _current.get()
    return None if found is None else found[1]


class _TaskLogFilter(logging.Filter):
    """Adds ``task_name`` and ``task_id`` of the running task to log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request()
        record.task_name = request.task if request else "???"
        record.task_id = request.id if request else "???"
        return True


def get_task_logger(name: str) -> logging.Logger:
    """Return a logger whose records carry ``task_name`` and ``task_id``.

    The ``queue worker`` command's task log format shows them:
    ``[2026-01-01 12:00:00: INFO/ForkPoolWorker-1] proj.add[<id>]: message``.
    """
    log = logging.getLogger(name)
    if not any(isinstance(f, _TaskLogFilter) for f in log.filters):
        log.addFilter(_TaskLogFilter())
    return log


#: Options a task accepts, with their defaults (None: take the app's setting).
TASK_OPTIONS: dict[str, Any] = {
    "name": None,
    "bind": False,
    "typing": True,
    "max_retries": None,
    "default_retry_delay": None,
    "autoretry_for": (),
    "dont_autoretry_for": (),
    "retry_kwargs": None,
    "retry_backoff": False,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "rate_limit": None,
    "time_limit": None,
    "soft_time_limit": None,
    "acks_late": None,
    "acks_on_failure_or_timeout": None,
    "reject_on_worker_lost": None,
    "ignore_result": None,
    "store_errors_even_if_ignored": None,
    "track_started": None,
    "queue": None,
    "routing_key": None,
    "exchange": None,
    "priority": None,
    "serializer": None,
    "compression": None,
    "expires": None,
    "shadow": None,
}


class Task(Generic[P, R]):
    """A function registered as a task; subclass it for ``base=`` hooks.

    Hooks a subclass may override: :meth:`before_start`, :meth:`on_success`,
    :meth:`on_failure`, :meth:`on_retry`, :meth:`after_return`. They run
    where the task runs (in the prefork child); one that raises is logged.
    """

    #: Option names accepted by ``@app.task(...)``.
    options: ClassVar[dict[str, Any]] = TASK_OPTIONS

    name: str
    app: App
    max_retries: int | None
    default_retry_delay: float
    autoretry_for: tuple[type[BaseException], ...]
    rate_limit: str | None
    time_limit: float | None
    soft_time_limit: float | None
    acks_late: bool
    acks_on_failure_or_timeout: bool
    reject_on_worker_lost: bool
    ignore_result: bool
    store_errors_even_if_ignored: bool
    track_started: bool
    queue: str | None
    priority: int | None
    serializer: str | None
    compression: str | None
    expires: float | datetime | None

    def __init__(self, fn: Callable[..., Any], app: App, **options: Any) -> None:
        unknown = set(options) - set(TASK_OPTIONS)
        if unknown:
            import difflib

            name = sorted(unknown)[0]
            close = difflib.get_close_matches(name, TASK_OPTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"unknown task option {name!r} for {fn.__qualname__}{hint} "
                f"(options: {', '.join(sorted(TASK_OPTIONS))})"
            )
        if not callable(fn):
            raise TypeError(f"a task must wrap a callable, got {fn!r}")
        self.fn = fn
        self.app = app
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", type(self).__name__)
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__module__ = getattr(fn, "__module__", __name__)
        conf = app.conf
        merged = {**TASK_OPTIONS, **_class_options(type(self)), **options}
        self.bind = bool(merged["bind"])
        self.typing = bool(merged["typing"])
        self.name = merged["name"] or app.gen_task_name(self.__name__, self.__module__)
        self.max_retries = (
            conf.task_max_retries
            if merged["max_retries"] is None
            else merged["max_retries"]
        )
        self.default_retry_delay = float(
            conf.task_default_retry_delay
            if merged["default_retry_delay"] is None
            else merged["default_retry_delay"]
        )
        self.autoretry_for = tuple(merged["autoretry_for"] or ())
        self.dont_autoretry_for = tuple(merged["dont_autoretry_for"] or ())
        self.retry_kwargs = dict(merged["retry_kwargs"] or {})
        self.retry_backoff = merged["retry_backoff"]
        self.retry_backoff_max = float(merged["retry_backoff_max"])
        self.retry_jitter = bool(merged["retry_jitter"])
        self.rate_limit = (
            conf.task_default_rate_limit
            if merged["rate_limit"] is None
            else merged["rate_limit"]
        )
        if self.rate_limit is not None:
            from .worker._ratelimit import parse_rate

            parse_rate(self.rate_limit, where=f"task {self.name!r} rate_limit")
        self.time_limit = (
            conf.task_time_limit
            if merged["time_limit"] is None
            else merged["time_limit"]
        )
        self.soft_time_limit = (
            conf.task_soft_time_limit
            if merged["soft_time_limit"] is None
            else merged["soft_time_limit"]
        )

        def setting(option: str, name: str) -> bool:
            value = merged[option]
            return bool(getattr(conf, name) if value is None else value)

        self.acks_late = setting("acks_late", "task_acks_late")
        self.acks_on_failure_or_timeout = setting(
            "acks_on_failure_or_timeout", "task_acks_on_failure_or_timeout"
        )
        self.reject_on_worker_lost = setting(
            "reject_on_worker_lost", "task_reject_on_worker_lost"
        )
        self.ignore_result = setting("ignore_result", "task_ignore_result")
        self.store_errors_even_if_ignored = setting(
            "store_errors_even_if_ignored", "task_store_errors_even_if_ignored"
        )
        self.track_started = setting("track_started", "task_track_started")
        self.queue = merged["queue"]
        self.routing_key = merged["routing_key"]
        self.exchange = merged["exchange"]
        self.priority = merged["priority"]
        self.serializer = merged["serializer"]
        self.compression = merged["compression"]
        self.expires = merged["expires"]
        self.shadow = merged["shadow"]
        self.is_async = inspect.iscoroutinefunction(fn)
        self._signature: inspect.Signature | None = None

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_lookup_task, (self.app.main, self.name))

    # -- running here --------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function in this process, now (no message, no result stored)."""
        if self.bind:
            return self.fn(self, *args, **kwargs)  # type: ignore[no-any-return]
        return self.fn(*args, **kwargs)  # type: ignore[no-any-return]

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The task's body (the wrapped function, bound when ``bind=True``)."""
        return self(*args, **kwargs)

    @property
    def request(self) -> Context:
        """The request of the current call of this task (an empty one outside)."""
        found = _current.get()
        if found is None or found[0] is not self:
            return Context(task=self.name)
        return found[1]

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise TypeError if *args*/*kwargs* do not fit the function's signature."""
        if not self.typing:
            return
        if self._signature is None:
            try:
                sig = inspect.signature(self.fn)
            except (TypeError, ValueError):
                self.typing = False
                return
            if self.bind:
                params = list(sig.parameters.values())[1:]
                sig = sig.replace(parameters=params)
            self._signature = sig
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}{self._signature}: {exc}") from None

    # -- sending ---------------------------------------------------------------------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send the task with these arguments; return its result handle."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Send the task with call options.

        Options: ``countdown``, ``eta``, ``expires``, ``queue``, ``routing_key``,
        ``exchange``, ``priority``, ``serializer``, ``compression``, ``headers``,
        ``task_id``, ``link``, ``link_error``, ``retry``, ``retry_policy``,
        ``time_limit``, ``soft_time_limit``, ``ignore_result``, ``shadow``.

        Raises:
            TypeError: The arguments do not fit the task's signature.
        """
        args = tuple(args or ())
        kwargs = dict(kwargs or {})
        self.check_arguments(args, kwargs)
        if self.app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)  # type: ignore[return-value]
        return self.app.send_task(self.name, args, kwargs, _task=self, **options)

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """A signature of this task with partial arguments."""
        return Signature(self.name, args, kwargs, app=self.app)

    def si(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """An immutable signature: a parent's result is not prepended."""
        return Signature(self.name, args, kwargs, immutable=True, app=self.app)

    def signature(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature[R]:
        """A signature with arguments and call options."""
        immutable = bool(options.pop("immutable", False))
        return Signature(
            self.name, args, kwargs, options, immutable=immutable, app=self.app
        )

    subtask = signature

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """Run the task in this process now, as a worker would; return its result.

        Retries run again at once (their countdown is not waited for).
        """
        from .worker._trace import run_eager

        return run_eager(self, tuple(args or ()), dict(kwargs or {}), options)

    # -- inside a running task -------------------------------------------------------

    def retry(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> NoReturn:
        """Send this task again (same id, ``retries + 1``) and end this run.

        Raises:
            Retry: Always: the worker sends the new message, stores RETRY and
                acknowledges the original once the new one is sent.
            MaxRetriesExceededError: ``max_retries`` was reached and *exc* is
                ``None`` (otherwise *exc* itself is raised).
        """
        request = self.request
        if not request.id:
            raise RuntimeError(
                f"{self.name}.retry() was called outside a running task; call it "
                "from inside the task (bind=True gives the task as self)"
            )
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"can't retry {self.name}[{request.id}] args:{request.args} "
                f"kwargs:{request.kwargs}: max_retries={limit} reached"
            )
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        call_options: dict[str, Any] = {
            "task_id": request.id,
            "retries": request.retries + 1,
            "parent_id": request.parent_id,
            "root_id": request.root_id,
            "group_id": request.group,
            "group_index": request.group_index,
            "priority": request.delivery_info.get("priority"),
            "expires": request.expires,
            "reply_to": request.reply_to,
            "correlation_id": request.correlation_id,
            "time_limit": request.timelimit[0],
            "soft_time_limit": request.timelimit[1],
            "headers": dict(request.headers),
        }
        routing_key = request.delivery_info.get("routing_key")
        exchange = request.delivery_info.get("exchange") or ""
        came_from = request.delivery_info.get("queue")
        if came_from:
            # Back to the queue it came from: through a topic or fanout exchange
            # a retry would reach every bound queue again.
            call_options["queue"] = came_from
        elif routing_key:
            if exchange:
                call_options["exchange"] = exchange
                call_options["routing_key"] = routing_key
            else:
                call_options["queue"] = routing_key
        if request.callbacks:
            call_options["link"] = list(request.callbacks)
        if request.errbacks:
            call_options["link_error"] = list(request.errbacks)
        if request.chain:
            call_options["chain"] = list(request.chain)
        if request.chord:
            call_options["chord"] = request.chord
        if eta is not None:
            call_options["eta"] = eta
        else:
            call_options["countdown"] = countdown
        call_options.update(options)
        sig: Signature[Any] = Signature(
            self.name,
            request.args if args is None else args,
            request.kwargs if kwargs is None else kwargs,
            {k: v for k, v in call_options.items() if v is not None},
            app=self.app,
        )
        raise Retry(exc=exc, when=eta if eta is not None else countdown, sig=dict(sig))

    def backoff_countdown(self, retries: int) -> float:
        """The autoretry countdown before retry number *retries* + 1 (exponential)."""
        factor = self.retry_backoff
        if not factor:
            return float(self.retry_kwargs.get("countdown", self.default_retry_delay))
        factor = 1 if factor is True else float(factor)
        countdown = min(self.retry_backoff_max, factor * (2**retries))
        if self.retry_jitter:
            countdown = random.uniform(0, countdown)  # noqa: S311 - jitter, not crypto
        return max(0.0, float(countdown))

    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Any = None,
    ) -> None:
        """Store a (custom) state for this task, e.g. progress.

        ``self.update_state(state="PROGRESS", meta={"done": 10, "total": 100})``
        """
        target = task_id or self.request.id
        if not target:
            raise RuntimeError(
                "update_state() needs a task id: call it inside a running task or "
                "pass task_id"
            )
        self.app.backend.set_state(target, state or states.PENDING, meta=meta)

    # -- hooks for base classes ------------------------------------------------------

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Called before the task runs."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        """Called after the task returned."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called after the task raised."""

    def on_retry(
        self,
        exc: BaseException | None,
        task_id: str,
        args: Any,
        kwargs: Any,
        einfo: Any,
    ) -> None:
        """Called when the task is retried."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: Any,
        kwargs: Any,
        einfo: Any,
    ) -> None:
        """Called after the task finished, whatever the outcome."""

    def AsyncResult(self, task_id: str) -> AsyncResult[R]:  # noqa: N802 - Celery's name
        """A result handle for *task_id* of this task."""
        from .result import AsyncResult

        return AsyncResult(task_id, self.app, task_name=self.name)


def _class_options(cls: type) -> dict[str, Any]:
    """Options set as class attributes on a ``base=`` subclass."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is Task or not issubclass(klass, Task):
            continue
        for key in TASK_OPTIONS:
            if key in vars(klass):
                found[key] = vars(klass)[key]
    return found


def _lookup_task(app_name: str, task_name: str) -> Task[Any, Any]:
    from .app import find_app

    return find_app(app_name).tasks[task_name]


class EagerResult(Generic[R]):
    """The result of ``task.apply()``: already known, no backend involved."""

    def __init__(
        self,
        task_id: str,
        state: str,
        value: Any,
        traceback: str | None = None,
        task_name: str | None = None,
    ) -> None:
        self.id = task_id
        self.state = self.status = state
        self.result = self.info = value
        self.traceback = traceback
        self.task_name = task_name

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id} {self.state}>"

    def ready(self) -> bool:
        """Always true."""
        return True

    def successful(self) -> bool:
        """Whether the task succeeded."""
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        """Whether the task failed."""
        return self.state == states.FAILURE

    def get(self, timeout: float | None = None, propagate: bool = True, **_: Any) -> R:
        """Return the result, or raise the task's exception (*propagate*)."""
        if propagate and isinstance(self.result, BaseException):
            raise self.result
        return self.result  # type: ignore[no-any-return]

    wait = get

    def forget(self) -> None:
        """Nothing is stored; nothing to forget."""


def new_task_id() -> str:
    """A fresh task id (a UUID4 string, as Celery uses)."""
    return str(uuid.uuid4())
