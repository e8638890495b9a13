"""The contract every result store follows: :class:`ResultStore`.

A store implements a handful of protected hooks (``_put_task``, ``_get_task``,
``_delete_task``, groups, chords); the public methods around them (state
writes in Celery's document layout, the never-overwrite-SUCCESS rule, the
exception policy, expiry, size limits, retries with bounded backoff, and
polling ``wait``) live here, so every store behaves alike. Stores for
key/value servers derive from :class:`resultstores.kv.KeyValueResultStore`,
which needs only seven primitives.

A third party publishes a subclass in the ``resultstores.backends`` entry
point group under its URL scheme; :func:`resultstores.connect` instantiates
it with the URL and the keyword options.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import msgwire
from msgwire import Registry

from . import states
from ._meta import (
    ChordPart,
    ChordResult,
    ExceptionPolicy,
    ResultMeta,
    ResultWrite,
    TaskInfo,
    build_document,
    encode_exception,
    format_traceback,
    meta_from_document,
)
from ._url import mask_text, mask_url
from .errors import (
    InvalidStateError,
    ResultStoreConnectionError,
    ResultStoreError,
    ResultTimeoutError,
    ResultTooLargeError,
)

__all__ = ["DEFAULT_EXPIRES", "Capabilities", "ResultStore"]

logger = logging.getLogger(__name__)

#: Results expire after one day unless a store is told otherwise (Celery's default).
DEFAULT_EXPIRES = 86400.0

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a store does natively; shown in the README's capability table.

    Attributes:
        native_ttl: Results expire in the server; otherwise :meth:`ResultStore.cleanup`
            deletes expired results (reads already ignore them).
        chords: Chord completion is supported (atomic counters or Celery's keys).
        wait: How :meth:`ResultStore.wait` learns of a result: ``"pubsub"``
            (pushed by the server), ``"condition"`` (in-process) or ``"poll"``.
        max_result_size: The largest serialized result the store holds, in
            bytes, or ``None`` when only the server's own limits apply.
    """

    native_ttl: bool
    chords: bool
    wait: str
    max_result_size: int | None = None


class ResultStore(ABC):
    """Stores task states and results; thread-safe; one instance per process.

    Args:
        url: The store's URL; its scheme selected the class.
        serializer: The msgwire codec results are written with (``"json"``,
            ``"msgpack"``, ``"yaml"``, ``"pickle"``...).
        accept: Codecs or content types accepted when reading; defaults to the
            serializer alone. Pickled results are read only if this names
            ``pickle`` (or the serializer is pickle).
        registry: A configured msgwire registry; a private one is built
            from *accept* otherwise.
        expires: Seconds a result is kept, ``None`` for ever.
        exception_modules: Modules (or packages) besides ``builtins`` whose
            exceptions are rebuilt as their own type when read.
        poll_interval: The longest pause between two reads of a polling
            :meth:`wait`.
        max_retries: Retries of an operation that lost its connection.
        retry_backoff_max: The longest pause between two retries, in seconds.

    Raises:
        InvalidURLError: An option has the wrong form.
    """

    #: The store's name in messages and logs, e.g. ``"redis"``.
    name: ClassVar[str] = "result"
    #: What the store does natively.
    capabilities: ClassVar[Capabilities] = Capabilities(
        native_ttl=False, chords=True, wait="poll"
    )

    def __init__(
        self,
        url: str,
        *,
        serializer: str = "json",
        accept: Iterable[str] | None = None,
        registry: Registry | None = None,
        expires: float | None = DEFAULT_EXPIRES,
        exception_modules: Iterable[str] = (),
        poll_interval: float = 0.5,
        max_retries: int = 3,
        retry_backoff_max: float = 1.0,
    ) -> None:
        from ._url import to_float, to_int

        self.url = mask_url(url)
        self._secrets: tuple[str, ...] = ()
        accepted = tuple(accept) if accept is not None else (serializer,)
        if serializer not in accepted:
            accepted = (*accepted, serializer)
        self.registry = registry if registry is not None else Registry(accept=accepted)
        codec = self.registry.codec(serializer)
        self.serializer = codec.name
        self.content_type = codec.content_type
        self.accept = self.registry.normalize_accept(accepted)
        self._pickle = codec.content_type == "application/x-python-serialize"
        self.expires = to_float(self.url, "expires", expires, allow_none=True)
        if self.expires == 0:
            self.expires = None
        self.exception_policy = ExceptionPolicy(exception_modules)
        self.poll_interval = to_float(self.url, "poll_interval", poll_interval) or 0.5
        self.max_retries = to_int(self.url, "max_retries", max_retries)
        self.retry_backoff_max = (
            to_float(self.url, "retry_backoff_max", retry_backoff_max) or 0.0
        )
        #: The largest serialized result accepted, in bytes (``None``: no limit).
        self.max_result_size = self.capabilities.max_result_size
        self._closed = False

    # -- public API: writes ------------------------------------------------------

    def set_state(
        self,
        task_id: str,
        state: str,
        *,
        meta: Any = None,
        traceback: str | None = None,
        info: TaskInfo | None = None,
        children: Sequence[Any] | None = None,
    ) -> bool:
        """Store *state* for *task_id*, with *meta* as its result.

        Custom states (``"PROGRESS"``) carry metadata the way Celery's
        ``update_state(meta=...)`` does. An exception in *meta* is encoded as
        for a failure.

        Returns:
            False when the task already has a stored SUCCESS, which is kept.

        Raises:
            InvalidStateError: *state* is not a non-empty string.
            ResultTooLargeError: The serialized document is too large for the store.
            ResultStoreConnectionError: The store stayed unreachable.
        """
        return self.mark_many(
            [ResultWrite(task_id, state, meta, traceback, info, children)]
        )[0]

    def mark_success(
        self,
        task_id: str,
        result: Any,
        *,
        info: TaskInfo | None = None,
        children: Sequence[Any] | None = None,
    ) -> bool:
        """Store SUCCESS with *result*; a SUCCESS already stored is kept.

        Returns:
            False when an earlier SUCCESS was kept (a task run twice).

        Raises:
            ResultTooLargeError: The serialized result is too large for the store.
            ResultStoreConnectionError: The store stayed unreachable.
        """
        return self.set_state(
            task_id, states.SUCCESS, meta=result, info=info, children=children
        )

    def mark_failure(
        self,
        task_id: str,
        exc: BaseException,
        traceback: str | TracebackType | None = None,
        *,
        state: str = states.FAILURE,
        info: TaskInfo | None = None,
        children: Sequence[Any] | None = None,
    ) -> bool:
        """Store FAILURE (or RETRY, REVOKED) with *exc* encoded as Celery encodes it.

        Args:
            task_id: The task.
            exc: The exception the task raised.
            traceback: Traceback text, a traceback object, or ``None`` to
                format ``exc.__traceback__``.
            state: ``FAILURE`` by default; ``RETRY`` or ``REVOKED`` also
                carry an exception.
            info: What the worker knows about the task.
            children: Result tuples of tasks sent from inside this one.

        Returns:
            False when an earlier SUCCESS was kept.

        Raises:
            ResultStoreConnectionError: The store stayed unreachable.
        """
        return self.set_state(
            task_id,
            state,
            meta=exc,
            traceback=format_traceback(exc, traceback),
            info=info,
            children=children,
        )

    def mark_revoked(
        self, task_id: str, reason: str = "revoked", *, info: TaskInfo | None = None
    ) -> bool:
        """Store REVOKED with Celery's ``TaskRevokedError`` encoding.

        Raises:
            ResultStoreConnectionError: The store stayed unreachable.
        """
        encoded = {
            "exc_type": "TaskRevokedError",
            "exc_message": [reason],
            "exc_module": "celery.exceptions",
        }
        return self.mark_many(
            [ResultWrite(task_id, states.REVOKED, encoded, None, info)]
        )[0]

    def mark_many(self, writes: Iterable[ResultWrite]) -> list[bool]:
        """Store several state writes, in one round trip where the store can.

        The worker batches its result writes through this. Every write is
        serialized and size-checked before anything is sent, so a write that
        fails those checks leaves every result of the batch untouched.

        Returns:
            For each write, whether it was stored (False: SUCCESS was kept).

        Raises:
            InvalidStateError: A state is not a non-empty string.
            ResultTooLargeError: A serialized document is too large for the store.
            ResultStoreConnectionError: The store stayed unreachable.
        """
        prepared = [self._prepare(write) for write in writes]
        if not prepared:
            return []
        return self._retrying("set", self._put_tasks, prepared)

    # -- public API: reads -------------------------------------------------------

    def get(self, task_id: str) -> ResultMeta:
        """Return the stored state of *task_id*; PENDING when unknown or expired.

        Raises:
            ResultStoreConnectionError: The store stayed unreachable.
            msgwire.ContentDisallowedError: The result's serializer is not accepted.
        """
        self._check_id(task_id)
        return self._meta(task_id, self._retrying("get", self._get_task, task_id))

    def get_many(self, task_ids: Iterable[str]) -> dict[str, ResultMeta]:
        """Return the stored states of several tasks, in one round trip where possible.

        Raises:
            ResultStoreConnectionError: The store stayed unreachable.
        """
        ids = list(dict.fromkeys(task_ids))
        for task_id in ids:
            self._check_id(task_id)
        if not ids:
            return {}
        documents = self._retrying("get_many", self._get_tasks, ids)
        return {
            task_id: self._meta(task_id, document)
            for task_id, document in zip(ids, documents, strict=False)
        }

    def exists(self, task_id: str) -> bool:
        """Return whether anything is stored for *task_id* (PENDING is not).

        Raises:
            ResultStoreConnectionError: The store stayed unreachable.
        """
        self._check_id(task_id)
        return bool(self._retrying("exists", self._task_exists, task_id))

    def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        interval: float | None = None,
    ) -> ResultMeta:
        """Block until *task_id* is in a ready state; return its result meta.

        Args:
            task_id: The task.
            timeout: Seconds to wait at most; ``None`` waits for ever.
            interval: For polling stores, the longest pause between two reads
                (default: the store's ``poll_interval``).

        Raises:
            ResultTimeoutError: The task was not ready in time (also a
                ``TimeoutError``).
            ResultStoreConnectionError: The store stayed unreachable.
        """
        self._check_id(task_id)
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        cap = self.poll_interval if interval is None else max(interval, 0.001)
        document = self._wait(task_id, deadline, cap)
        if document is None:
            raise ResultTimeoutError(task_id, float(timeout or 0.0))
        return self._meta(task_id, document)

    def forget(self, task_id: str) -> None:
        """Delete the result of *task_id*; it reads as PENDING afterwards.

        Raises:
            ResultStoreConnectionError: The store stayed unreachable.
        """
        self._check_id(task_id)
        self._retrying("forget", self._delete_task, task_id)

    # -- public API: groups and chords -------------------------------------------

    def save_group(self, group_id: str, task_ids: Sequence[str]) -> None:
        """Save the member ids of a group, as Celery's ``GroupResult.save()``.

        Raises:
            ResultStoreConnectionError: The store stayed unreachable.
        """
        self._check_id(group_id)
        members = [[[str(task_id), None], None] for task_id in task_ids]
        document = {"result": [[group_id, None], members]}
        self._retrying("save_group", self._put_group, group_id, document)

    def restore_group(self, group_id: str) -> list[str] | None:
        """Return the member ids of a saved group, ``None`` when none is saved.

        Raises:
            ResultStoreConnectionError: The store stayed unreachable.
        """
        self._check_id(group_id)
        document = self._retrying("restore_group", self._get_group, group_id)
        if document is None:
            return None
        return _member_ids(document.get("result"))

    def forget_group(self, group_id: str) -> None:
        """Delete a saved group (not its members' results).

        Raises:
            ResultStoreConnectionError: The store stayed unreachable.
        """
        self._check_id(group_id)
        self._retrying("forget_group", self._delete_group, group_id)

    def set_chord_size(self, group_id: str, size: int) -> None:
        """Record how many header tasks the chord of *group_id* waits for.

        Call it before the last header task is sent (Celery's ``.s`` key on Redis).

        Raises:
            ValueError: *size* is negative.
            ResultStoreConnectionError: The store stayed unreachable.
        """
        self._check_id(group_id)
        if size < 0:
            raise ValueError(f"chord size must be an int >= 0, got {size!r}")
        self._retrying("set_chord_size", self._put_chord_size, group_id, size)

    def chord_part_return(
        self,
        group_id: str,
        task_id: str,
        state: str,
        result: Any,
        *,
        index: int | None = None,
        size: int | None = None,
    ) -> ChordResult | None:
        """Count one finished header task of a chord; return all parts when complete.

        Counting is atomic across processes: exactly one caller, the one
        whose part completes the header, gets the :class:`ChordResult`, and
        the chord's bookkeeping is deleted then. A part delivered twice (same
        *task_id*) is counted once.

        Args:
            group_id: The chord's group.
            task_id: The header task that finished.
            state: Its final state.
            result: Its return value (or exception).
            index: Its position in the header (``group_index``); orders the parts.
            size: The header size, when not recorded with :meth:`set_chord_size`
                (the saved group's size is the last resort).

        Raises:
            ResultStoreError: The chord's size is unknown.
            ResultStoreConnectionError: The store stayed unreachable. Counting
                is not retried after a lost reply, so it never counts twice.
        """
        self._check_id(group_id)
        self._check_id(task_id)
        self._check_state(state)
        encoded = self._encode_result(state, result)
        entries = self._chord_part(group_id, task_id, state, encoded, index, size)
        if entries is None:
            return None
        parts = []
        for entry in entries:
            _, part_id, part_state, part_result = entry
            if part_state in states.EXCEPTION_STATES:
                part_result = self.exception_policy.rebuild(part_result, None)
            parts.append(ChordPart(str(part_id), str(part_state), part_result))
        return ChordResult(group_id, parts)

    def forget_chord(self, group_id: str) -> None:
        """Delete a chord's counters and parts (done by itself on completion).

        Raises:
            ResultStoreConnectionError: The store stayed unreachable.
        """
        self._check_id(group_id)
        self._retrying("forget_chord", self._delete_chord, group_id)

    # -- public API: housekeeping ------------------------------------------------

    def cleanup(self) -> int:
        """Delete expired results; return how many were deleted.

        Stores with native expiry (``capabilities.native_ttl``) return 0;
        the others should have this called periodically (the worker does).

        Raises:
            ResultStoreConnectionError: The store stayed unreachable.
        """
        return int(self._retrying("cleanup", self._cleanup))

    def close(self) -> None:
        """Release connections and threads; the store cannot be used afterwards."""
        self._closed = True

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    # -- hooks for implementations -----------------------------------------------

    #: Driver exceptions that mean "connection lost, retrying is safe".
    connection_errors: tuple[type[BaseException], ...] = ()

    @abstractmethod
    def _put_tasks(self, prepared: list[tuple[str, str, dict[str, Any]]]) -> list[bool]:
        """Store ``(task_id, state, document)`` items, keeping any stored SUCCESS.

        Implementations serialize with :meth:`_encode` (which checks the size)
        before writing anything.
        """

    @abstractmethod
    def _get_task(self, task_id: str) -> dict[str, Any] | None:
        """Return the stored document of *task_id*, ``None`` if absent or expired."""

    def _get_tasks(self, task_ids: list[str]) -> list[dict[str, Any] | None]:
        return [self._get_task(task_id) for task_id in task_ids]

    def _task_exists(self, task_id: str) -> bool:
        return self._get_task(task_id) is not None

    @abstractmethod
    def _delete_task(self, task_id: str) -> None:
        """Delete the document of *task_id*."""

    @abstractmethod
    def _put_group(self, group_id: str, document: dict[str, Any]) -> None:
        """Store a group document (with the store's expiry)."""

    @abstractmethod
    def _get_group(self, group_id: str) -> dict[str, Any] | None:
        """Return a stored group document."""

    @abstractmethod
    def _delete_group(self, group_id: str) -> None:
        """Delete a stored group document."""

    @abstractmethod
    def _put_chord_size(self, group_id: str, size: int) -> None:
        """Record a chord's header size."""

    @abstractmethod
    def _chord_part(
        self,
        group_id: str,
        task_id: str,
        state: str,
        result: Any,
        index: int | None,
        size: int | None,
    ) -> list[list[Any]] | None:
        """Count a part atomically; return ``[1, task_id, state, result]`` entries
        in header order to the caller that completed the chord, else ``None``."""

    @abstractmethod
    def _delete_chord(self, group_id: str) -> None:
        """Delete a chord's bookkeeping."""

    def _cleanup(self) -> int:
        return 0

    def _wait(
        self, task_id: str, deadline: float | None, cap: float
    ) -> dict[str, Any] | None:
        """Poll with a backoff doubling from 5 ms up to *cap*; ``None`` on timeout."""
        delay = min(0.005, cap)
        while True:
            document = self._retrying("wait", self._get_task, task_id)
            if document is not None and document.get("status") in states.READY_STATES:
                return document
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            time.sleep(delay if remaining is None else min(delay, remaining))
            delay = min(delay * 2, cap)

    # -- helpers for implementations ---------------------------------------------

    def _encode(self, what: str, obj: Any, limit: int | None = None) -> bytes:
        """Serialize *obj* with the store's serializer, refusing oversized output.

        Raises:
            ResultTooLargeError: The output exceeds *limit* (default: the
                store's ``max_result_size``).
        """
        data = self.registry.dumps(obj, self.serializer).data
        limit = self.max_result_size if limit is None else limit
        if limit is not None and len(data) > limit:
            raise ResultTooLargeError(self.name, what, len(data), limit)
        return data

    def _decode(self, data: bytes | bytearray | memoryview | str) -> Any:
        """Deserialize a stored value with the store's content type and accept list."""
        return self.registry.loads(data, self.content_type, accept=self.accept)

    def _serializable(self, value: Any) -> bool:
        try:
            self.registry.dumps(value, self.serializer)
        except msgwire.EncodeError:
            return False
        except Exception:  # noqa: BLE001 - pickle raises anything for odd objects
            return False
        return True

    def _encode_result(self, state: str, result: Any) -> Any:
        if isinstance(result, BaseException):
            return encode_exception(result, self._serializable, as_object=self._pickle)
        return result

    def _prepare(self, write: ResultWrite) -> tuple[str, str, dict[str, Any]]:
        self._check_id(write.task_id)
        self._check_state(write.state)
        result = self._encode_result(write.state, write.result)
        document = build_document(
            write.task_id,
            write.state,
            result,
            write.traceback,
            write.info,
            write.children,
        )
        return write.task_id, write.state, document

    def _meta(self, task_id: str, document: Mapping[str, Any] | None) -> ResultMeta:
        return meta_from_document(task_id, document, self.exception_policy)

    @staticmethod
    def _check_id(task_id: object) -> None:
        if not isinstance(task_id, str) or not task_id:
            raise ValueError(
                f"a task or group id must be a non-empty str, got {task_id!r}"
            )

    @staticmethod
    def _check_state(state: object) -> None:
        if not isinstance(state, str) or not state or state == states.PENDING:
            raise InvalidStateError(
                f"task state must be a non-empty str other than PENDING, such as "
                f"'SUCCESS' or a custom 'PROGRESS'; got {state!r} "
                f"({type(state).__name__})"
            )

    def _retrying(self, operation: str, func: Callable[..., _T], *args: Any) -> _T:
        """Run *func*, retrying on :attr:`connection_errors` with bounded backoff.

        Raises:
            ResultStoreConnectionError: Every attempt lost the connection.
        """
        if self._closed:
            raise ResultStoreError(f"{self!r} is closed")
        attempt = 0
        while True:
            try:
                return func(*args)
            except self.connection_errors as exc:
                if attempt >= self.max_retries:
                    raise self._connection_error(operation, attempt + 1, exc) from exc
                delay = min(0.05 * 2**attempt, self.retry_backoff_max)
                attempt += 1
                logger.warning(
                    "%s result store %s: %s lost the connection (%s); retry %d/%d "
                    "in %.2f s",
                    self.name,
                    self.url,
                    operation,
                    self._scrub(exc),
                    attempt,
                    self.max_retries,
                    delay,
                )
                time.sleep(delay)

    def _once(self, operation: str, func: Callable[..., _T], *args: Any) -> _T:
        """Run *func* once (not idempotent: a counter), translating connection errors.

        Raises:
            ResultStoreConnectionError: The connection was lost.
        """
        try:
            return func(*args)
        except self.connection_errors as exc:
            raise self._connection_error(operation, 1, exc) from exc

    def _connection_error(
        self, operation: str, attempts: int, exc: BaseException
    ) -> ResultStoreConnectionError:
        return ResultStoreConnectionError(
            f"{self.name} result store at {self.url} is unreachable: {operation} "
            f"failed {attempts} time(s), last with {self._scrub(exc)}; check that the "
            "server is running and the URL is right"
        )

    def _scrub(self, exc: BaseException) -> str:
        """One line naming the driver error: masked, without SQL or parameters."""
        cause = getattr(exc, "orig", None) or exc
        lines = str(cause).strip().splitlines() or [""]
        text = mask_text(f"{type(cause).__name__}: {lines[0]}", self._secrets)
        return text if len(text) <= 300 else text[:297] + "..."


def _member_ids(value: Any) -> list[str]:
    """Return member ids from a group tuple ``[[gid, parent], [child, ...]]``."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        return []
    children = value[1] or []
    ids = []
    for child in children:
        if (
            isinstance(child, (list, tuple))
            and child
            and isinstance(child[0], (list, tuple))
        ):
            ids.append(str(child[0][0]))
        elif isinstance(child, str):
            ids.append(child)
    return ids
