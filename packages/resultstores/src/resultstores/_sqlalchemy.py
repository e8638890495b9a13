"""Result store on SQL databases through SQLAlchemy: SQLite, PostgreSQL, MySQL.

URL forms:

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
  ``sqlite://`` (one in-memory database, for one process)
- ``postgresql://user:password@host:5432/db`` (driver psycopg 3;
  ``postgres://`` too), ``mysql://user:password@host:3306/db`` and
  ``mariadb://...`` (driver PyMySQL)
- ``sqlalchemy+<any SQLAlchemy URL>`` and Celery's ``db+<SQLAlchemy URL>``:
  the rest of the URL goes to SQLAlchemy as is, with the same driver
  defaults when none is named (``sqlalchemy+postgresql+psycopg2://...``
  keeps psycopg2).

Options (keyword-only, besides the common ones):

- ``schema``: ``"native"`` (default) or ``"celery"``. Native keeps each
  result document, serialized as with every other store (JSON by
  default), in ``<table_prefix>results``, with counters in
  ``<table_prefix>counters``. ``"celery"`` writes task results and groups
  to Celery's ``celery_taskmeta``/``celery_tasksetmeta`` tables, whose
  ``result`` columns hold pickles: this mode needs ``pickle`` in ``accept``.
- ``table_prefix``: prefix of the native tables (default ``"resultstores_"``).
- ``table_names``: Celery mode table names, ``{"task": ..., "group": ...}``.
- ``create_tables``: create missing tables on connect (default true).
- ``engine_options``: extra keyword arguments for ``sqlalchemy.create_engine``.

On MySQL and MariaDB a result may take at most half the server's
``max_allowed_packet`` (read on connect), since the client escapes binary
values into the statement.

Capabilities: no native expiry (reads ignore expired rows, ``cleanup()``
deletes them); chords counted in a row-locked transaction; ``wait`` polls.
SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` for writes, so several
processes share one file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, ClassVar

from ._meta import parse_date
from .base import Capabilities
from .errors import InvalidURLError, MissingDriverError, ResultStoreError
from .kv import KeyValueResultStore

try:
    import sqlalchemy as sa
    from sqlalchemy import event, exc
    from sqlalchemy.dialects import mysql
    from sqlalchemy.engine import Connection, Engine, make_url
except ImportError as _import_error:  # pragma: no cover - depends on the extras
    raise MissingDriverError("sqlalchemy", "sqlalchemy") from _import_error

__all__ = ["SQLAlchemyResultStore"]

logger = logging.getLogger(__name__)

_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_DRIVER_EXTRAS = {"psycopg": "postgresql", "pymysql": "mysql", "MySQLdb": "mysql"}
_KEY = 255
_CHUNK = 500


def sqlalchemy_url(url: str) -> str:
    """Return the SQLAlchemy URL for a store URL (prefix removed, driver chosen)."""
    scheme, sep, rest = url.partition("://")
    lowered = scheme.lower()
    for prefix in ("sqlalchemy+", "db+"):
        if lowered.startswith(prefix):
            lowered = lowered[len(prefix) :]
    lowered = _DEFAULT_DRIVERS.get(lowered, lowered)
    return f"{lowered}{sep}{rest}"


def _blob() -> sa.types.TypeEngine[bytes]:
    return sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


class SQLAlchemyResultStore(KeyValueResultStore):
    """Results in SQL tables, in our JSON document schema or in Celery's tables.

    Args:
        url: See the module documentation for the forms.
        schema: ``"native"`` or ``"celery"``.
        table_prefix: Prefix of the native tables.
        table_names: Celery mode table names (``task``, ``group``).
        create_tables: Create missing tables.
        engine_options: Extra ``create_engine`` arguments.
        **options: The common options of :class:`~resultstores.ResultStore`.

    Raises:
        InvalidURLError: The URL or an option is malformed.
        MissingDriverError: SQLAlchemy or the database driver is missing.
        ResultStoreError: Celery mode without pickle in ``accept``.
        ResultStoreConnectionError: The database stayed unreachable.
    """

    name: ClassVar[str] = "sqlalchemy"
    capabilities: ClassVar[Capabilities] = Capabilities(
        native_ttl=False, chords=True, wait="poll"
    )
    connection_errors = (exc.OperationalError, exc.InterfaceError)

    def __init__(
        self,
        url: str,
        *,
        schema: str = "native",
        table_prefix: str = "resultstores_",
        table_names: Mapping[str, str] | None = None,
        create_tables: bool = True,
        engine_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        if schema not in ("native", "celery"):
            raise InvalidURLError(
                f"schema={schema!r} is not a SQL result store schema; use 'native' "
                "(our JSON documents) or 'celery' (Celery's pickled tables)"
            )
        self.schema = schema
        if schema == "celery" and "application/x-python-serialize" not in self.accept:
            raise ResultStoreError(
                "schema='celery' reads and writes Celery's celery_taskmeta tables, "
                "whose result column holds Python pickles; allow them explicitly "
                "with accept=['json', 'pickle'] if you trust every writer"
            )
        try:
            self._sa_url = make_url(sqlalchemy_url(url))
        except exc.ArgumentError as error:
            raise InvalidURLError(
                f"invalid SQLAlchemy URL {self.url!r}: {error}"
            ) from None
        self._secrets = (self._sa_url.password or "",) if self._sa_url.password else ()
        self.dialect = self._sa_url.get_backend_name()
        self._engine = self._make_engine(dict(engine_options or {}))
        self._metadata = sa.MetaData()
        self._results = sa.Table(
            f"{table_prefix}results",
            self._metadata,
            sa.Column("key", sa.String(_KEY), primary_key=True),
            sa.Column("status", sa.String(50), nullable=True),
            sa.Column("value", _blob(), nullable=False),
            sa.Column("expires_at", sa.Double, nullable=True, index=True),
        )
        self._counters = sa.Table(
            f"{table_prefix}counters",
            self._metadata,
            sa.Column("key", sa.String(_KEY), primary_key=True),
            sa.Column("value", sa.BigInteger, nullable=False),
            sa.Column("expires_at", sa.Double, nullable=True, index=True),
        )
        names = {"task": "celery_taskmeta", "group": "celery_tasksetmeta"}
        names.update(table_names or {})
        self._celery_tasks = sa.Table(
            names["task"],
            self._metadata,
            sa.Column(
                "id",
                sa.Integer,
                sa.Sequence("task_id_sequence"),
                primary_key=True,
                autoincrement=True,
            ),
            sa.Column("task_id", sa.String(155), unique=True),
            sa.Column("status", sa.String(50), default="PENDING"),
            sa.Column("result", _blob(), nullable=True),
            sa.Column("date_done", sa.DateTime, nullable=True),
            sa.Column("traceback", sa.Text, nullable=True),
            sa.Column("name", sa.String(155), nullable=True),
            sa.Column("args", _blob(), nullable=True),
            sa.Column("kwargs", _blob(), nullable=True),
            sa.Column("worker", sa.String(155), nullable=True),
            sa.Column("retries", sa.Integer, nullable=True),
            sa.Column("queue", sa.String(155), nullable=True),
        )
        self._celery_groups = sa.Table(
            names["group"],
            self._metadata,
            sa.Column(
                "id",
                sa.Integer,
                sa.Sequence("taskset_id_sequence"),
                primary_key=True,
                autoincrement=True,
            ),
            sa.Column("taskset_id", sa.String(155), unique=True),
            sa.Column("result", _blob(), nullable=True),
            sa.Column("date_done", sa.DateTime, nullable=True),
        )
        if create_tables:
            self._retrying("create tables", self._create_tables)
        if self.dialect in ("mysql", "mariadb"):
            packet = self._retrying("connect", self._max_packet)
            # The client escapes binary values into the statement (up to twice
            # their size), and the statement must fit max_allowed_packet.
            self.max_result_size = max(packet // 2 - 4096, 1024)

    # -- engine ----------------------------------------------------------------------

    def _make_engine(self, engine_options: dict[str, Any]) -> Engine:
        sqlite = self.dialect == "sqlite"
        if sqlite:
            memory = self._sa_url.database in (None, "", ":memory:")
            connect_args = dict(engine_options.pop("connect_args", {}))
            connect_args.setdefault("timeout", 30.0)
            if memory:
                connect_args.setdefault("check_same_thread", False)
                engine_options.setdefault("poolclass", sa.pool.StaticPool)
            engine_options["connect_args"] = connect_args
        else:
            engine_options.setdefault("pool_pre_ping", True)
        try:
            engine = sa.create_engine(self._sa_url, **engine_options)
        except ImportError as error:
            driver = (error.name or "").partition(".")[0]
            extra = _DRIVER_EXTRAS.get(driver, "sqlalchemy")
            raise MissingDriverError(
                f"{self.dialect} ({driver or 'driver'})", extra
            ) from error
        except exc.ArgumentError as error:
            raise InvalidURLError(f"cannot use {self.url!r}: {error}") from None
        if sqlite:
            self._tune_sqlite(engine)
        return engine

    @staticmethod
    def _tune_sqlite(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN, so writes can be IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            write = connection.get_execution_options().get("resultstores_write")
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        with self._engine.connect() as connection:
            connection.execution_options(resultstores_write=True)
            with connection.begin():
                yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as connection, connection.begin():
            yield connection

    def _create_tables(self) -> None:
        tables = [self._results, self._counters]
        if self.schema == "celery":
            tables += [self._celery_tasks, self._celery_groups]
        try:
            self._metadata.create_all(self._engine, tables=tables, checkfirst=True)
        except (exc.IntegrityError, exc.ProgrammingError) as error:
            # Another process created them between the check and the CREATE.
            logger.debug("table creation raced with another process: %s", error)
            self._metadata.create_all(self._engine, tables=tables, checkfirst=True)

    def _max_packet(self) -> int:
        with self._read() as connection:
            return int(
                connection.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one()
            )

    def close(self) -> None:
        """Dispose of the engine's connection pool."""
        super().close()
        self._engine.dispose()

    # -- primitives (native schema, and chords in both) ------------------------------

    @staticmethod
    def _alive(expires_at: float | None, now: float) -> bool:
        return expires_at is None or expires_at > now

    def _kv_get(self, key: str) -> bytes | None:
        return self._kv_get_many([key])[0]

    def _kv_get_many(self, keys: list[str]) -> list[bytes | None]:
        table = self._results
        found: dict[str, bytes] = {}
        now = time.time()
        with self._read() as connection:
            for start in range(0, len(keys), _CHUNK):
                rows = connection.execute(
                    sa.select(table.c.key, table.c.value, table.c.expires_at).where(
                        table.c.key.in_(keys[start : start + _CHUNK])
                    )
                )
                for key, value, expires_at in rows:
                    if self._alive(expires_at, now):
                        found[key] = bytes(value)
        return [found.get(key) for key in keys]

    def _put_result_in(
        self,
        connection: Connection,
        key: str,
        value: bytes,
        state: str,
        ttl: float | None,
    ) -> bool:
        table = self._results
        now = time.time()
        replaceable = sa.or_(
            table.c.status.is_(None),
            table.c.status != "SUCCESS",
            sa.and_(table.c.expires_at.is_not(None), table.c.expires_at <= now),
        )
        values = {"status": state, "value": value, "expires_at": self._deadline(ttl)}
        updated = connection.execute(
            sa.update(table).where(table.c.key == key, replaceable).values(**values)
        )
        if updated.rowcount:
            return True
        present = connection.execute(
            sa.select(table.c.status).where(table.c.key == key)
        ).first()
        if present is not None:
            return False
        connection.execute(sa.insert(table).values(key=key, **values))
        return True

    def _kv_put_result(
        self, key: str, value: bytes, state: str, ttl: float | None
    ) -> bool:
        return bool(
            self._transaction(lambda c: self._put_result_in(c, key, value, state, ttl))
        )

    def _transaction(self, body: Any) -> Any:
        """Run *body(connection)* in a write transaction; again after an insert race."""
        for _ in range(20):
            try:
                with self._write() as connection:
                    return body(connection)
            except exc.IntegrityError:
                continue  # another writer inserted the same key first
        raise ResultStoreError(
            f"{self.name} result store at {self.url}: a write kept colliding with "
            "concurrent inserts of the same key"
        )

    def _kv_set(self, key: str, value: bytes, ttl: float | None) -> None:
        table = self._results

        def body(connection: Connection) -> None:
            values = {"status": None, "value": value, "expires_at": self._deadline(ttl)}
            updated = connection.execute(
                sa.update(table).where(table.c.key == key).values(**values)
            )
            if not updated.rowcount:
                connection.execute(sa.insert(table).values(key=key, **values))

        self._transaction(body)

    def _kv_add(self, key: str, value: bytes, ttl: float | None) -> bool:
        table = self._results
        try:
            with self._write() as connection:
                connection.execute(
                    sa.delete(table).where(
                        table.c.key == key,
                        table.c.expires_at.is_not(None),
                        table.c.expires_at <= time.time(),
                    )
                )
                connection.execute(
                    sa.insert(table).values(
                        key=key,
                        status=None,
                        value=value,
                        expires_at=self._deadline(ttl),
                    )
                )
        except exc.IntegrityError:
            return False
        return True

    def _kv_delete(self, keys: list[str]) -> None:
        with self._write() as connection:
            for table in (self._results, self._counters):
                for start in range(0, len(keys), _CHUNK):
                    connection.execute(
                        sa.delete(table).where(
                            table.c.key.in_(keys[start : start + _CHUNK])
                        )
                    )

    def _count_part(
        self,
        group_id: str,
        task_id: str,
        entry: bytes,
        index: int | None,
        ttl: float | None,
    ) -> int | None:
        """Claim, store and count a chord part in one transaction."""
        table = self._results
        claim = self.chord_key(group_id, f".c.{task_id}")

        def body(connection: Connection) -> int | None:
            now = time.time()
            current = connection.execute(
                sa.select(table.c.expires_at).where(table.c.key == claim)
            ).first()
            if current is not None and self._alive(current[0], now):
                return None
            connection.execute(sa.delete(table).where(table.c.key == claim))
            connection.execute(
                sa.insert(table).values(
                    key=claim, status=None, value=b"1", expires_at=self._deadline(ttl)
                )
            )
            slot = index
            if slot is None:
                slot = (
                    self._incr_in(connection, self.chord_key(group_id, ".n"), ttl) - 1
                )
            part = self.chord_key(group_id, f".p.{slot}")
            connection.execute(sa.delete(table).where(table.c.key == part))
            connection.execute(
                sa.insert(table).values(
                    key=part, status=None, value=entry, expires_at=self._deadline(ttl)
                )
            )
            return self._incr_in(connection, self.chord_key(group_id), ttl)

        # One transaction: a lost reply rolls everything back, so a retry
        # cannot count twice.
        result = self._retrying("chord_part_return", self._transaction, body)
        return None if result is None else int(result)

    def _kv_incr(self, key: str, ttl: float | None) -> int:
        return int(
            self._transaction(lambda connection: self._incr_in(connection, key, ttl))
        )

    def _incr_in(self, connection: Connection, key: str, ttl: float | None) -> int:
        table = self._counters
        now = time.time()
        expired = sa.and_(table.c.expires_at.is_not(None), table.c.expires_at <= now)
        updated = connection.execute(
            sa.update(table)
            .where(table.c.key == key)
            .values(
                value=sa.case((expired, 1), else_=table.c.value + 1),
                expires_at=self._deadline(ttl),
            )
        )
        if not updated.rowcount:
            connection.execute(
                sa.insert(table).values(
                    key=key, value=1, expires_at=self._deadline(ttl)
                )
            )
        # The row is locked by this transaction, so this is our own increment.
        return int(
            connection.execute(
                sa.select(table.c.value).where(table.c.key == key).with_for_update()
            ).scalar_one()
        )

    def _kv_get_counter(self, key: str) -> int | None:
        table = self._counters
        with self._read() as connection:
            row = connection.execute(
                sa.select(table.c.value, table.c.expires_at).where(table.c.key == key)
            ).first()
        if row is None or not self._alive(row[1], time.time()):
            return None
        return int(row[0])

    def _kv_cleanup(self) -> int:
        now = time.time()
        removed = 0
        with self._write() as connection:
            for table in (self._results, self._counters):
                removed += connection.execute(
                    sa.delete(table).where(
                        table.c.expires_at.is_not(None), table.c.expires_at <= now
                    )
                ).rowcount
            if self.schema == "celery" and self.expires is not None:
                cutoff = _naive_utc(now - self.expires)
                for celery_table in (self._celery_tasks, self._celery_groups):
                    removed += connection.execute(
                        sa.delete(celery_table).where(celery_table.c.date_done < cutoff)
                    ).rowcount
        return removed

    def _put_tasks(self, prepared: list[tuple[str, str, dict[str, Any]]]) -> list[bool]:
        if self.schema == "celery":
            return self._celery_put_tasks(prepared)
        encoded = [
            (self.task_key(task_id), state, self._encode(task_id, document))
            for task_id, state, document in prepared
        ]

        def body(connection: Connection) -> list[bool]:
            return [
                self._put_result_in(connection, key, value, state, self.expires)
                for key, state, value in encoded
            ]

        return list(self._transaction(body))

    # -- Celery's tables ---------------------------------------------------------------

    def _expired_celery(self, date_done: datetime | None) -> bool:
        if self.expires is None or date_done is None:
            return False
        return (
            date_done.replace(tzinfo=timezone.utc).timestamp() + self.expires
            <= time.time()
        )

    def _pickle_dumps(self, value: Any) -> bytes:
        return self.registry.dumps(value, "pickle").data

    def _pickle_loads(self, data: bytes | None) -> Any:
        if data is None:
            return None
        return self.registry.loads(
            bytes(data), "application/x-python-serialize", accept=self.accept
        )

    def _celery_put_tasks(
        self, prepared: list[tuple[str, str, dict[str, Any]]]
    ) -> list[bool]:
        table = self._celery_tasks
        rows = []
        for task_id, state, document in prepared:
            values: dict[str, Any] = {
                "status": state,
                "result": self._pickle_dumps(document["result"]),
                "traceback": document["traceback"],
                "date_done": _naive_utc(time.time()),
            }
            if "name" in document:
                values.update(
                    name=document["name"],
                    args=self._encode(task_id, document["args"]),
                    kwargs=self._encode(task_id, document["kwargs"]),
                    worker=document["worker"],
                    retries=document["retries"],
                    queue=document["queue"],
                )
            size = len(values["result"])
            if self.max_result_size is not None and size > self.max_result_size:
                from .errors import ResultTooLargeError

                raise ResultTooLargeError(
                    self.name, task_id, size, self.max_result_size
                )
            rows.append((task_id, values))

        def body(connection: Connection) -> list[bool]:
            stored = []
            for task_id, values in rows:
                current = connection.execute(
                    sa.select(table.c.status, table.c.date_done)
                    .where(table.c.task_id == task_id)
                    .with_for_update()
                ).first()
                if current is None:
                    connection.execute(
                        sa.insert(table).values(task_id=task_id, **values)
                    )
                    stored.append(True)
                elif current[0] == "SUCCESS" and not self._expired_celery(current[1]):
                    stored.append(False)
                else:
                    connection.execute(
                        sa.update(table)
                        .where(table.c.task_id == task_id)
                        .values(**values)
                    )
                    stored.append(True)
            return stored

        return list(self._transaction(body))

    def _celery_document(self, row: Any) -> dict[str, Any] | None:
        if self._expired_celery(row.date_done):
            return None
        ready = row.status in ("SUCCESS", "FAILURE", "REVOKED")
        date_done = parse_date(row.date_done) if ready else None
        document: dict[str, Any] = {
            "status": row.status,
            "result": self._pickle_loads(row.result),
            "traceback": row.traceback,
            "children": [],
            "date_done": date_done.isoformat() if date_done else None,
        }
        if row.name is not None:
            document.update(
                name=row.name,
                args=self._decode(row.args) if row.args is not None else None,
                kwargs=self._decode(row.kwargs) if row.kwargs is not None else None,
                worker=row.worker,
                retries=row.retries,
                queue=row.queue,
            )
        document["task_id"] = row.task_id
        return document

    def _get_tasks(self, task_ids: list[str]) -> list[dict[str, Any] | None]:
        if self.schema != "celery":
            return super()._get_tasks(task_ids)
        table = self._celery_tasks
        found: dict[str, dict[str, Any] | None] = {}
        with self._read() as connection:
            for start in range(0, len(task_ids), _CHUNK):
                chunk = task_ids[start : start + _CHUNK]
                for row in connection.execute(
                    sa.select(table).where(table.c.task_id.in_(chunk))
                ):
                    found[row.task_id] = self._celery_document(row)
        return [found.get(task_id) for task_id in task_ids]

    def _get_task(self, task_id: str) -> dict[str, Any] | None:
        if self.schema != "celery":
            return super()._get_task(task_id)
        return self._get_tasks([task_id])[0]

    def _task_exists(self, task_id: str) -> bool:
        if self.schema != "celery":
            return super()._task_exists(task_id)
        return self._get_task(task_id) is not None

    def _delete_task(self, task_id: str) -> None:
        if self.schema != "celery":
            super()._delete_task(task_id)
            return
        with self._write() as connection:
            connection.execute(
                sa.delete(self._celery_tasks).where(
                    self._celery_tasks.c.task_id == task_id
                )
            )

    def _put_group(self, group_id: str, document: dict[str, Any]) -> None:
        if self.schema != "celery":
            super()._put_group(group_id, document)
            return
        table = self._celery_groups
        data = self._pickle_dumps(document)

        def body(connection: Connection) -> None:
            values = {"result": data, "date_done": _naive_utc(time.time())}
            updated = connection.execute(
                sa.update(table).where(table.c.taskset_id == group_id).values(**values)
            )
            if not updated.rowcount:
                connection.execute(
                    sa.insert(table).values(taskset_id=group_id, **values)
                )

        self._transaction(body)

    def _get_group(self, group_id: str) -> dict[str, Any] | None:
        if self.schema != "celery":
            return super()._get_group(group_id)
        table = self._celery_groups
        with self._read() as connection:
            row = connection.execute(
                sa.select(table.c.result, table.c.date_done).where(
                    table.c.taskset_id == group_id
                )
            ).first()
        if row is None or self._expired_celery(row[1]):
            return None
        value = self._pickle_loads(row[0])
        if isinstance(value, dict):
            return value
        # A group saved by Celery itself: a pickled GroupResult (needs celery).
        results = getattr(value, "results", None) or []
        members = [[[str(getattr(item, "id", item)), None], None] for item in results]
        return {"result": [[group_id, None], members]}

    def _delete_group(self, group_id: str) -> None:
        if self.schema != "celery":
            super()._delete_group(group_id)
            return
        with self._write() as connection:
            connection.execute(
                sa.delete(self._celery_groups).where(
                    self._celery_groups.c.taskset_id == group_id
                )
            )


def _naive_utc(timestamp: float) -> datetime:
    """Celery's ``date_done`` form: a naive datetime holding UTC."""
    return datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)
