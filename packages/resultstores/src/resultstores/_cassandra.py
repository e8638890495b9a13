"""Result store on Apache Cassandra, through cassandra-driver.

Tested only under docker compose (``docker-compose.yml``): no Cassandra server
can run on the project's CI machines, where its tests skip with that reason.

URL form: ``cassandra://[user:password@]host[:port][,host2[:port]...]/keyspace``
(port 9042, keyspace ``resultstores`` by default).

Options (keyword-only, besides the common ones): ``keyprefix``, ``table``
(default ``"resultstores_results"``; counters in ``<table>_counters``),
``replication`` (the CQL replication map used when the keyspace is created,
default ``{'class': 'SimpleStrategy', 'replication_factor': 1}``),
``connect_timeout`` (seconds, 10), ``cluster_options`` (more ``Cluster``
arguments).

Capabilities: native expiry (``USING TTL``); a stored SUCCESS is kept and
chord counters are incremented with lightweight transactions (``IF NOT
EXISTS`` / ``IF status = ...`` / ``IF n = ...``), so concurrent writers never
lose an update; ``wait`` polls. Values over 15 MiB raise
:class:`~resultstores.ResultTooLargeError` (half Cassandra's default commit log
segment, the largest mutation it accepts).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from .base import Capabilities
from .errors import InvalidURLError, MissingDriverError, ResultStoreError
from .kv import KeyValueResultStore

try:
    from cassandra import OperationTimedOut, Unavailable
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster, NoHostAvailable
except ImportError as _import_error:  # pragma: no cover - depends on the extras
    raise MissingDriverError("cassandra", "cassandra") from _import_error

__all__ = ["CassandraResultStore"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")


class CassandraResultStore(KeyValueResultStore):
    """Results in a Cassandra table, one row per key.

    Args:
        url: ``cassandra://host:port[,host:port]/keyspace``.
        keyprefix: Prepended to every key.
        table: The results table.
        replication: Replication map for a keyspace created here.
        connect_timeout: Seconds to connect.
        cluster_options: More ``cassandra.cluster.Cluster`` arguments.
        **options: The common options of :class:`~resultstores.ResultStore`.

    Raises:
        InvalidURLError: The URL, keyspace or table name is malformed.
        MissingDriverError: cassandra-driver is not installed.
        ResultStoreConnectionError: No node answered.
    """

    name: ClassVar[str] = "cassandra"
    capabilities: ClassVar[Capabilities] = Capabilities(
        native_ttl=True, chords=True, wait="poll", max_result_size=15 * 1024 * 1024
    )
    connection_errors = (NoHostAvailable, OperationTimedOut, Unavailable)

    def __init__(
        self,
        url: str,
        *,
        keyprefix: str = "",
        table: str = "resultstores_results",
        replication: dict[str, Any] | None = None,
        connect_timeout: float = 10.0,
        cluster_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(url, keyprefix=keyprefix, **options)
        rest = url.partition("://")[2]
        netloc, _, path = rest.partition("/")
        userinfo, _, hosts_text = netloc.rpartition("@")
        hosts: list[str] = []
        port = 9042
        for item in hosts_text.split(","):
            if not item:
                continue
            parts = urlsplit("//" + item)
            try:
                port = parts.port or port
            except ValueError:
                raise InvalidURLError(
                    f"invalid port in Cassandra URL {self.url!r}"
                ) from None
            hosts.append(parts.hostname or "127.0.0.1")
        keyspace = unquote(path.partition("?")[0].strip("/")) or "resultstores"
        for what, name in (("keyspace", keyspace), ("table", table)):
            if not _NAME.fullmatch(name):
                raise InvalidURLError(
                    f"Cassandra {what} name {name!r} must be letters, digits and _ "
                    "(at most 48, not starting with a digit)"
                )
        self.keyspace = keyspace
        self.table = table
        extra = dict(cluster_options or {})
        if userinfo:
            user, _, password = userinfo.partition(":")
            extra.setdefault(
                "auth_provider", PlainTextAuthProvider(unquote(user), unquote(password))
            )
            if password:
                self._secrets = (unquote(password), password)
        self._cluster: Any = Cluster(
            hosts or ["127.0.0.1"], port=port, connect_timeout=connect_timeout, **extra
        )
        self._session: Any = self._retrying("connect", self._cluster.connect)
        replication_map = replication or {
            "class": "SimpleStrategy",
            "replication_factor": 1,
        }
        self._retrying("create schema", self._create_schema, replication_map)

    def _create_schema(self, replication: dict[str, Any]) -> None:
        pairs = ", ".join(f"'{key}': {value!r}" for key, value in replication.items())
        session = self._session
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {self.keyspace} "
            f"WITH replication = {{{pairs}}}"
        )
        session.set_keyspace(self.keyspace)
        session.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            "(key text PRIMARY KEY, status text, value blob)"
        )
        session.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table}_counters "
            "(key text PRIMARY KEY, n int)"
        )
        t, c = self.table, f"{self.table}_counters"
        prepare = session.prepare
        self._q_get = prepare(f"SELECT value FROM {t} WHERE key = ?")
        self._q_get_many = prepare(f"SELECT key, value FROM {t} WHERE key IN ?")
        self._q_status = prepare(f"SELECT status FROM {t} WHERE key = ?")
        self._q_insert_new = prepare(
            f"INSERT INTO {t} (key, status, value) VALUES (?, ?, ?) "
            "IF NOT EXISTS USING TTL ?"
        )
        self._q_update_if = prepare(
            f"UPDATE {t} USING TTL ? SET status = ?, value = ? "
            "WHERE key = ? IF status = ?"
        )
        self._q_set = prepare(
            f"INSERT INTO {t} (key, status, value) VALUES (?, ?, ?) USING TTL ?"
        )
        self._q_delete = prepare(f"DELETE FROM {t} WHERE key IN ?")
        self._q_count = prepare(f"SELECT n FROM {c} WHERE key = ?")
        self._q_count_new = prepare(
            f"INSERT INTO {c} (key, n) VALUES (?, 1) IF NOT EXISTS USING TTL ?"
        )
        self._q_count_if = prepare(
            f"UPDATE {c} USING TTL ? SET n = ? WHERE key = ? IF n = ?"
        )
        self._q_count_delete = prepare(f"DELETE FROM {c} WHERE key IN ?")

    @staticmethod
    def _seconds(ttl: float | None) -> int:
        return 0 if ttl is None else max(int(ttl + 0.999), 1)

    # -- primitives ----------------------------------------------------------------

    def _kv_get(self, key: str) -> bytes | None:
        row = self._session.execute(self._q_get, (key,)).one()
        return None if row is None or row.value is None else bytes(row.value)

    def _kv_get_many(self, keys: list[str]) -> list[bytes | None]:
        found = {
            row.key: bytes(row.value)
            for row in self._session.execute(self._q_get_many, (keys,))
            if row.value is not None
        }
        return [found.get(key) for key in keys]

    def _kv_put_result(
        self, key: str, value: bytes, state: str, ttl: float | None
    ) -> bool:
        seconds = self._seconds(ttl)
        for _ in range(100):
            applied = self._session.execute(
                self._q_insert_new, (key, state, value, seconds)
            ).one()
            if applied[0]:
                return True
            current = applied.status if hasattr(applied, "status") else None
            if current == "SUCCESS":
                return False
            swapped = self._session.execute(
                self._q_update_if, (seconds, state, value, key, current)
            ).one()
            if swapped[0]:
                return True
        raise ResultStoreError(
            f"cassandra result store at {self.url}: {key} kept changing"
        )

    def _kv_set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._session.execute(self._q_set, (key, None, value, self._seconds(ttl)))

    def _kv_add(self, key: str, value: bytes, ttl: float | None) -> bool:
        applied = self._session.execute(
            self._q_insert_new, (key, None, value, self._seconds(ttl))
        ).one()
        return bool(applied[0])

    def _kv_delete(self, keys: list[str]) -> None:
        if keys:
            self._session.execute(self._q_delete, (keys,))
            self._session.execute(self._q_count_delete, (keys,))

    def _kv_incr(self, key: str, ttl: float | None) -> int:
        seconds = self._seconds(ttl)
        for _ in range(1000):
            created = self._session.execute(self._q_count_new, (key, seconds)).one()
            if created[0]:
                return 1
            current = int(created.n)
            swapped = self._session.execute(
                self._q_count_if, (seconds, current + 1, key, current)
            ).one()
            if swapped[0]:
                return current + 1
        raise ResultStoreError(
            f"cassandra result store at {self.url}: counter {key} kept conflicting"
        )

    def _kv_get_counter(self, key: str) -> int | None:
        row = self._session.execute(self._q_count, (key,)).one()
        return None if row is None else int(row.n)

    def close(self) -> None:
        """Shut the cluster connection down."""
        super().close()
        self._cluster.shutdown()
