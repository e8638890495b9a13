"""Result store on CouchDB, through pycouchdb.

URL forms: ``couchdb://[user:password@]host[:port]/database`` (HTTP) and
``couchdbs://...`` (HTTPS); port 5984 and database ``resultstores`` by
default. The database is created when missing.

Options (keyword-only, besides the common ones): ``keyprefix``,
``timeout`` (seconds per request, 10), ``max_document_size`` (bytes, 8,000,000:
CouchDB 3's default ``max_document_size``).

Documents: ``{_id: <Celery key>, status, value: <base64 of the serialized
result>, expires_at: <Unix time>}``. Capabilities: no native expiry (reads
ignore expired documents; ``cleanup()`` deletes them through the view
``_design/resultstores/_view/expiry``); a stored SUCCESS is kept and chord
counters are incremented with CouchDB's revision check (a conflicting write
is read again and retried, so no increment is lost); ``wait`` polls.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

from .base import Capabilities
from .errors import InvalidURLError, MissingDriverError, ResultStoreError
from .kv import KeyValueResultStore

try:
    import pycouchdb
    import requests  # type: ignore[import-untyped]
    from pycouchdb import exceptions as couch_errors
except ImportError as _import_error:  # pragma: no cover - depends on the extras
    raise MissingDriverError("couchdb", "couchdb") from _import_error

__all__ = ["CouchDBResultStore"]

_DESIGN = "_design/resultstores"
_EXPIRY_MAP = "function (doc) { if (doc.expires_at) { emit(doc.expires_at, null); } }"


class CouchDBResultStore(KeyValueResultStore):
    """Results in a CouchDB database, one document per key.

    Args:
        url: ``couchdb://host:port/database`` or ``couchdbs://...``.
        keyprefix: Prepended to every key.
        timeout: Seconds per HTTP request.
        max_document_size: The server's document size limit, in bytes.
        **options: The common options of :class:`~resultstores.ResultStore`.

    Raises:
        InvalidURLError: The URL is malformed.
        MissingDriverError: pycouchdb is not installed.
    """

    name: ClassVar[str] = "couchdb"
    capabilities: ClassVar[Capabilities] = Capabilities(
        native_ttl=False, chords=True, wait="poll", max_result_size=5_900_000
    )
    connection_errors = (requests.ConnectionError, requests.Timeout)

    def __init__(
        self,
        url: str,
        *,
        keyprefix: str = "",
        timeout: float = 10.0,
        max_document_size: int = 8_000_000,
        **options: Any,
    ) -> None:
        super().__init__(url, keyprefix=keyprefix, **options)
        parts = urlsplit(url)
        scheme = "https" if parts.scheme.lower() == "couchdbs" else "http"
        try:
            port = parts.port or 5984
        except ValueError:
            raise InvalidURLError(f"invalid port in CouchDB URL {self.url!r}") from None
        auth = ""
        if parts.username:
            auth = (
                parts.username + (f":{parts.password}" if parts.password else "") + "@"
            )
        if parts.password:
            self._secrets = (unquote(parts.password), parts.password)
        base = urlunsplit(
            (scheme, f"{auth}{parts.hostname or '127.0.0.1'}:{port}", "/", "", "")
        )
        self.database = unquote(parts.path.strip("/")) or "resultstores"
        # base64 makes a value 4/3 larger inside the JSON document.
        self.max_result_size = (max_document_size - 1024) * 3 // 4
        self._server: Any = pycouchdb.Server(base, timeout=timeout, authmethod="basic")
        self._lock = threading.RLock()
        self._db: Any = self._retrying("open database", self._open)

    def _open(self) -> Any:
        try:
            return self._server.database(self.database)
        except couch_errors.NotFound:
            # Conflict: another process created it meanwhile.
            with contextlib.suppress(couch_errors.Conflict):
                self._server.create(self.database)
            return self._server.database(self.database)

    # -- documents -------------------------------------------------------------------

    def _fetch(self, key: str) -> dict[str, Any] | None:
        try:
            document: dict[str, Any] = self._db.get(key)
        except couch_errors.NotFound:
            return None
        return document or None

    @staticmethod
    def _alive(document: dict[str, Any] | None, now: float) -> bool:
        if document is None:
            return False
        expires_at = document.get("expires_at")
        return expires_at is None or float(expires_at) > now

    def _body(
        self, key: str, value: bytes, state: str | None, ttl: float | None
    ) -> dict[str, Any]:
        return {
            "_id": key,
            "status": state,
            "value": base64.b64encode(value).decode("ascii"),
            "expires_at": self._deadline(ttl),
        }

    def _save(self, document: dict[str, Any]) -> bool:
        """Save; False on a revision conflict (someone else wrote first)."""
        try:
            with self._lock:
                self._db.save(document)
        except couch_errors.Conflict:
            return False
        return True

    # -- primitives ----------------------------------------------------------------

    def _kv_get(self, key: str) -> bytes | None:
        with self._lock:
            document = self._fetch(key)
        if not self._alive(document, time.time()) or document is None:
            return None
        value = document.get("value")
        return base64.b64decode(value) if isinstance(value, str) else None

    def _kv_get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        with self._lock:
            rows = self._db.all(keys=keys, include_docs="true", as_list=True)
        now = time.time()
        found: dict[str, bytes] = {}
        for row in rows:
            document = row.get("doc") if isinstance(row, dict) else None
            if self._alive(document, now) and document is not None:
                value = document.get("value")
                if isinstance(value, str):
                    found[document["_id"]] = base64.b64decode(value)
        return [found.get(key) for key in keys]

    def _cas(self, key: str, change: Any) -> Any:
        """Apply *change(current_or_None)* with revision checks until it sticks.

        *change* returns ``(new_document_or_None, result)``; ``None`` writes nothing.
        """
        for _ in range(1000):
            with self._lock:
                current = self._fetch(key)
            new, result = change(current if self._alive(current, time.time()) else None)
            if new is None:
                return result
            if current is not None:
                new["_rev"] = current["_rev"]
            if self._save(new):
                return result
        raise ResultStoreError(
            f"couchdb result store at {self.url}: {key} kept conflicting "
            "for 1000 attempts"
        )

    def _kv_put_result(
        self, key: str, value: bytes, state: str, ttl: float | None
    ) -> bool:
        def change(
            current: dict[str, Any] | None,
        ) -> tuple[dict[str, Any] | None, bool]:
            if current is not None and current.get("status") == "SUCCESS":
                return None, False
            return self._body(key, value, state, ttl), True

        return bool(self._cas(key, change))

    def _kv_set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._cas(key, lambda current: (self._body(key, value, None, ttl), None))

    def _kv_add(self, key: str, value: bytes, ttl: float | None) -> bool:
        # Create-only first: one request when the key is new (the common case).
        if self._save(self._body(key, value, None, ttl)):
            return True

        def change(
            current: dict[str, Any] | None,
        ) -> tuple[dict[str, Any] | None, bool]:
            if current is not None:
                return None, False
            return self._body(key, value, None, ttl), True

        return bool(self._cas(key, change))

    def _kv_delete(self, keys: list[str]) -> None:
        if not keys:
            return
        with self._lock:
            rows = self._db.all(keys=keys, include_docs="false", as_list=True)
        doomed = [
            {"_id": row["id"], "_rev": row["value"]["rev"], "_deleted": True}
            for row in rows
            if isinstance(row, dict)
            and "value" in row
            and not row["value"].get("deleted")
        ]
        if doomed:
            with self._lock:
                self._db.save_bulk(doomed, transaction=False)

    def _kv_incr(self, key: str, ttl: float | None) -> int:
        def change(current: dict[str, Any] | None) -> tuple[dict[str, Any], int]:
            number = int(current.get("n", 0) if current else 0) + 1
            return {"_id": key, "n": number, "expires_at": self._deadline(ttl)}, number

        return int(self._cas(key, change))

    def _kv_get_counter(self, key: str) -> int | None:
        with self._lock:
            document = self._fetch(key)
        if not self._alive(document, time.time()) or document is None:
            return None
        return int(document.get("n", 0))

    def _kv_cleanup(self) -> int:
        self._cas(
            _DESIGN,
            lambda current: (
                None
                if current is not None
                else ({"_id": _DESIGN, "views": {"expiry": {"map": _EXPIRY_MAP}}}, None)
            ),
        )
        removed = 0
        while True:
            with self._lock:
                rows = self._db.query(
                    "resultstores/expiry",
                    endkey=time.time(),
                    limit=500,
                    as_list=True,
                    include_docs="true",
                )
            doomed = [
                {"_id": row["id"], "_rev": row["doc"]["_rev"], "_deleted": True}
                for row in rows
                if isinstance(row, dict) and row.get("doc")
            ]
            if not doomed:
                return removed
            with self._lock:
                self._db.save_bulk(doomed, transaction=False)
            removed += len(doomed)
            if len(doomed) < 500:
                return removed
