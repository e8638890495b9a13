"""Results over the broker (``rpc://``): each state is a message to the caller.

The caller's process has one reply queue (named by a random id, put in every
task message's ``reply_to``); the worker publishes each state of the task
(STARTED when tracked, RETRY, SUCCESS, FAILURE, REVOKED) to it, with the task
id as ``correlation_id`` and Celery's result document as body (PROTOCOL.md
section 3.3), so Celery's ``rpc://`` clients and workers interoperate. Only
the process that sent a task can read its result, once; there are no groups
or chords on this backend.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from msgwire import Registry
from resultstores import ExceptionPolicy, ResultMeta, ResultTimeoutError, ResultWrite
from resultstores._meta import build_document, encode_exception, meta_from_document

from . import states

if TYPE_CHECKING:
    from transports import Consumer

    from .app import App

__all__ = ["RPCBackend", "reply_queue_for"]


def reply_queue_for(app: App) -> str:
    """The reply queue task messages name in ``reply_to`` (empty without rpc://)."""
    if app.result_backend_url.split(":", 1)[0] != "rpc":
        return ""
    backend: Any = app.backend
    return str(backend.reply_queue())


class RPCBackend:
    """The ``rpc://`` result backend of one process.

    Args:
        app: The app whose broker carries the results.
    """

    name = "rpc"
    #: The worker sends results with :meth:`publish_results` instead of writes.
    sends_replies = True

    def __init__(self, app: App) -> None:
        self.app = app
        self.url = "rpc://"
        self.oid = str(uuid.uuid4())
        self._declared = False
        self._consumer: Consumer | None = None
        self._results: dict[str, ResultMeta] = {}
        self._lock = threading.Lock()
        conf = app.conf
        self.serializer = conf.result_serializer
        self._registry = Registry(
            accept=list(conf.result_accept_content or conf.accept_content)
        )
        self.policy = ExceptionPolicy(["queue_meta", *conf.result_exception_modules])
        self.expires = conf.result_expires

    # -- the caller's side ------------------------------------------------------------

    def reply_queue(self) -> str:
        """Declare (once) and return this process's reply queue."""
        if not self._declared:
            self.app.transport.declare_queue(
                self.oid, durable=False, auto_delete=False, expires=self.expires or None
            )
            self._declared = True
        return self.oid

    def _drain(self, timeout: float) -> None:
        if self._consumer is None or self._consumer.closed:
            self._consumer = self.app.transport.consumer(
                [self.reply_queue()], prefetch=1000
            )
        got = self._consumer.fetch(timeout=timeout)
        if not got:
            return
        for delivery in got:
            try:
                document = self._registry.loads(
                    delivery.body,
                    delivery.properties.get("content_type"),
                    delivery.properties.get("content_encoding"),
                )
                task_id = (
                    delivery.properties.get("correlation_id") or document["task_id"]
                )
                meta = meta_from_document(task_id, document, self.policy)
                with self._lock:
                    self._results[task_id] = meta
            finally:
                delivery.ack()

    def get(self, task_id: str) -> ResultMeta:
        """The newest state received for *task_id* (PENDING if none yet)."""
        self._drain(0.0)
        with self._lock:
            return self._results.get(task_id) or ResultMeta(task_id=task_id)

    def exists(self, task_id: str) -> bool:
        """Whether a state arrived for *task_id*."""
        return self.get(task_id).state != states.PENDING

    def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        interval: float | None = None,
    ) -> ResultMeta:
        """Consume the reply queue until *task_id* is ready.

        Raises:
            ResultTimeoutError: It was not ready within *timeout* seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                meta = self._results.get(task_id)
            if meta is not None and meta.state in states.READY_STATES:
                return meta
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise ResultTimeoutError(task_id, float(timeout or 0.0))
            self._drain(min(left, 1.0))

    def forget(self, task_id: str) -> None:
        """Drop the received state of *task_id*."""
        with self._lock:
            self._results.pop(task_id, None)

    def close(self) -> None:
        """Stop consuming the reply queue."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # -- the worker's side ------------------------------------------------------------

    def publish_results(self, replies: Iterable[tuple[str, str, ResultWrite]]) -> None:
        """Send ``(reply_to, correlation_id, write)`` states to their callers."""
        from transports import Message

        registry = self.app.registry
        messages = []
        for reply_to, correlation_id, write in replies:
            if not reply_to:
                continue
            value = write.result
            if isinstance(value, BaseException):
                value = encode_exception(value, _jsonable, as_object=False)
            document = build_document(
                write.task_id, write.state, value, write.traceback, None, write.children
            )
            encoded = registry.dumps(document, self.serializer)
            messages.append(
                Message(
                    reply_to,
                    encoded.data,
                    properties={
                        "correlation_id": correlation_id or write.task_id,
                        "content_type": encoded.content_type,
                        "content_encoding": encoded.content_encoding,
                        "delivery_mode": 2 if self.app.conf.result_persistent else 1,
                    },
                )
            )
        if messages:
            self.app.transport.publish_many(messages)

    def set_state(
        self, task_id: str, state: str, *, meta: Any = None, **_: Any
    ) -> bool:
        """Send a state of the running task (``update_state``) to its caller."""
        from .task import current_request

        request = current_request()
        if request is None or request.id != task_id or not request.reply_to:
            return False
        self.publish_results(
            [(request.reply_to, request.correlation_id or task_id,
              ResultWrite(task_id, state, meta))]
        )  # fmt: skip
        return True

    def mark_many(self, writes: Iterable[ResultWrite]) -> list[bool]:
        """Not used: the worker sends states with :meth:`publish_results`."""
        return [False for _ in writes]

    def mark_revoked(self, task_id: str, reason: str = "revoked", **_: Any) -> bool:
        """Revocations found by the worker reach no caller without a reply queue."""
        return False

    def mark_failure(self, task_id: str, exc: BaseException, **_: Any) -> bool:
        """Failures found before a task runs reach no caller without a reply queue."""
        return False


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))
