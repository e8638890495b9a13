"""Result store on MongoDB, through pymongo.

URL form: a MongoDB connection string, ``mongodb://[user:password@]host[:port][,host2...]/database?options``
or ``mongodb+srv://...``; the path names the database (default
``resultstores``), the query carries pymongo's options.

Options (keyword-only, besides the common ones): ``database`` (overrides the
URL's), ``collection`` (default ``"resultstores_results"``; counters go to
``<collection>_counters``), ``keyprefix``, ``server_selection_timeout``
(seconds, 5), ``client_options`` (more ``MongoClient`` arguments).

Documents: ``{_id: <Celery key>, status, value: <serialized result>,
expires_at}``. Capabilities: native expiry through a TTL index on
``expires_at`` (the server deletes within a minute; reads ignore expired
documents at once, and ``cleanup()`` deletes them now); a stored SUCCESS is
kept by a conditional upsert; chord counters use ``$inc`` in
``find_one_and_update``; ``wait`` polls. Results over 16 MiB (the BSON
document limit) raise :class:`~resultstores.ResultTooLargeError`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from .base import Capabilities
from .errors import MissingDriverError
from .kv import KeyValueResultStore

try:
    import pymongo
    from bson.binary import Binary
    from pymongo.errors import (
        AutoReconnect,
        ConfigurationError,
        ConnectionFailure,
        DuplicateKeyError,
        InvalidURI,
    )
except ImportError as _import_error:  # pragma: no cover - depends on the extras
    raise MissingDriverError("mongodb", "mongodb") from _import_error

__all__ = ["MongoResultStore"]

_BSON_LIMIT = 16 * 1024 * 1024 - 16 * 1024  # room for the other fields


class MongoResultStore(KeyValueResultStore):
    """Results in a MongoDB collection, one document per key.

    Args:
        url: A MongoDB connection string.
        database: The database (default: the URL's path, else ``resultstores``).
        collection: The results collection.
        keyprefix: Prepended to every key.
        server_selection_timeout: Seconds to find a usable server.
        client_options: More ``pymongo.MongoClient`` arguments.
        **options: The common options of :class:`~resultstores.ResultStore`.

    Raises:
        InvalidURLError: The connection string is malformed.
        MissingDriverError: pymongo is not installed.
    """

    name: ClassVar[str] = "mongodb"
    capabilities: ClassVar[Capabilities] = Capabilities(
        native_ttl=True, chords=True, wait="poll", max_result_size=_BSON_LIMIT
    )
    connection_errors = (AutoReconnect, ConnectionFailure)

    def __init__(
        self,
        url: str,
        *,
        database: str | None = None,
        collection: str = "resultstores_results",
        keyprefix: str = "",
        server_selection_timeout: float = 5.0,
        client_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        from .errors import InvalidURLError

        super().__init__(url, keyprefix=keyprefix, **options)
        parts = urlsplit(url)
        if parts.password:
            self._secrets = (unquote(parts.password), parts.password)
        try:
            self._client: Any = pymongo.MongoClient(
                url,
                serverSelectionTimeoutMS=int(server_selection_timeout * 1000),
                connectTimeoutMS=int(server_selection_timeout * 1000),
                **(client_options or {}),
            )
        except (InvalidURI, ConfigurationError, ValueError) as exc:
            raise InvalidURLError(
                f"invalid MongoDB URL {self.url!r}: {self._scrub(exc)}"
            ) from None
        name = database or parts.path.strip("/") or "resultstores"
        self._db = self._client[name]
        self._results = self._db[collection]
        self._counters = self._db[f"{collection}_counters"]
        self._retrying("create indexes", self._create_indexes)

    def _create_indexes(self) -> None:
        for target in (self._results, self._counters):
            target.create_index("expires_at", expireAfterSeconds=0)

    @staticmethod
    def _when(ttl: float | None) -> datetime | None:
        return (
            None if ttl is None else datetime.now(timezone.utc) + timedelta(seconds=ttl)
        )

    @staticmethod
    def _live() -> dict[str, Any]:
        return {
            "$or": [
                {"expires_at": None},
                {"expires_at": {"$gt": datetime.now(timezone.utc)}},
            ]
        }

    # -- primitives ----------------------------------------------------------------

    def _kv_get(self, key: str) -> bytes | None:
        document = self._results.find_one({"_id": key, **self._live()}, {"value": 1})
        return None if document is None else bytes(document["value"])

    def _kv_get_many(self, keys: list[str]) -> list[bytes | None]:
        found = {
            document["_id"]: bytes(document["value"])
            for document in self._results.find(
                {"_id": {"$in": keys}, **self._live()}, {"value": 1}
            )
        }
        return [found.get(key) for key in keys]

    def _kv_put_result(
        self, key: str, value: bytes, state: str, ttl: float | None
    ) -> bool:
        replaceable = {
            "_id": key,
            "$or": [
                {"status": {"$ne": "SUCCESS"}},
                {"expires_at": {"$lte": datetime.now(timezone.utc)}},
            ],
        }
        update = {
            "$set": {
                "status": state,
                "value": Binary(value),
                "expires_at": self._when(ttl),
            }
        }
        for _ in range(10):
            try:
                self._results.update_one(replaceable, update, upsert=True)
            except DuplicateKeyError:
                # Either a live SUCCESS is stored, or a concurrent upsert won.
                current = self._results.find_one(
                    {"_id": key, **self._live()}, {"status": 1}
                )
                if current is not None and current.get("status") == "SUCCESS":
                    return False
                continue
            return True
        return False

    def _kv_set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._results.replace_one(
            {"_id": key},
            {"status": None, "value": Binary(value), "expires_at": self._when(ttl)},
            upsert=True,
        )

    def _kv_add(self, key: str, value: bytes, ttl: float | None) -> bool:
        document = {
            "_id": key,
            "status": None,
            "value": Binary(value),
            "expires_at": self._when(ttl),
        }
        for _ in range(2):
            try:
                self._results.insert_one(document)
            except DuplicateKeyError:
                # Taken, unless by an expired document the TTL monitor left.
                expired = {
                    "_id": key,
                    "expires_at": {"$lte": datetime.now(timezone.utc)},
                }
                if not self._results.delete_one(expired).deleted_count:
                    return False
                continue
            return True
        return False

    def _kv_delete(self, keys: list[str]) -> None:
        if keys:
            self._results.delete_many({"_id": {"$in": keys}})
            self._counters.delete_many({"_id": {"$in": keys}})

    def _kv_incr(self, key: str, ttl: float | None) -> int:
        document = self._counters.find_one_and_update(
            {"_id": key},
            {"$inc": {"n": 1}, "$set": {"expires_at": self._when(ttl)}},
            upsert=True,
            return_document=pymongo.ReturnDocument.AFTER,
        )
        return int((document or {}).get("n", 0))

    def _kv_get_counter(self, key: str) -> int | None:
        document = self._counters.find_one({"_id": key, **self._live()})
        return None if document is None else int(document["n"])

    def _kv_cleanup(self) -> int:
        expired = {"expires_at": {"$lte": datetime.now(timezone.utc)}}
        return int(
            self._results.delete_many(expired).deleted_count
            + self._counters.delete_many(expired).deleted_count
        )

    def close(self) -> None:
        """Close the client and its connection pool."""
        super().close()
        self._client.close()
