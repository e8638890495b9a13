"""Running one task call: hooks, signals, retries, and the outcome to report.

:func:`execute` runs in the pool (a prefork child, a thread, a greenlet or
the asyncio loop) and returns an :class:`Outcome`; the worker's main process
writes the result, publishes retries and acknowledges. :func:`run_eager` is
``task.apply()``: the same code, in the calling thread.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import pickle
import threading
import time
import traceback as tb_module
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from queue_meta import signals, states
from queue_meta.errors import Ignore, Reject, Retry
from queue_meta.task import Context, Task, _current

if TYPE_CHECKING:
    from queue_meta.app import App
    from queue_meta.task import EagerResult

__all__ = ["Outcome", "execute", "execute_async", "run_eager", "set_worker_app"]

logger = logging.getLogger("queue_meta.worker")

_worker_app: App | None = None
_local = threading.local()
#: In a pool process of its own (prefork): wait for the broker's confirms of
#: what a task published before returning its outcome (streaming AMQP).
confirm_after_task = False


def set_worker_app(app: App | None) -> None:
    """Make *app* the one :func:`execute` runs tasks of (inherited by forks)."""
    global _worker_app
    _worker_app = app


def _resolve_app(app_ref: str) -> App:
    if _worker_app is not None and (
        app_ref in ("", _worker_app.main) or (_worker_app.import_path == app_ref)
    ):
        return _worker_app
    from queue_meta.app import find_app

    if ":" in app_ref:
        module, _, attribute = app_ref.partition(":")
        app: App = getattr(importlib.import_module(module), attribute)
        set_worker_app(app)
        return app
    return find_app(app_ref)


@dataclass(slots=True)
class Outcome:
    """How one call ended.

    Attributes:
        state: ``SUCCESS``, ``FAILURE``, ``RETRY``, ``IGNORED`` or ``REJECTED``.
        value: The return value, or the exception.
        traceback: Traceback text of a failure.
        retry: The signature dict to send for ``RETRY``.
        requeue: For ``REJECTED``: put the message back.
        runtime: Seconds the call ran.
    """

    state: str
    value: Any = None
    traceback: str | None = None
    retry: dict[str, Any] | None = None
    requeue: bool = False
    runtime: float = 0.0


def _loop() -> asyncio.AbstractEventLoop:
    """This thread's persistent event loop for ``async def`` tasks."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
    return loop


_green_loop: asyncio.AbstractEventLoop | None = None
_green_lock = threading.Lock()


def _green() -> bool:
    """Whether gevent or eventlet made threads into greenlets in this process."""
    import sys

    gevent = sys.modules.get("gevent.monkey")
    if gevent is not None and gevent.is_module_patched("threading"):
        return True
    patcher = sys.modules.get("eventlet.patcher")
    return bool(patcher is not None and patcher.is_monkey_patched("thread"))


def _run_coroutine(coroutine: Any) -> Any:
    """Run an ``async def`` task's coroutine on this thread's persistent loop.

    Under gevent/eventlet all greenlets share one OS thread, and asyncio
    allows one running loop per OS thread: there the coroutines of every
    greenlet run on one loop, kept running by a greenlet of its own.
    """
    if not _green():
        return _loop().run_until_complete(coroutine)
    global _green_loop
    with _green_lock:
        if _green_loop is None or _green_loop.is_closed():
            _green_loop = asyncio.new_event_loop()
            threading.Thread(
                target=_green_loop.run_forever, name="queue-meta-asyncio", daemon=True
            ).start()
        loop = _green_loop
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


_HOOKS = frozenset(
    ("before_start", "on_success", "on_failure", "on_retry", "after_return")
)
#: The hooks each task class overrides (Task's own do nothing: not called).
_OVERRIDDEN: dict[type, frozenset[str]] = {}


def _overrides(task: Task[Any, Any]) -> frozenset[str]:
    kind = type(task)
    found = _OVERRIDDEN.get(kind)
    if found is None:
        found = frozenset(
            name for name in _HOOKS if getattr(kind, name) is not getattr(Task, name)
        )
        _OVERRIDDEN[kind] = found
    own = task.__dict__.keys() & _HOOKS
    return found | own if own else found


def _hook(name: str, fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        logger.exception("task hook %s raised", name)


def _begin(task: Task[Any, Any], ctx: Context) -> Any:
    token = _current.set((task, ctx))
    signals.task_prerun.send(
        sender=task, task_id=ctx.id, task=task, args=ctx.args, kwargs=ctx.kwargs
    )
    if "before_start" in _overrides(task):
        _hook("before_start", task.before_start, ctx.id, ctx.args, ctx.kwargs)
    if task.track_started and not ctx.is_eager:
        try:
            task.app.backend.set_state(
                ctx.id,
                states.STARTED,
                meta={"pid": os.getpid(), "hostname": ctx.hostname},
            )
        except Exception:
            logger.exception("could not store STARTED for %s[%s]", task.name, ctx.id)
    return token


def _failure(task: Task[Any, Any], ctx: Context, exc: BaseException) -> Outcome:
    """Turn an exception into RETRY (autoretry) or FAILURE."""
    if isinstance(exc, Retry):
        return _retried(task, ctx, exc)
    if isinstance(exc, Ignore):
        return Outcome(states.IGNORED)
    if isinstance(exc, Reject):
        return Outcome(states.REJECTED, exc, requeue=exc.requeue)
    if (
        task.autoretry_for
        and isinstance(exc, task.autoretry_for)
        and not (task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for))
    ):
        options = dict(task.retry_kwargs)
        options.setdefault("countdown", task.backoff_countdown(ctx.retries))
        try:
            task.retry(exc=exc, **options)
        except Retry as retry:
            return _retried(task, ctx, retry)
        except BaseException as final:  # noqa: BLE001 - max retries: fail with it
            exc = final
    text = "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))
    _hook("on_failure", task.on_failure, exc, ctx.id, ctx.args, ctx.kwargs, text)
    signals.task_failure.send(
        sender=task,
        task_id=ctx.id,
        exception=exc,
        args=ctx.args,
        kwargs=ctx.kwargs,
        traceback=exc.__traceback__,
        einfo=text,
    )
    return Outcome(states.FAILURE, exc, text)


def _retried(task: Task[Any, Any], ctx: Context, retry: Retry) -> Outcome:
    text = None
    if retry.exc is not None:
        text = "".join(
            tb_module.format_exception(
                type(retry.exc), retry.exc, retry.exc.__traceback__
            )
        )
    _hook("on_retry", task.on_retry, retry.exc, ctx.id, ctx.args, ctx.kwargs, text)
    signals.task_retry.send(sender=task, request=ctx, reason=retry, einfo=text)
    return Outcome(states.RETRY, retry, text, retry=retry.sig)


def _end(task: Task[Any, Any], ctx: Context, outcome: Outcome, token: Any) -> Outcome:
    hooks = _overrides(task)
    try:
        if outcome.state == states.SUCCESS:
            if "on_success" in hooks:
                _hook(
                    "on_success",
                    task.on_success,
                    outcome.value,
                    ctx.id,
                    ctx.args,
                    ctx.kwargs,
                )
            signals.task_success.send(sender=task, result=outcome.value)
        if "after_return" in hooks:
            _hook(
                "after_return",
                task.after_return,
                outcome.state,
                outcome.value,
                ctx.id,
                ctx.args,
                ctx.kwargs,
                outcome.traceback,
            )
        signals.task_postrun.send(
            sender=task,
            task_id=ctx.id,
            task=task,
            args=ctx.args,
            kwargs=ctx.kwargs,
            retval=outcome.value,
            state=outcome.state,
        )
    finally:
        _current.reset(token)
    return outcome


def trace(task: Task[Any, Any], ctx: Context) -> Outcome:
    """Run *task* with the request *ctx* in this thread; never raises."""
    started = time.perf_counter()
    token = _begin(task, ctx)
    try:
        value = task.run(*ctx.args, **ctx.kwargs)
        if task.is_async:
            value = _run_coroutine(value)
        outcome = Outcome(states.SUCCESS, value)
    except Exception as exc:  # noqa: BLE001 - every task error is an outcome
        outcome = _failure(task, ctx, exc)
    outcome.runtime = time.perf_counter() - started
    return _end(task, ctx, outcome, token)


async def trace_async(task: Task[Any, Any], ctx: Context) -> Outcome:
    """Run an ``async def`` task on the running loop (the asyncio pool)."""
    started = time.perf_counter()
    token = _begin(task, ctx)
    try:
        outcome = Outcome(states.SUCCESS, await task.run(*ctx.args, **ctx.kwargs))
    except Exception as exc:  # noqa: BLE001 - every task error is an outcome
        outcome = _failure(task, ctx, exc)
    outcome.runtime = time.perf_counter() - started
    return _end(task, ctx, outcome, token)


def _portable(outcome: Outcome) -> Outcome:
    """Make a failure's exception survive pickling to the worker process."""
    if outcome.state in (states.FAILURE, states.RETRY) and outcome.value is not None:
        try:
            pickle.loads(pickle.dumps(outcome.value))  # noqa: S301 - our own bytes
        except Exception:  # noqa: BLE001 - any pickling problem
            exc = outcome.value
            outcome.value = RuntimeError(
                f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
            )
            if outcome.state == states.RETRY and isinstance(exc, Retry):
                outcome.value = Retry(exc.message, None, exc.when, exc.sig)
    return outcome


def _context(request: dict[str, Any]) -> Context:
    return Context(**request)


def execute(app_ref: str, name: str, request: dict[str, Any]) -> Outcome:
    """The pool's callable: run task *name* of the app *app_ref* with *request*."""
    app = _resolve_app(app_ref)
    outcome = _portable(trace(app.tasks[name], _context(request)))
    if confirm_after_task:
        transport = app._transport
        if transport is not None and transport.unconfirmed:
            transport.flush()  # raises: the task's message is not acked
    return outcome


async def execute_async(app_ref: str, name: str, request: dict[str, Any]) -> Outcome:
    """The asyncio pool's callable for ``async def`` tasks."""
    app = _resolve_app(app_ref)
    return await trace_async(app.tasks[name], _context(request))


def run_eager(
    task: Task[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: dict[str, Any],
) -> EagerResult[Any]:
    """``task.apply()``: run now in this thread, retries included."""
    from queue_meta.task import EagerResult, new_task_id

    task_id = options.get("task_id") or new_task_id()
    retries = int(options.get("retries") or 0)
    propagate = options.get("throw", task.app.conf.task_eager_propagates)
    while True:
        ctx = Context(
            id=task_id,
            task=task.name,
            args=list(args),
            kwargs=dict(kwargs),
            retries=retries,
            is_eager=True,
            root_id=task_id,
            delivery_info={"is_eager": True},
        )
        outcome = trace(task, ctx)
        if outcome.state == states.RETRY and outcome.retry is not None:
            retries += 1
            args = tuple(outcome.retry.get("args") or args)
            kwargs = dict(outcome.retry.get("kwargs") or kwargs)
            continue
        break
    if outcome.state == states.FAILURE and propagate:
        raise outcome.value
    return EagerResult(
        task_id, outcome.state, outcome.value, outcome.traceback, task.name
    )
