"""A base for stores on key/value servers: seven primitives give the whole API.

:class:`KeyValueResultStore` lays results out under Celery's key names
(``celery-task-meta-<id>``, ``celery-taskset-meta-<gid>``) and implements
chords with an atomic counter at ``chord-unlock-<gid>``, as Celery's
key/value backends do. Each header part is stored in its slot with an
add-if-absent (the slot is its ``group_index``; without one, the part first
claims its task id and takes the next slot), then counted, so a part
delivered twice counts once; the caller whose increment reaches the chord
size reads every slot.

Subclasses implement the primitives ``_kv_get``, ``_kv_put_result``,
``_kv_set``, ``_kv_add``, ``_kv_delete``, ``_kv_incr`` and, for stores
without native expiry, ``_kv_cleanup``.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import Any

from . import states
from .base import ResultStore
from .errors import ResultStoreError

__all__ = ["KeyValueResultStore"]

TASK_PREFIX = "celery-task-meta-"
GROUP_PREFIX = "celery-taskset-meta-"
CHORD_PREFIX = "chord-unlock-"


def celery_keyprefix(prefix: str) -> str:
    """Apply Celery's rule: a prefix not ending in ``: _ - .`` gets a ``_``."""
    if prefix and prefix[-1] not in ":_-.":
        return prefix + "_"
    return prefix


class KeyValueResultStore(ResultStore):
    """A result store built on a handful of key/value primitives.

    Args:
        url: The store's URL.
        keyprefix: Prepended to every key, with Celery's rule (a ``_`` is
            added unless the prefix ends in ``:``, ``_``, ``-`` or ``.``).
        **options: The common options of :class:`~resultstores.ResultStore`.
    """

    def __init__(self, url: str, *, keyprefix: str = "", **options: Any) -> None:
        super().__init__(url, **options)
        self.keyprefix = celery_keyprefix(keyprefix)

    # -- keys --------------------------------------------------------------------

    def task_key(self, task_id: str) -> str:
        """Return the key of a task's result."""
        return f"{self.keyprefix}{TASK_PREFIX}{task_id}"

    def group_key(self, group_id: str) -> str:
        """Return the key of a saved group."""
        return f"{self.keyprefix}{GROUP_PREFIX}{group_id}"

    def chord_key(self, group_id: str, suffix: str = "") -> str:
        """Return the chord counter key (with *suffix*: its size, slots, parts)."""
        return f"{self.keyprefix}{CHORD_PREFIX}{group_id}{suffix}"

    # -- primitives ----------------------------------------------------------------

    @abstractmethod
    def _kv_get(self, key: str) -> bytes | None:
        """Return the value at *key*, ``None`` when absent or expired."""

    def _kv_get_many(self, keys: list[str]) -> list[bytes | None]:
        return [self._kv_get(key) for key in keys]

    @abstractmethod
    def _kv_put_result(
        self, key: str, value: bytes, state: str, ttl: float | None
    ) -> bool:
        """Store a result unless a SUCCESS is stored; atomic; False if one is."""

    @abstractmethod
    def _kv_set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store *value* at *key*, replacing what is there."""

    @abstractmethod
    def _kv_add(self, key: str, value: bytes, ttl: float | None) -> bool:
        """Store *value* only if *key* is absent (or expired); atomic."""

    @abstractmethod
    def _kv_delete(self, keys: list[str]) -> None:
        """Delete *keys*; absent ones are ignored."""

    @abstractmethod
    def _kv_incr(self, key: str, ttl: float | None) -> int:
        """Add one to the counter at *key* (created at 0) atomically; return it."""

    def _kv_get_counter(self, key: str) -> int | None:
        """Return the counter at *key*, ``None`` when absent."""
        value = self._kv_get(key)
        return None if value is None else int(value)

    def _kv_cleanup(self) -> int:
        return 0

    # -- ResultStore hooks -----------------------------------------------------------

    def _is_success(self, value: bytes) -> bool:
        """Return whether a stored value is a SUCCESS document (for CAS loops)."""
        try:
            document = self._decode(value)
        except Exception:  # noqa: BLE001 - an unreadable value is not a SUCCESS
            return False
        return isinstance(document, dict) and document.get("status") == states.SUCCESS

    def _put_tasks(self, prepared: list[tuple[str, str, dict[str, Any]]]) -> list[bool]:
        encoded = [
            (self.task_key(task_id), state, self._encode(task_id, document))
            for task_id, state, document in prepared
        ]
        return [
            self._kv_put_result(key, value, state, self.expires)
            for key, state, value in encoded
        ]

    def _get_task(self, task_id: str) -> dict[str, Any] | None:
        return self._document_or_none(self._kv_get(self.task_key(task_id)))

    def _get_tasks(self, task_ids: list[str]) -> list[dict[str, Any] | None]:
        values = self._kv_get_many([self.task_key(task_id) for task_id in task_ids])
        return [self._document_or_none(value) for value in values]

    def _document_or_none(self, value: bytes | None) -> dict[str, Any] | None:
        if value is None:
            return None
        document = self._decode(value)
        return document if isinstance(document, dict) else None

    def _task_exists(self, task_id: str) -> bool:
        return self._kv_get(self.task_key(task_id)) is not None

    def _delete_task(self, task_id: str) -> None:
        self._kv_delete([self.task_key(task_id)])

    def _put_group(self, group_id: str, document: dict[str, Any]) -> None:
        self._kv_set(
            self.group_key(group_id), self._encode(group_id, document), self.expires
        )

    def _get_group(self, group_id: str) -> dict[str, Any] | None:
        return self._document_or_none(self._kv_get(self.group_key(group_id)))

    def _delete_group(self, group_id: str) -> None:
        self._kv_delete([self.group_key(group_id)])

    def _put_chord_size(self, group_id: str, size: int) -> None:
        self._kv_set(self.chord_key(group_id, ".s"), str(size).encode(), self.expires)

    def _chord_part(
        self,
        group_id: str,
        task_id: str,
        state: str,
        result: Any,
        index: int | None,
        size: int | None,
    ) -> list[list[Any]] | None:
        entry = self._encode(task_id, [1, task_id, state, result])
        done = self._count_part(group_id, task_id, entry, index, self.expires)
        if done is None:
            return None  # this part was counted already (a redelivered task)
        total = self._chord_total(group_id, size)
        if done != total:
            return None
        keys = [self.chord_key(group_id, f".p.{slot}") for slot in range(total)]
        values = self._retrying("chord_part_return", self._kv_get_many, keys)
        missing = [k for k, v in zip(keys, values, strict=True) if v is None]
        if missing:
            raise ResultStoreError(
                f"chord {group_id} counted {total} parts but {len(missing)} are "
                f"missing (first: {missing[0]}); pass index= for every part or for "
                "none, and keep expires longer than the chord takes"
            )
        entries = [self._decode(value) for value in values if value is not None]
        self._retrying("chord_part_return", self._delete_chord, group_id, keys)
        return entries

    def _count_part(
        self,
        group_id: str,
        task_id: str,
        entry: bytes,
        index: int | None,
        ttl: float | None,
    ) -> int | None:
        """Claim, store and count one part; the count, or ``None`` if seen before.

        Stores that have transactions do the three steps in one (SQL).
        """
        if index is not None:
            # The slot is the claim: a redelivered part finds its slot taken.
            part = self.chord_key(group_id, f".p.{index}")
            if not self._retrying("chord_part_return", self._kv_add, part, entry, ttl):
                return None
        else:
            claim = self.chord_key(group_id, f".c.{task_id}")
            if not self._retrying("chord_part_return", self._kv_add, claim, b"1", ttl):
                return None
            # Counting is never retried: a lost reply could count twice.
            slot = (
                self._once(
                    "chord_part_return",
                    self._kv_incr,
                    self.chord_key(group_id, ".n"),
                    ttl,
                )
                - 1
            )
            self._retrying(
                "chord_part_return",
                self._kv_set,
                self.chord_key(group_id, f".p.{slot}"),
                entry,
                ttl,
            )
        return self._once(
            "chord_part_return", self._kv_incr, self.chord_key(group_id), ttl
        )

    def _chord_total(self, group_id: str, size: int | None) -> int:
        if size is not None:
            return size
        stored = self._retrying(
            "chord_part_return", self._kv_get, self.chord_key(group_id, ".s")
        )
        if stored is not None:
            return int(stored)
        members = self.restore_group(group_id)
        if members is not None:
            return len(members)
        raise ResultStoreError(
            f"chord {group_id} has no known size: call set_chord_size() before the "
            "header tasks finish, pass size= to chord_part_return(), or save the group"
        )

    def _delete_chord(self, group_id: str, parts: list[str] | None = None) -> None:
        keys = [
            self.chord_key(group_id),
            self.chord_key(group_id, ".s"),
            self.chord_key(group_id, ".n"),
        ]
        if parts is None:
            total = self._kv_get_counter(self.chord_key(group_id)) or 0
            parts = [self.chord_key(group_id, f".p.{slot}") for slot in range(total)]
        self._kv_delete(keys + parts)

    def _cleanup(self) -> int:
        return self._kv_cleanup()

    @staticmethod
    def _deadline(ttl: float | None) -> float | None:
        """Return the absolute expiry time (``time.time()`` based) of a new value."""
        return None if ttl is None else time.time() + ttl
