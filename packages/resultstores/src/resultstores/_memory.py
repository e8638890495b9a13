"""In-process result store for tests and single-process tools.

URL form: ``memory://`` or ``memory://<name>``. Stores opened with the same
name in one process share their results (a client and a worker in one test
see each other's writes); different names are separate.

Options: the common options of :class:`~resultstores.ResultStore`.

Capabilities: expiry is checked on read and by :meth:`cleanup`; chords are
counted under a lock; :meth:`wait` is woken by a condition variable, so it
never polls. Results are serialized as in any other store, so what a test
reads back is what a real store would give.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from . import states
from .base import Capabilities
from .kv import KeyValueResultStore

__all__ = ["MemoryResultStore"]


class _Space:
    """The shared data of one store name: values, expiry times, a condition."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, float | None]] = {}
        self.changed = threading.Condition()


_spaces: dict[str, _Space] = {}
_spaces_lock = threading.Lock()


class MemoryResultStore(KeyValueResultStore):
    """Results in a dict of this process, shared by stores of the same name.

    Args:
        url: ``memory://`` or ``memory://<name>``.
        **options: The common options of :class:`~resultstores.ResultStore`.
    """

    name: ClassVar[str] = "memory"
    capabilities: ClassVar[Capabilities] = Capabilities(
        native_ttl=False, chords=True, wait="condition"
    )

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        super().__init__(url, **options)
        parts = urlsplit(url)
        self.space_name = (parts.netloc + parts.path).strip("/")
        with _spaces_lock:
            self._space = _spaces.setdefault(self.space_name, _Space())

    def clear(self) -> None:
        """Delete everything stored under this store's name."""
        with self._space.changed:
            self._space.values.clear()

    # -- primitives ----------------------------------------------------------------

    def _live(self, key: str, now: float) -> bytes | None:
        item = self._space.values.get(key)
        if item is None:
            return None
        value, deadline = item
        if deadline is not None and deadline <= now:
            del self._space.values[key]
            return None
        return value

    def _kv_get(self, key: str) -> bytes | None:
        with self._space.changed:
            return self._live(key, time.time())

    def _kv_get_many(self, keys: list[str]) -> list[bytes | None]:
        now = time.time()
        with self._space.changed:
            return [self._live(key, now) for key in keys]

    def _kv_put_result(
        self, key: str, value: bytes, state: str, ttl: float | None
    ) -> bool:
        with self._space.changed:
            current = self._live(key, time.time())
            if current is not None and self._is_success(current):
                return False
            self._space.values[key] = (value, self._deadline(ttl))
            self._space.changed.notify_all()
            return True

    def _kv_set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._space.changed:
            self._space.values[key] = (value, self._deadline(ttl))

    def _kv_add(self, key: str, value: bytes, ttl: float | None) -> bool:
        with self._space.changed:
            if self._live(key, time.time()) is not None:
                return False
            self._space.values[key] = (value, self._deadline(ttl))
            return True

    def _kv_delete(self, keys: list[str]) -> None:
        with self._space.changed:
            for key in keys:
                self._space.values.pop(key, None)

    def _kv_incr(self, key: str, ttl: float | None) -> int:
        with self._space.changed:
            current = self._live(key, time.time())
            number = int(current or 0) + 1
            self._space.values[key] = (str(number).encode(), self._deadline(ttl))
            return number

    def _kv_cleanup(self) -> int:
        now = time.time()
        with self._space.changed:
            expired = [
                key
                for key, (_, deadline) in self._space.values.items()
                if deadline is not None and deadline <= now
            ]
            for key in expired:
                del self._space.values[key]
        return len(expired)

    def _wait(
        self, task_id: str, deadline: float | None, cap: float
    ) -> dict[str, Any] | None:
        key = self.task_key(task_id)
        with self._space.changed:
            while True:
                value = self._live(key, time.time())
                if value is not None:
                    document = self._document_or_none(value)
                    if (
                        document is not None
                        and document.get("status") in states.READY_STATES
                    ):
                        return document
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                # Bounded so an expiry or a store closed elsewhere is noticed.
                self._space.changed.wait(
                    cap if remaining is None else min(remaining, cap)
                )
