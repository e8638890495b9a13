"""The worker: fetch task messages in batches, run them in a pool, report.

::

    broker --(batch fetch, bounded prefetch)--> consumer loop (main thread)
      decode -> verify -> accept-list -> known task? revoked? expired?
      -> ETA timer / rate-limit bucket -> pool
    pool --(done)--> finisher thread: results written in one batch, retries
      published, then the messages acknowledged in one batch

Delivery is at-least-once by default (``task_acks_late``): a message is
acknowledged after its result is written. Warm shutdown (first SIGTERM or
SIGINT) stops fetching, lets running tasks finish and returns the messages
it had not started; a second signal (or SIGQUIT) stops at once and leaves
unacknowledged messages to the broker.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import json
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgwire import TaskMessage
from pools import TerminatedError, TimeLimitExceeded, WorkerLostError
from queue_meta import signals, states
from queue_meta.canvas import signature
from queue_meta.control import CONTROL_EXCHANGE, REVOKE_EXPIRES, recall_revoked
from queue_meta.errors import (
    DeliveryLimitError,
    ImproperlyConfiguredError,
    NotRegisteredError,
    Retry,
)
from queue_meta.messaging import declare_queue, task_queue_entries

from ._ratelimit import TokenBucket, parse_rate
from ._trace import Outcome, execute, execute_async, set_worker_app

if TYPE_CHECKING:
    from pools import Pool
    from queue_meta.app import App
    from queue_meta.task import Task
    from transports import Consumer, Delivery

__all__ = ["LOST_HEADER", "Worker", "check_heartbeat"]

logger = logging.getLogger("queue_meta.worker")

#: Header counting how often a pool process died running the message's task;
#: ``task_delivery_limit`` dead-letters the message when it reaches the limit.
LOST_HEADER = "x-queue-meta-lost"

#: The longest a worker holds an ETA task unacknowledged on RabbitMQ: half its
#: default consumer_timeout, which closes channels of older deliveries.
AMQP_HOLD_LIMIT = 900.0

#: Message properties a copy of a delivery keeps (parked, requeued, dead-lettered).
_COPIED_PROPERTIES = (
    "content_type", "content_encoding", "correlation_id", "reply_to", "priority",
)  # fmt: skip


@dataclass(eq=False)
class Request:
    """One task message the worker is handling."""

    delivery: Delivery
    message: TaskMessage
    task: Task[Any, Any]
    acked: bool = False
    future: Any = None
    held: bool = False
    #: Held in memory until its ETA (counts against ``worker_eta_limit``).
    waiting: bool = False

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def name(self) -> str:
        return self.message.task


def expand_hostname(value: str | None) -> str:
    """Expand ``%h`` (host), ``%n`` (name part) and ``%d`` (domain) in a node name."""
    host = socket.gethostname()
    name, _, domain = host.partition(".")
    text = value or "queue@%h"
    return text.replace("%h", host).replace("%n", name).replace("%d", domain)


def _app_reference(app: App) -> str:
    """``module:attribute`` under which pool processes find *app*."""
    if app.import_path:
        return app.import_path
    for module_name, module in list(sys.modules.items()):
        if module_name == "__main__" or module is None:
            continue
        try:
            items = list(vars(module).items())
        except TypeError:
            continue
        for attribute, value in items:
            if value is app:
                return f"{module_name}:{attribute}"
    return app.main


class Worker:
    """Consumes task messages of an app and runs them.

    Args:
        app: The app whose tasks run.
        queues: Queue names (default: those of ``task_queues``, else
            ``task_default_queue``).
        concurrency: Pool size (default: the setting, else the CPU count).
        pool: ``prefork``, ``threads``, ``solo``, ``eventlet``, ``gevent``, ``asyncio``.
        hostname: Node name; ``%h`` is the host name.
        prefetch_multiplier: Unacknowledged messages per pool slot (0: no limit).
        max_tasks_per_child: Replace a pool worker after this many tasks.
        max_memory_per_child: Replace a prefork child above this RSS (KiB).
        autoscale: ``(max, min)`` pool size bounds, resized with the load.
        time_limit: Hard time limit for every task, seconds.
        soft_time_limit: Soft time limit for every task, seconds.
        statedb: File keeping revoked task ids across restarts.
        heartbeat_file: Liveness file rewritten every second by the consume
            loop (see :func:`check_heartbeat`).
    """

    def __init__(
        self,
        app: App,
        *,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
        hostname: str | None = None,
        prefetch_multiplier: int | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        autoscale: tuple[int, int] | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        statedb: str | None = None,
        heartbeat_file: str | None = None,
    ) -> None:
        conf = app.conf
        self.app = app
        configured = [entry["name"] for entry in task_queue_entries(app)]
        self.queues = list(queues or configured or [conf.task_default_queue])
        self.pool_kind = pool or conf.worker_pool
        if autoscale is not None:
            high, low = autoscale
            if not 0 <= low <= high or high < 1:
                raise ValueError(
                    f"autoscale must be MAX,MIN with MAX >= MIN >= 0, got {autoscale}"
                )
            concurrency = max(low, 1)
        self.autoscale = autoscale
        size = concurrency or conf.worker_concurrency or os.cpu_count() or 1
        if self.pool_kind == "solo":
            size = 1
        self.concurrency = size
        self.hostname = expand_hostname(hostname or conf.worker_hostname)
        multiplier = (
            conf.worker_prefetch_multiplier
            if prefetch_multiplier is None
            else prefetch_multiplier
        )
        high = autoscale[0] if autoscale else size
        self.prefetch = 10_000 if multiplier == 0 else max(1, high * multiplier)
        self.max_tasks_per_child = (
            max_tasks_per_child or conf.worker_max_tasks_per_child
        )
        self.max_memory_per_child = (
            max_memory_per_child or conf.worker_max_memory_per_child
        )
        self.time_limit = time_limit
        self.soft_time_limit = soft_time_limit
        self.statedb = statedb or conf.worker_state_db
        self.heartbeat_file = heartbeat_file or conf.worker_heartbeat_file
        self._last_beat = 0.0
        self.app_ref = _app_reference(app)
        self.pool: Pool | None = None
        self.consumer: Consumer | None = None
        self.active: dict[str, Request] = {}
        self.revoked: dict[str, float] = {}
        self.processed = 0
        self.failed = 0
        self._stopping = threading.Event()
        self._cold = False
        self._finished: queue.SimpleQueue[Request | Callable[[], None] | None] = (
            queue.SimpleQueue()
        )
        self._finisher: threading.Thread | None = None
        self._finish_lock = threading.Lock()
        #: Solo pool: tasks run in the loop's thread, which also finishes them
        #: (results, acks) after each batch, without a hand-off to the finisher.
        self._done_here: list[Request] | None = None
        self._loop_thread = 0
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._buckets: dict[str, TokenBucket | None] = {}
        self._limited: dict[str, list[Request]] = {}
        self._held = 0
        self._waiting = 0
        self.eta_limit = conf.worker_eta_limit
        self.eta_horizon = conf.worker_eta_horizon
        #: task_delivery_limit where the broker counts deliveries (set when
        #: consuming starts), else None.
        self._counted_limit: int | None = None
        self._parking: list[tuple[Request, float]] = []
        self._burst = 0
        self._control_queue: str | None = None
        self.ready = threading.Event()

    # -- lifecycle -------------------------------------------------------------------

    def banner(self) -> str:
        """The startup text: node, broker, results, pool, queues, tasks."""
        app = self.app
        from queue_meta.app import _mask

        lines = [
            f"queue-meta worker {self.hostname}",
            f"  app:         {app.main}",
            f"  broker:      {_mask(app.broker_url)}",
            f"  results:     {_mask(app.result_backend_url)}",
            f"  pool:        {self.pool_kind} (concurrency {self.concurrency})",
            f"  prefetch:    {self.prefetch}",
            f"  queues:      {', '.join(self.queues)}",
        ]
        if app.uses_embedded_default:
            lines.append(f"  files:       {app.home}")
        user = sorted(name for name in app.tasks if not name.startswith("celery."))
        lines.append("  tasks:")
        lines.extend(f"    . {name}" for name in user)
        return "\n".join(lines)

    def start(self) -> None:
        """Run until :meth:`stop` (or a signal, in the main thread); blocks.

        Raises:
            ImproperlyConfiguredError: The heartbeat file cannot be written.
        """
        if self.heartbeat_file:
            folder = os.path.dirname(os.path.abspath(self.heartbeat_file))
            if not os.access(folder, os.W_OK):
                raise ImproperlyConfiguredError(
                    f"cannot write the heartbeat file {self.heartbeat_file}: "
                    f"{folder} does not exist or is not writable; choose another "
                    "--heartbeat-file"
                )
        self._load_state()
        set_worker_app(self.app)
        self.app.import_modules()
        signals.worker_init.send(sender=self)
        self.pool = self._create_pool()
        if self.pool_kind == "solo":
            self._done_here = []
            self._loop_thread = threading.get_ident()
        try:
            self._open_consumer()
            self._finisher = threading.Thread(
                target=self._finish_loop, name="queue-meta-finisher", daemon=True
            )
            self._finisher.start()
            logger.info("%s ready.", self.hostname)
            signals.worker_ready.send(sender=self)
            self.ready.set()
            self._loop()
        finally:
            self._shutdown()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: warm shutdown, a second one cold; SIGQUIT: cold."""

        def warm(signum: int, frame: Any) -> None:
            if self._stopping.is_set():
                logger.warning("second signal: cold shutdown")
                self.stop(cold=True)
            else:
                logger.warning(
                    "warm shutdown: running tasks finish, the others of the %d taken "
                    "go back to the queue (signal again to stop now)",
                    len(self.active),
                )
                self.stop()

        def cold(signum: int, frame: Any) -> None:
            logger.warning(
                "cold shutdown: stopping %d tasks now; the broker delivers them again",
                len(self.active),
            )
            self.stop(cold=True)

        signal.signal(signal.SIGTERM, warm)
        signal.signal(signal.SIGINT, warm)
        if hasattr(signal, "SIGQUIT"):
            signal.signal(signal.SIGQUIT, cold)

    def stop(self, *, cold: bool = False) -> None:
        """Ask the worker to stop (warm by default); returns at once."""
        self._cold = self._cold or cold
        self._stopping.set()
        if self.consumer is not None:
            with contextlib.suppress(Exception):  # best effort, from a signal handler
                self.consumer.interrupt()
        if cold and self.pool is not None:
            # The finisher stops first: the calls stopped now end with
            # TerminatedError, which it would store as REVOKED and acknowledge;
            # their messages must stay unacknowledged so the broker redelivers.
            self._finished.put(None)
            self.pool.shutdown(wait=False, cancel_futures=True)

    def _create_pool(self) -> Pool:
        from pools import create_pool

        options: dict[str, Any] = {"size": self.concurrency}
        if self.pool_kind == "prefork":
            options["initializer"] = _process_init
            options["initargs"] = (self.app_ref,)
            if self.max_memory_per_child:
                options["max_memory_per_child_kib"] = self.max_memory_per_child
        if self.max_tasks_per_child and self.pool_kind in ("prefork", "threads"):
            options["max_tasks_per_child"] = self.max_tasks_per_child
        return create_pool(self.pool_kind, **options)

    def _open_consumer(self) -> None:
        transport = self.app.transport
        if transport.name == "amqp" and self.eta_horizon > AMQP_HOLD_LIMIT:
            # RabbitMQ closes the channel of a delivery unacked longer than its
            # consumer_timeout (30 min by default): never hold one that long.
            logger.warning(
                "worker_eta_horizon %g s is too long for RabbitMQ's consumer_timeout;"
                " holding ETA tasks at most %g s",
                self.eta_horizon,
                AMQP_HOLD_LIMIT,
            )
            self.eta_horizon = AMQP_HOLD_LIMIT
        if transport.capabilities.delivery_count:
            self._counted_limit = self.app.conf.task_delivery_limit
        for name in self.queues:
            declare_queue(self.app, name)
        consumer = transport.consumer(self.queues, prefetch=self.prefetch)
        if transport.capabilities.fanout:
            try:
                transport.declare_exchange(CONTROL_EXCHANGE, "fanout", durable=False)
                self._control_queue = consumer.subscribe(CONTROL_EXCHANGE)
            except Exception as exc:  # noqa: BLE001 - remote control is optional
                logger.warning("remote control is off: %s", exc)
        self.consumer = consumer
        try:
            self.revoked.update(recall_revoked(self.app))
        except Exception as exc:  # noqa: BLE001 - the live broadcasts still reach it
            logger.warning(
                "could not read the revoked task ids kept by the broker: %s", exc
            )

    def _shutdown(self) -> None:
        consumer = self.consumer
        cold = self._cold
        if self.pool is not None:
            # Warm: calls that have not started are cancelled, and _finish
            # returns their messages to the queue, unless one was acknowledged
            # on receipt (acks_late=False): cancelling that one would lose it.
            early = any(request.acked for request in list(self.active.values()))
            self.pool.shutdown(wait=not cold, cancel_futures=cold or not early)
        self._finish_here()
        if self._finisher is not None:
            self._finished.put(None)
            self._finisher.join(timeout=None if not cold else 5.0)
        if consumer is not None:
            consumer.close(requeue=not cold)
        self._save_state()
        if self.heartbeat_file:
            with contextlib.suppress(OSError):
                os.unlink(self.heartbeat_file)
        signals.worker_shutdown.send(sender=self)
        set_worker_app(None)
        logger.info(
            "%s stopped: %d tasks processed (%d failed)", self.hostname, self.processed,
            self.failed,
        )  # fmt: skip

    # -- the consumer loop -----------------------------------------------------------

    def _loop(self) -> None:
        from transports import TransportConnectionError

        consumer = self.consumer
        assert consumer is not None  # noqa: S101 - set by start()
        while not self._stopping.is_set():
            wait = self._run_timers()
            self._finish_here()
            try:
                batch = consumer.fetch(timeout=min(wait, 1.0))
            except TransportConnectionError as exc:
                # The broker is away for longer than one fetch retries: the
                # transport logged the outage once and reconnects; wait for it
                # here instead of letting the worker die.
                logger.debug("fetching failed: %s; trying again", exc)
                self._stopping.wait(min(wait, 1.0))
                batch = []
            if self.heartbeat_file:
                self._beat()
            for delivery in batch:
                if delivery.queue == self._control_queue:
                    self._on_control(delivery)
                    continue
                try:
                    self._on_message(delivery)
                except Exception as exc:
                    logger.exception(
                        "could not handle %r; %s",
                        delivery,
                        self._dead_letter(delivery, f"worker error: {exc!r}"),
                    )
            parked = len(self._parking)
            if parked:
                self._park_all()
            self._finish_here()
            self._adapt_burst(parked, len(batch))
            if self.autoscale:
                self._autoscale()

    def _run_timers(self) -> float:
        """Run due timers; return seconds until the next one."""
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, callback = heapq.heappop(self._timers)
            try:
                callback()
            except Exception:
                logger.exception("a worker timer failed")
            now = time.monotonic()
        return self._timers[0][0] - now if self._timers else 1.0

    def _call_later(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(
            self._timers, (time.monotonic() + delay, next(self._seq), callback)
        )

    def _settle(self, delivery: Delivery, *, requeue: bool) -> None:
        try:
            delivery.reject(requeue=requeue)
        except Exception:
            logger.exception("could not reject %r", delivery)

    def _on_message(self, delivery: Delivery) -> None:
        app = self.app
        try:
            message = TaskMessage.decode(
                delivery.body,
                delivery.headers,
                delivery.properties,
                registry=app.registry,
            )
        except Exception as exc:  # noqa: BLE001 - any decode or verification error
            reason = f"{type(exc).__name__}: {exc}"
            logger.error(
                "rejected a message from queue %r that cannot be used (%s); %s",
                delivery.queue,
                reason,
                self._dead_letter(delivery, reason),
            )
            return
        task = app.tasks.get(message.task)
        if task is None:
            self._store(message, states.FAILURE, NotRegisteredError(message.task))
            logger.error(
                "received unregistered task %r (id %s); %s. Is the module that defines "
                "it imported by the worker (-A, imports, include)?",
                message.task,
                message.id,
                self._dead_letter(delivery, f"unregistered task {message.task!r}"),
            )
            return
        request = Request(delivery, message, task)
        signals.task_received.send(sender=self, request=request)
        if message.id in self.revoked:
            self._discard(request, "revoked")
            return
        now = datetime.now(timezone.utc)
        if message.expires is not None and message.expires <= now:
            self._discard(request, "expired")
            return
        limit = self._counted_limit
        if limit is not None and delivery.delivery_count > limit:
            self._exhausted(request, limit)
            return
        if message.eta is not None and message.eta > now:
            delay = (message.eta - now).total_seconds()
            if self._parks(delay):
                self._parking.append((request, delay))
                return
            logger.info(
                "task %s[%s] scheduled for %s", message.task, message.id, message.eta
            )
            self._hold_until_due(request, delay)
            return
        self._rate_limited(request)

    # -- ETA parking -----------------------------------------------------------------

    def _hold_until_due(self, request: Request, delay: float) -> None:
        """Keep a future task here (unacked) and release it in *delay* seconds."""
        self._hold(request)
        request.waiting = True
        self._waiting += 1
        self._call_later(delay, functools.partial(self._release, request))

    def _parks(self, delay: float) -> bool:
        """Whether a task due in *delay* seconds goes back to the broker to wait.

        The worker holds a future task itself only when it is due within
        ``worker_eta_horizon`` and fewer than ``worker_eta_limit`` are held;
        others wait broker-side, where the transport delays delivery.
        """
        if delay <= 1.0 or not self.app.transport.capabilities.delayed_delivery:
            return False
        return delay > self.eta_horizon or self._waiting >= self.eta_limit

    def _park_all(self) -> None:
        """Publish the batch of future tasks again, delayed, then ack the originals.

        Each copy comes back about half a horizon before it is due, so the
        worker that then holds it runs it on time. Publishing before acking
        means a crash in between leaves a duplicate message, never a lost one.
        """
        from transports import Message

        parking, self._parking = self._parking, []
        longest = self.app.transport.capabilities.max_delay
        messages: list[Message] = []
        for request, delay in parking:
            wait = max(1.0, delay - self.eta_horizon / 2)
            if longest is not None:
                wait = min(wait, longest)
            messages.append(_copy(request.delivery, request.delivery.queue, delay=wait))
        try:
            self.app.transport.publish_many(messages)
            self.app.transport.flush()
        except Exception as exc:  # noqa: BLE001 - keep them here rather than lose them
            logger.warning(
                "could not park %d future tasks broker-side (%s); holding them here",
                len(parking),
                exc,
            )
            for request, delay in parking:
                self._hold_until_due(request, delay)
            return
        try:
            self.app.transport.ack_many([request.delivery for request, _ in parking])
        except Exception:
            logger.exception("could not acknowledge %d parked tasks", len(parking))
        logger.debug("parked %d future tasks broker-side", len(parking))

    def _dead_letter(self, delivery: Delivery, reason: str) -> str:
        """Move a rejected message aside (publish, then ack); say where it went.

        The copy goes to ``task_dead_letter_queue`` with the reason in its
        headers. Publishing before acknowledging means a crash in between
        leaves a duplicate in the dead-letter queue, never a lost message.
        """
        from transports.base import DEATH_QUEUE, DEATH_REASON

        template = self.app.conf.task_dead_letter_queue
        if not template:
            self._settle(delivery, requeue=False)
            return "dropped (task_dead_letter_queue is None)"
        target = template.replace("{queue}", delivery.queue)
        copy = _copy(
            delivery,
            target,
            headers={DEATH_REASON: reason, DEATH_QUEUE: delivery.queue},
        )
        try:
            declare_queue(self.app, target)
            self.app.transport.publish_many([copy])
            self.app.transport.flush()
        except Exception as exc:  # noqa: BLE001 - keep serving; say what happened
            self._settle(delivery, requeue=False)
            return (
                f"could not move it to the dead-letter queue {target!r} ({exc}), "
                "so it was rejected (dropped unless the queue dead-letters)"
            )
        try:
            delivery.ack()
        except Exception:
            logger.exception("could not acknowledge %r", delivery)
        return f"moved to the dead-letter queue {target!r}"

    def _hold(self, request: Request) -> None:
        """Keep *request* locally (ETA, rate limit) without blocking the window."""
        request.held = True
        self._held += 1
        self._widen_window()

    def _unhold(self, request: Request) -> None:
        if request.held:
            request.held = False
            self._held -= 1
            self._widen_window()

    def _widen_window(self) -> None:
        """Held requests (and a parking burst) do not count against the window."""
        if self.consumer is not None:
            self.consumer.prefetch = self.prefetch + self._held + self._burst

    def _adapt_burst(self, parked: int, fetched: int) -> None:
        """Fetch more at a time while every message fetched is parked.

        A backlog of far-future tasks is parked in batches of up to 256 per
        round trip instead of one prefetch window each; the first batch with
        a task to run ends the burst (fair dispatch again).
        """
        burst = min(max(2 * self._burst, 16), 256) if parked == fetched > 0 else 0
        if burst != self._burst:
            self._burst = burst
            self._widen_window()

    def _release(self, request: Request, *, token_taken: bool = False) -> None:
        if request.waiting:
            request.waiting = False
            self._waiting -= 1
        self._unhold(request)
        if request.id in self.revoked:
            self._discard(request, "revoked")
            return
        expires = request.message.expires
        if expires is not None and expires <= datetime.now(timezone.utc):
            self._discard(request, "expired")
            return
        if token_taken:
            self._dispatch(request)
        else:
            self._rate_limited(request)

    def _discard(self, request: Request, why: str) -> None:
        logger.info("discarding %s task %s[%s]", why, request.name, request.id)
        self._store(request.message, states.REVOKED, None, reason=why)
        signals.task_revoked.send(
            sender=self, request=request, terminated=False, signum=None,
            expired=why == "expired",
        )  # fmt: skip
        try:
            self.app.transport.flush()  # the state sent over rpc://, if any
            request.delivery.ack()
        except Exception:
            logger.exception("could not acknowledge %s", request.id)

    def _rate_limited(self, request: Request) -> None:
        task = request.task
        if self.app.conf.worker_disable_rate_limits or task.rate_limit is None:
            self._dispatch(request)
            return
        if task.name not in self._buckets:
            rate = parse_rate(task.rate_limit)
            self._buckets[task.name] = TokenBucket(rate) if rate else None
        bucket = self._buckets[task.name]
        waiting = self._limited.setdefault(task.name, [])
        if bucket is None or (not waiting and bucket.take()):
            self._dispatch(request)
            return
        if not request.held:
            self._hold(request)
        waiting.append(request)
        if len(waiting) == 1:
            self._call_later(bucket.wait_time(), lambda: self._drain_bucket(task.name))

    def _drain_bucket(self, name: str) -> None:
        bucket = self._buckets.get(name)
        waiting = self._limited.get(name) or []
        while waiting and bucket is not None and bucket.take():
            self._release(waiting.pop(0), token_taken=True)
        if waiting and bucket is not None:
            self._call_later(bucket.wait_time(), lambda: self._drain_bucket(name))

    def _dispatch(self, request: Request) -> None:
        message, task = request.message, request.task
        self._unhold(request)
        if not task.acks_late:
            request.delivery.ack()
            request.acked = True
        hard = message.timelimit.hard or task.time_limit or self.time_limit
        soft = message.timelimit.soft or task.soft_time_limit or self.soft_time_limit
        if hard is not None and soft is not None and soft >= hard:
            soft = None
        context = self._context(request)
        assert self.pool is not None  # noqa: S101 - set by start()
        func: Any = execute
        if task.is_async and self.pool_kind == "asyncio":
            func = execute_async
        self.active[request.id] = request
        try:
            future = self.pool.submit_call(
                func,
                (self.app_ref, task.name, context),
                {},
                soft_time_limit=soft,
                time_limit=hard,
            )
        except Exception as exc:  # noqa: BLE001 - the pool refused the call
            self.active.pop(request.id, None)
            logger.error("could not start %s[%s]: %s", task.name, request.id, exc)
            self._store(request.message, states.FAILURE, exc)
            if not request.acked:
                self._settle(request.delivery, requeue=False)
            return
        request.future = future
        future.add_done_callback(functools.partial(self._on_done, request))

    def _on_done(self, request: Request, future: Any) -> None:
        done = self._done_here
        if done is not None and threading.get_ident() == self._loop_thread:
            done.append(request)  # finished by _finish_here after this batch
        else:
            self._finished.put(request)

    def _finish_here(self) -> None:
        """Finish the solo pool's tasks of this batch in the loop's thread.

        One batch of result writes and acks, as the finisher would do, but
        without waking it: a round trip's result leaves at once instead of
        waiting for the finisher thread to get the GIL from this loop.
        """
        done = self._done_here
        if not done:
            return
        batch = done[:]
        done.clear()
        self._finishing(
            functools.partial(self._finish, batch, here=True),
            f"finishing {len(batch)} tasks",
        )

    def _finishing(self, step: Callable[[], None], what: str) -> None:
        """Run one finishing *step* under the finish lock; log a failure
        instead of letting it end the loop or the finisher."""
        try:
            with self._finish_lock:
                step()
        except Exception:
            logger.exception("%s failed", what)

    def _context(self, request: Request) -> dict[str, Any]:
        message, delivery = request.message, request.delivery
        embed = message.embed
        return {
            "id": message.id,
            "task": message.task,
            "args": list(message.args),
            "kwargs": dict(message.kwargs),
            "retries": message.retries,
            "hostname": self.hostname,
            "delivery_info": {
                "exchange": delivery.exchange,
                "routing_key": delivery.routing_key,
                "queue": delivery.queue,
                "priority": delivery.properties.get("priority"),
                "redelivered": delivery.redelivered,
            },
            "eta": message.eta,
            "expires": message.expires,
            "parent_id": message.parent_id,
            "root_id": message.root_id,
            "group": message.group,
            "group_index": message.group_index,
            "correlation_id": message.correlation_id,
            "reply_to": message.reply_to or None,
            "timelimit": (message.timelimit.hard, message.timelimit.soft),
            "headers": dict(message.headers),
            "callbacks": embed.callbacks,
            "errbacks": embed.errbacks,
            "chain": embed.chain,
            "chord": embed.chord,
            "ignore_result": message.ignore_result,
            "origin": message.origin,
        }

    # -- finishing -------------------------------------------------------------------

    def _finish_loop(self) -> None:
        while True:
            first = self._finished.get()
            if first is None:
                return
            batch: list[Request] = []
            calls: list[Callable[[], None]] = []  # acks _finish_here left here
            stop = False
            item: Request | Callable[[], None] | None = first
            while True:
                if callable(item):
                    calls.append(item)
                else:
                    assert item is not None  # noqa: S101 - for mypy; checked below
                    batch.append(item)
                if len(batch) >= 500:
                    break
                try:
                    item = self._finished.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
            if batch:
                self._finishing(
                    functools.partial(self._finish, batch),
                    f"finishing {len(batch)} tasks",
                )
            for call in calls:
                self._finishing(call, "acknowledging finished tasks")
            if stop:
                return

    def _outcome(self, request: Request) -> Outcome:
        future = request.future
        try:
            result: Outcome = future.result()
            return result
        except CancelledError:
            return Outcome("CANCELLED")
        except TerminatedError as exc:
            return Outcome(states.REVOKED, exc)
        except WorkerLostError as exc:
            if request.task.reject_on_worker_lost and not request.acked:
                return Outcome("LOST", exc)
            return Outcome(states.FAILURE, exc, f"{type(exc).__name__}: {exc}")
        except TimeLimitExceeded as exc:
            return Outcome(states.FAILURE, exc, f"{type(exc).__name__}: {exc}")
        except BaseException as exc:  # noqa: BLE001 - the pool's own failure
            return Outcome(states.FAILURE, exc, f"{type(exc).__name__}: {exc}")

    def _finish(self, batch: list[Request], *, here: bool = False) -> None:
        """Write the results of *batch*, send retries and callbacks, then ack
        (*here*: in the loop's thread, which leaves waiting for confirms to
        the finisher)."""
        from resultstores import ResultWrite, TaskInfo

        writes: list[ResultWrite] = []
        acks: list[Request] = []
        rejects: list[tuple[Request, bool]] = []
        extended = self.app.conf.result_extended
        for request in batch:
            outcome = self._outcome(request)
            self.active.pop(request.id, None)
            task, message = request.task, request.message
            info = None
            if extended:
                info = TaskInfo(
                    name=task.name, args=list(message.args),
                    kwargs=dict(message.kwargs),
                    worker=self.hostname, retries=message.retries,
                    queue=request.delivery.routing_key,
                )  # fmt: skip
            store = not (task.ignore_result or message.ignore_result)
            state = outcome.state
            if state == "CANCELLED":
                if not request.acked:
                    rejects.append((request, True))
                continue
            if state == "LOST":
                self._requeue_lost(request, outcome.value)
                continue
            self.processed += 1
            if state == states.SUCCESS:
                logger.info(
                    "Task %s[%s] succeeded in %.6fs: %s",
                    task.name, request.id, outcome.runtime, _short(outcome.value),
                )  # fmt: skip
                self._send_callbacks(request, outcome.value)
                if store:
                    writes.append(
                        ResultWrite(request.id, state, outcome.value, info=info)
                    )
                acks.append(request)
            elif state == states.RETRY:
                retry = outcome.value
                if not self._send_retry(request, outcome):
                    rejects.append((request, True))
                    continue
                logger.info("Task %s[%s] retry: %s", task.name, request.id, retry)
                if store:
                    exc = retry.exc if isinstance(retry, Retry) and retry.exc else retry
                    writes.append(
                        ResultWrite(
                            request.id, states.RETRY, exc, outcome.traceback, info
                        )
                    )
                acks.append(request)
            elif state == states.FAILURE:
                self.failed += 1
                logger.error(
                    "Task %s[%s] raised unexpected: %r\n%s",
                    task.name, request.id, outcome.value, outcome.traceback or "",
                )  # fmt: skip
                if store or task.store_errors_even_if_ignored:
                    writes.append(
                        ResultWrite(
                            request.id,
                            states.FAILURE,
                            outcome.value,
                            outcome.traceback,
                            info,
                        )
                    )
                self._send_errbacks(request)
                if task.acks_on_failure_or_timeout:
                    acks.append(request)
                else:
                    rejects.append((request, False))
            elif state == states.REVOKED:
                logger.warning(
                    "Task %s[%s] terminated: %s", task.name, request.id, outcome.value
                )
                writes.append(
                    ResultWrite(request.id, states.REVOKED, _revoked_exc("terminated"))
                )
                acks.append(request)
            elif state == states.REJECTED:
                logger.warning(
                    "Task %s[%s] rejected (requeue=%s): %s",
                    task.name, request.id, outcome.requeue, outcome.value,
                )  # fmt: skip
                rejects.append((request, outcome.requeue))
            else:  # IGNORED
                acks.append(request)
        if writes:
            try:
                self._write({request.id: request.message for request in batch}, writes)
            except Exception:
                logger.exception(
                    "could not store %d results; their messages go back to the queue",
                    len(writes),
                )
                written = {w.task_id for w in writes}
                rejects.extend((r, True) for r in acks if r.id in written)
                acks = [r for r in acks if r.id not in written]
        if here and self.app.transport.unconfirmed:
            # The broker's confirms of what these tasks published come before
            # their acks: the finisher waits for them, not this loop.
            self._finished.put(functools.partial(self._acknowledge, acks, rejects))
            return
        self._acknowledge(acks, rejects)

    def _acknowledge(
        self, acks: list[Request], rejects: list[tuple[Request, bool]]
    ) -> None:
        """Ack *acks* once the broker confirmed what their tasks published;
        settle *rejects*."""
        late = [r.delivery for r in acks if not r.acked]
        if late and self.app.transport.unconfirmed:
            # Results sent over the broker, retries, callbacks and what the
            # tasks published are confirmed before their messages are acked.
            try:
                self.app.transport.flush()
            except Exception:
                logger.exception(
                    "the broker did not confirm what %d tasks published; their "
                    "messages go back to the queue",
                    len(late),
                )
                rejects.extend((r, True) for r in acks if not r.acked)
                late = []
        if late:
            try:
                self.app.transport.ack_many(late)
            except Exception:
                logger.exception("could not acknowledge %d messages", len(late))
        for request, requeue in rejects:
            if not request.acked:
                self._settle(request.delivery, requeue=requeue)

    def _exhausted(self, request: Request, limit: int) -> None:
        """The broker delivered *request* more than ``task_delivery_limit`` times.

        Each time the worker that had it stopped before finishing it (killed,
        crashed, cold shutdown; a warm shutdown releases its unstarted tasks
        uncounted) or the task asked to be requeued (``Reject(requeue=True)``),
        so a task that kills the whole worker every time goes to the
        dead-letter queue instead of looping; its result records FAILURE.
        """
        reason = (
            f"delivered {request.delivery.delivery_count - 1} times without "
            "finishing: the worker running it stopped (or it was requeued) each "
            f"time (task_delivery_limit {limit})"
        )
        self.failed += 1
        self._store(request.message, states.FAILURE, DeliveryLimitError(reason))
        where = self._dead_letter(request.delivery, reason)
        logger.error("Task %s[%s] %s; %s", request.name, request.id, reason, where)

    def _requeue_lost(self, request: Request, exc: BaseException) -> None:
        """``reject_on_worker_lost``: the pool process died running *request*.

        The message goes back to its queue with the count of deaths in its
        headers; at ``task_delivery_limit`` it goes to the dead-letter queue
        instead and the result records the failure.
        """
        delivery = request.delivery
        lost = _count(delivery.headers.get(LOST_HEADER)) + 1
        limit = self.app.conf.task_delivery_limit
        if limit is not None and lost >= limit:
            self.failed += 1
            self._store(request.message, states.FAILURE, exc)
            reason = (
                f"its pool process died {lost} times running it "
                f"(task_delivery_limit {limit}): {exc}"
            )
            logger.error(
                "Task %s[%s] %s; %s",
                request.name, request.id, reason, self._dead_letter(delivery, reason),
            )  # fmt: skip
            return
        try:
            self.app.transport.publish_many(
                [_copy(delivery, delivery.queue, headers={LOST_HEADER: lost})]
            )
            self.app.transport.flush()
        except Exception:
            logger.exception("could not requeue %s[%s]", request.name, request.id)
            self._settle(delivery, requeue=True)
            return
        try:
            delivery.ack()
        except Exception:
            logger.exception("could not acknowledge %s[%s]", request.name, request.id)
        logger.warning(
            "Task %s[%s]: its pool process died (%s); requeued (death %d of at most "
            "%s)",
            request.name, request.id, exc, lost, limit,
        )  # fmt: skip

    def _write(self, messages: dict[str, TaskMessage], writes: list[Any]) -> None:
        """Store result writes in one round trip (rpc://: send them to the
        callers named by *messages*, task id -> message)."""
        backend = self.app.backend
        if getattr(backend, "sends_replies", False):
            backend.publish_results(  # type: ignore[attr-defined]
                (
                    messages[w.task_id].reply_to,
                    messages[w.task_id].correlation_id,
                    w,
                )
                for w in writes
            )
        else:
            backend.mark_many(writes)

    def _send_retry(self, request: Request, outcome: Outcome) -> bool:
        sig = outcome.retry
        if not sig:
            return False
        try:
            options = dict(sig.get("options") or {})
            self.app.send_task(
                sig["task"], sig.get("args"), sig.get("kwargs"), **options
            )
            return True
        except Exception:
            logger.exception(
                "could not send the retry of %s[%s]", request.name, request.id
            )
            return False

    def _send_callbacks(self, request: Request, value: Any) -> None:
        for item in request.message.embed.callbacks or ():
            try:
                sig = signature(item, self.app)
                sig.apply_async(
                    (value,), parent_id=request.id,
                    root_id=request.message.root_id or request.id,
                )  # fmt: skip
            except Exception:
                logger.exception(
                    "could not send a callback of %s[%s]", request.name, request.id
                )

    def _send_errbacks(self, request: Request) -> None:
        for item in request.message.embed.errbacks or ():
            try:
                sig = signature(item, self.app)
                sig.apply_async(
                    (request.id,), parent_id=request.id,
                    root_id=request.message.root_id or request.id,
                )  # fmt: skip
            except Exception:
                logger.exception(
                    "could not send an errback of %s[%s]", request.name, request.id
                )

    def _store(
        self, message: TaskMessage, state: str, value: Any, *, reason: str = ""
    ) -> None:
        """Record a state the worker decided without running the task
        (revoked, unknown, dead-lettered); rpc:// sends it to the caller."""
        task_id = message.id
        backend = self.app.backend
        try:
            if getattr(backend, "sends_replies", False):
                from resultstores import ResultWrite

                if state == states.REVOKED:
                    value = _revoked_exc(reason or "revoked")
                self._write({task_id: message}, [ResultWrite(task_id, state, value)])
            elif state == states.REVOKED:
                backend.mark_revoked(task_id, reason or "revoked")
            elif isinstance(value, BaseException):
                backend.mark_failure(task_id, value, state=state)
            else:
                backend.set_state(task_id, state, meta=value)
        except Exception:
            logger.exception("could not store %s for %s", state, task_id)

    # -- remote control --------------------------------------------------------------

    def _on_control(self, delivery: Delivery) -> None:
        try:
            delivery.ack()
            body = json.loads(delivery.body)
        except Exception as exc:  # noqa: BLE001 - a bad control message is logged
            logger.warning("ignored a malformed control message: %s", exc)
            return
        if not isinstance(body, dict):
            return
        destination = body.get("destination")
        if destination and self.hostname not in destination:
            return
        method = body.get("method")
        arguments = body.get("arguments") or {}
        if method == "revoke":
            ids = arguments.get("task_id")
            ids = ids if isinstance(ids, list) else [ids]
            self.revoke(
                [i for i in ids if isinstance(i, str)],
                terminate=bool(arguments.get("terminate")),
                signal_name=arguments.get("signal") or "SIGTERM",
            )
        else:
            logger.debug("ignored control command %r", method)

    def revoke(
        self,
        task_ids: list[str],
        *,
        terminate: bool = False,
        signal_name: Any = "SIGTERM",
    ) -> None:
        """Do not run *task_ids*; stop them if running and *terminate*."""
        expiry = time.time() + REVOKE_EXPIRES
        for task_id in task_ids:
            self.revoked[task_id] = expiry
            logger.info(
                "revoked task %s%s", task_id, " (terminating)" if terminate else ""
            )
            request = self.active.get(task_id)
            if terminate and request is not None and request.future is not None:
                signum = _signal_number(signal_name)
                request.future.terminate(signum)
        if len(self.revoked) > 50_000:
            now = time.time()
            self.revoked = {k: v for k, v in self.revoked.items() if v > now}
        self._save_state()

    def _load_state(self) -> None:
        if not self.statedb:
            return
        path = Path(self.statedb)
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text())
            now = time.time()
            self.revoked = {
                k: float(v)
                for k, v in data.get("revoked", {}).items()
                if float(v) > now
            }
        except (OSError, ValueError, AttributeError) as exc:
            logger.warning("ignoring unreadable state file %s: %s", path, exc)

    def _save_state(self) -> None:
        if not self.statedb:
            return
        _replace_json(self.statedb, {"revoked": self.revoked}, "state file")

    # -- liveness --------------------------------------------------------------------

    def _beat(self) -> None:
        """Rewrite the heartbeat file, at most once a second (after a fetch)."""
        now = time.monotonic()
        if now - self._last_beat < 1.0:
            return
        self._last_beat = now
        record = {
            "time": time.time(),
            "pid": os.getpid(),
            "hostname": self.hostname,
            "processed": self.processed,
            "failed": self.failed,
            "active": len(self.active),
            "waiting": self._waiting,
        }
        _replace_json(str(self.heartbeat_file), record, "heartbeat file")

    # -- autoscale -------------------------------------------------------------------

    def _autoscale(self) -> None:
        if self.autoscale is None or self.pool is None:
            return
        high, low = self.autoscale
        busy = len(self.active)
        size = self.pool.size
        if busy >= size and size < high:
            self.pool.grow(min(high - size, max(1, busy - size + 1)))
        elif busy < size // 2 and size > max(low, 1):
            self.pool.shrink(1)


def _copy(
    delivery: Delivery,
    routing_key: str,
    *,
    headers: dict[str, Any] | None = None,
    delay: float | None = None,
) -> Any:
    """A :class:`transports.Message` repeating *delivery* to queue *routing_key*.

    Body and headers are kept as they are (a signature stays valid); *headers*
    are added.
    """
    from transports import Message

    properties = {
        key: value
        for key, value in (delivery.properties or {}).items()
        if key in _COPIED_PROPERTIES and value is not None
    }
    return Message(
        routing_key,
        delivery.body,
        headers={**(delivery.headers or {}), **(headers or {})},
        properties=properties,
        delay=delay,
    )


def _count(value: Any) -> int:
    """A count from a message header (0 when missing or malformed)."""
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _revoked_exc(reason: str) -> Exception:
    from queue_meta.errors import TaskRevokedError

    return TaskRevokedError(reason)


def _signal_number(value: Any) -> int:
    if isinstance(value, int):
        return value
    name = str(value).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    return int(getattr(signal, name, signal.SIGTERM))


def _process_init(app_ref: str) -> None:
    """Runs in each prefork child before its first task."""
    from . import _trace
    from ._trace import _resolve_app

    try:
        app = _resolve_app(app_ref)
        app._check_fork()
    except Exception:
        logger.exception("pool process could not load app %s", app_ref)
    # What a task publishes here is confirmed before the worker, which acks
    # the task's message, hears that it finished.
    _trace.confirm_after_task = True
    signals.worker_process_init.send(sender=None)


def _replace_json(path: str, record: object, what: str) -> None:
    """Write *record* as JSON to *path* through a temporary file and a rename,
    so a reader never sees half a file; log a warning if that fails."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as out:
            json.dump(record, out)
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("could not write the %s %s: %s", what, path, exc)


def check_heartbeat(path: str, max_age: float = 30.0) -> tuple[bool, str]:
    """Read a worker's heartbeat file; return (alive, one line saying why).

    Alive means the file was rewritten less than *max_age* seconds ago: the
    worker's consume loop came back from the broker that recently.
    """
    try:
        with open(path) as source:
            record = json.load(source)
        age = time.time() - float(record["time"])
    except FileNotFoundError:
        return False, f"no heartbeat file at {path}: the worker is not running"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"unreadable heartbeat file {path}: {exc}"
    who = f"{record.get('hostname')} (pid {record.get('pid')})"
    counts = f"{record.get('processed')} processed, {record.get('active')} running"
    if age > max_age:
        return False, (
            f"stale: {who} last came back from the broker {age:.1f} s ago "
            f"(more than {max_age:g} s); {counts}"
        )
    return True, f"ok: {who} consume loop alive {age:.1f} s ago; {counts}"
