"""Broker on SQL databases through SQLAlchemy: SQLite, PostgreSQL, MySQL/MariaDB.

URL forms:

- ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db``: the
  embedded default broker, shared by every process that opens the file.
  (``sqlite://`` without a path is refused: an in-memory database is private
  to one connection; use ``memory://`` in tests.)
- ``postgresql://user:password@host:5432/db`` (or ``postgres://``): driver
  psycopg 3 (``transports[postgresql]``).
- ``mysql://user:password@host:3306/db`` and ``mariadb://...``: driver
  PyMySQL (``transports[mysql]``); MySQL 8+ or MariaDB 10.6+ (``SKIP LOCKED``).
- ``sqlalchemy+<dialect>[+driver]://...``: the rest of the URL goes to
  SQLAlchemy as is, with the same driver defaults when none is named
  (``sqlalchemy+postgresql+psycopg2://...`` keeps psycopg2, which then polls
  instead of using LISTEN/NOTIFY).

Options (keyword-only, besides the common ones of
:class:`~transports.Transport`):

- ``table_prefix``: prefix of the five tables (default ``"transports_"``):
  ``messages``, ``queues``, ``exchanges``, ``bindings``.
- ``create_tables``: create missing tables on connect (default true).
- ``poll_interval``: seconds between two cheap change checks while a
  consumer waits where nothing notifies: SQLite off Linux stats its ``-wal``
  file (default 0.02; on Linux inotify reports commits),
  MySQL re-runs the claim (default 0.05); PostgreSQL is woken by NOTIFY.
- ``recheck_interval``: the longest wait without a notification before a
  waiting consumer looks again (default 2.0), which bounds how late a dead
  consumer's expired leases are seen on PostgreSQL.
- ``quarantine_queue``: where malformed rows of queues without a dead-letter
  target are moved (default ``"transports.malformed"``).
- ``engine_options``: extra keyword arguments for ``sqlalchemy.create_engine``.

Capabilities: 10 priority levels, delayed delivery (a ``visible_at``
column, no limit), direct/topic/fanout exchanges routed at publish time
from the bindings table, dead-lettering, ``max_deliveries``, leases (the
same ``visible_at`` column: a claim pushes it ``lease`` seconds ahead, the
owner's lease keeper renews it, ``extend`` pushes it further), per-message
and per-queue TTL, batch publish in one transaction, exact delivery counts.
Claims are atomic: ``BEGIN IMMEDIATE`` on SQLite (WAL mode), ``FOR UPDATE
SKIP LOCKED`` on PostgreSQL and MySQL. A process that forks gets fresh
connections in the child. Clocks of all clients should agree (leases and
delays compare client wall-clock times).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple

import msgwire

from . import _inotify, _routing
from ._url import to_float
from .base import (
    DEATH_COUNT,
    DEATH_QUEUE,
    DEATH_REASON,
    RETURNED,
    Binding,
    Capabilities,
    Consumer,
    Delivery,
    ExchangeSpec,
    Outcome,
    Outgoing,
    QueueSpec,
    Transport,
)
from .errors import (
    DeclarationMismatchError,
    InvalidURLError,
    MissingDriverError,
    UnroutableError,
)

try:
    import sqlalchemy as sa
    from sqlalchemy import event, exc
    from sqlalchemy.dialects import mysql
    from sqlalchemy.engine import Connection, Engine, make_url
except ImportError as _import_error:  # pragma: no cover - depends on the extras
    raise MissingDriverError("sqlalchemy", "sqlalchemy") from _import_error

__all__ = ["SQLAlchemyConsumer", "SQLAlchemyTransport", "sqlalchemy_url"]

logger = logging.getLogger(__name__)

_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_DRIVER_EXTRAS = {"psycopg": "postgresql", "pymysql": "mysql", "MySQLdb": "mysql"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
_JSON = msgwire.JsonCodec()
_NAME = 255
_CHUNK = 500
_SPEC_TTL = 5.0


def sqlalchemy_url(url: str) -> str:
    """Return the SQLAlchemy URL for a broker URL (prefix removed, driver chosen)."""
    scheme, sep, rest = url.partition("://")
    lowered = scheme.lower()
    if lowered.startswith("sqlalchemy+"):
        lowered = lowered[len("sqlalchemy+") :]
    lowered = _DEFAULT_DRIVERS.get(lowered, lowered)
    return f"{lowered}{sep}{rest}"


def _blob() -> sa.types.TypeEngine[bytes]:
    return sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


_EMPTY_ENVELOPE = b'{"h": {}, "p": {}}'


def _envelope(headers: dict[str, Any], properties: dict[str, Any]) -> bytes:
    """Encode headers and properties as the JSON envelope column."""
    if not headers and not properties:
        return _EMPTY_ENVELOPE
    return _JSON.dumps({"h": headers, "p": properties})


def _read_envelope(data: bytes) -> Any:
    """Decode the envelope column; msgwire's tagged types only where present."""
    if data == _EMPTY_ENVELOPE:
        return {"h": {}, "p": {}}
    if b"__type__" in data:
        return _JSON.loads(data)
    return json.loads(data)


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):
        connection.close()


def _data_version(connection: sqlite3.Connection) -> int:
    # fetchall() runs the statement to its end: a half-read statement would
    # keep a read snapshot open and stop checkpoints, so the WAL would grow.
    rows = connection.execute("PRAGMA data_version").fetchall()
    return int(rows[0][0])


class _Claimed(NamedTuple):
    """A claimed row, in the order of ``_claim_columns``."""

    id: int
    queue: str
    rank: int
    expires_at: float | None
    delivery_count: int
    exchange: str
    routing_key: str
    envelope: bytes | None
    body: bytes | None


class _Signal:
    """Wakes waiting consumers of one transport: local publishes and watchers."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.version = 0
        self.waiters = 0
        self.closed = False

    def notify(self) -> None:
        with self.cond:
            self.version += 1
            self.cond.notify_all()


class SQLAlchemyConsumer(Consumer):
    """Consumer of :class:`SQLAlchemyTransport`: claims rows, sleeps until woken.

    Between claims it waits for a local publish, a change seen by the
    transport's watcher (SQLite ``data_version``, PostgreSQL NOTIFY), the
    next delayed or leased row's due time, or ``recheck_interval``.
    """

    transport: SQLAlchemyTransport

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._woken = False
        super().__init__(*args, **kwargs)

    def _receive(
        self, queues: tuple[str, ...], limit: int, timeout: float
    ) -> list[Delivery]:
        transport = self.transport
        signal = transport._signal_for_waiting()
        deadline = time.monotonic() + timeout
        while True:
            seen = signal.version
            got = transport._claim(self, queues, limit)
            if got:
                return got
            remaining = deadline - time.monotonic()
            if self._take_wake() or remaining <= 0:
                return []
            wait = min(remaining, transport._idle_wait)
            due = transport._next_due(queues)
            if due is not None:
                wait = min(wait, max(0.0, due - time.time()) + 0.002)
            with signal.cond:
                signal.waiters += 1
                try:
                    if signal.version == seen and not self._woken:
                        signal.cond.notify_all()  # let the watcher see a waiter
                        signal.cond.wait(wait)
                finally:
                    signal.waiters -= 1
            if self._take_wake():
                return []

    def _take_wake(self) -> bool:
        """Return whether :meth:`_wake` was called since the last check, and reset."""
        woken, self._woken = self._woken, False
        return woken

    def _wake(self) -> None:
        signal = self.transport._signal
        with signal.cond:
            self._woken = True
            signal.cond.notify_all()


_transports: weakref.WeakSet[SQLAlchemyTransport] = weakref.WeakSet()
_inherited: list[Any] = []


def _after_fork_in_child() -> None:
    for transport in list(_transports):
        transport._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SQLAlchemyTransport(Transport):
    """Queues in SQL tables, claimed atomically, with leases.

    Args:
        url: See the module documentation for the forms.
        table_prefix: Prefix of the tables.
        create_tables: Create missing tables.
        poll_interval: Seconds between change checks of a waiting consumer
            (SQLite ``data_version``, MySQL claims).
        recheck_interval: The longest idle wait before looking again.
        quarantine_queue: Where malformed rows go when their queue has no
            dead-letter target.
        engine_options: Extra ``create_engine`` arguments.
        **options: The common options of :class:`~transports.Transport`.

    Raises:
        InvalidURLError: The URL or an option is malformed.
        MissingDriverError: SQLAlchemy or the database driver is missing.
        TransportConnectionError: The database stayed unreachable.
    """

    name: ClassVar[str] = "sqlalchemy"
    capabilities = Capabilities(
        priority_levels=10,
        delayed_delivery=True,
        max_delay=None,
        fanout=True,
        topic=True,
        dead_lettering=True,
        max_deliveries=True,
        leases=True,
        publisher_confirms=True,
        message_ttl=True,
        batch_publish=True,
        delivery_count=True,
        uncounted_release=True,
        quorum_queues=False,
        multiprocess=True,
        persistent=True,
        expiring_sets=True,
    )
    consumer_class = SQLAlchemyConsumer
    connection_errors = (exc.OperationalError, exc.InterfaceError)

    def __init__(
        self,
        url: str,
        *,
        table_prefix: str = "transports_",
        create_tables: bool = True,
        poll_interval: float | None = None,
        recheck_interval: float = 2.0,
        quarantine_queue: str = "transports.malformed",
        engine_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        prefix: object = table_prefix
        if not isinstance(prefix, str) or not _IDENTIFIER.fullmatch(prefix):
            raise InvalidURLError(
                f"table_prefix={table_prefix!r} must be letters, digits and "
                "underscores (at most 41, not starting with a digit), e.g. "
                "'transports_'"
            )
        try:
            self._sa_url = make_url(sqlalchemy_url(url))
        except exc.ArgumentError as error:
            raise InvalidURLError(
                f"invalid SQLAlchemy URL {self.url!r}: {error}"
            ) from None
        password = self._sa_url.password
        self._secrets = (str(password),) if password else ()
        self.dialect = self._sa_url.get_backend_name()
        if self.dialect == "sqlite" and self._sa_url.database in (None, "", ":memory:"):
            raise InvalidURLError(
                f"{self.url!r} is an in-memory SQLite database, private to one "
                "connection; give a file (sqlite:///broker.db) or use memory:// "
                "for tests in one process"
            )
        where = f"transport {self.url!r}"
        default_poll = {"sqlite": 0.02, "postgresql": 0.05}.get(self.dialect, 0.05)
        self.poll_interval = (
            to_float(where, "poll_interval", poll_interval)
            if poll_interval is not None
            else default_poll
        ) or default_poll
        self.recheck_interval = to_float(where, "recheck_interval", recheck_interval)
        if not self.recheck_interval:
            raise InvalidURLError(
                f"option recheck_interval of {where} must be positive"
            )
        self._database_path = os.path.abspath(self._sa_url.database or "")
        self.quarantine_queue = quarantine_queue
        self.table_prefix = table_prefix
        self._engine_options = dict(engine_options or {})
        self._listen = (
            self.dialect == "postgresql" and self._sa_url.get_driver_name() == "psycopg"
        )
        self._polls = self.dialect not in ("sqlite", "postgresql") or (
            self.dialect == "postgresql" and not self._listen
        )
        self.channel = f"{table_prefix}wakeup"
        self._pid = os.getpid()
        self._engine = self._make_engine()
        self._signal = _Signal()
        self._watcher: threading.Thread | None = None
        self._watch_lock = threading.Lock()
        self._specs: dict[str, tuple[QueueSpec | None, float]] = {}
        self._statements: dict[tuple[str, int], str] = {}
        self._local = threading.local()
        self._thread_connections: weakref.WeakSet[Any] = weakref.WeakSet()
        #: ids of the SQLite connections inside a transaction now: close()
        #: leaves those to their own thread (closing a connection another
        #: thread is using can crash the interpreter).
        self._busy: set[int] = set()
        self._busy_lock = threading.Lock()
        self._mark = "?" if self.dialect == "sqlite" else "%s"
        dbapi: Any = self._engine.dialect.loaded_dbapi
        self._driver_errors: tuple[type[BaseException], ...] = (
            dbapi.OperationalError,
            dbapi.InterfaceError,
        )
        self._define_tables(table_prefix)
        self.driver_modules = (
            type(self._engine.dialect).__module__,
            str(dbapi.__name__),
        )
        if create_tables:
            self._retrying("create tables", self._create_tables)
        _transports.add(self)

    # -- engine ----------------------------------------------------------------------

    def _make_engine(self) -> Engine:
        options = dict(self._engine_options)
        # Every transaction here ends in an explicit COMMIT or ROLLBACK, so the
        # pool's rollback on each check-in would only add a round trip.
        options.setdefault("pool_reset_on_return", None)
        sqlite = self.dialect == "sqlite"
        if sqlite:
            connect_args = dict(options.pop("connect_args", {}))
            connect_args.setdefault("timeout", 30.0)
            connect_args.setdefault("check_same_thread", False)
            options["connect_args"] = connect_args
        else:
            options.setdefault("pool_pre_ping", True)
            if self.dialect in ("mysql", "mariadb"):
                options.setdefault("isolation_level", "READ COMMITTED")
        try:
            engine = sa.create_engine(self._sa_url, **options)
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
            # SQLAlchemy's "begin" event below issues BEGIN, so writes are IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            read = connection.get_execution_options().get("transports_read")
            connection.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    def _define_tables(self, prefix: str) -> None:
        metadata = sa.MetaData()
        self._metadata = metadata
        self._messages = sa.Table(
            f"{prefix}messages",
            metadata,
            sa.Column(
                "id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                primary_key=True,
                autoincrement=True,
            ),
            sa.Column("queue", sa.String(_NAME), nullable=False),
            sa.Column("rank", sa.SmallInteger, nullable=False),
            sa.Column("visible_at", sa.Double, nullable=False),
            sa.Column("expires_at", sa.Double, nullable=True),
            sa.Column("delivery_count", sa.Integer, nullable=False),
            sa.Column("owner", sa.String(32), nullable=True),
            sa.Column("exchange", sa.String(_NAME), nullable=False),
            sa.Column("routing_key", sa.String(_NAME), nullable=False),
            sa.Column("envelope", _blob(), nullable=True),
            sa.Column("body", _blob(), nullable=True),
            sa.Index(f"{prefix}messages_claim", "queue", "rank", "id"),
            sa.Index(f"{prefix}messages_due", "queue", "visible_at"),
        )
        self._queues = sa.Table(
            f"{prefix}queues",
            metadata,
            sa.Column("name", sa.String(_NAME), primary_key=True),
            sa.Column("arguments", sa.Text, nullable=False),
            sa.Column("expires", sa.Double, nullable=True),
            sa.Column("touched_at", sa.Double, nullable=False),
        )
        self._exchanges = sa.Table(
            f"{prefix}exchanges",
            metadata,
            sa.Column("name", sa.String(_NAME), primary_key=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("durable", sa.Boolean, nullable=False),
        )
        self._bindings = sa.Table(
            f"{prefix}bindings",
            metadata,
            sa.Column("exchange", sa.String(_NAME), primary_key=True),
            sa.Column("queue", sa.String(_NAME), primary_key=True),
            sa.Column("routing_key", sa.String(_NAME), primary_key=True),
        )
        self._sets = sa.Table(
            f"{prefix}sets",
            metadata,
            sa.Column("name", sa.String(_NAME), primary_key=True),
            sa.Column("member", sa.String(_NAME), primary_key=True),
            sa.Column("expires_at", sa.Double, nullable=False),
        )
        m = self._messages
        self._claim_columns = (
            m.c.id,
            m.c.queue,
            m.c.rank,
            m.c.expires_at,
            m.c.delivery_count,
            m.c.exchange,
            m.c.routing_key,
            m.c.envelope,
            m.c.body,
        )

    def _create_tables(self) -> None:
        try:
            self._metadata.create_all(self._engine, checkfirst=True)
        except (exc.IntegrityError, exc.ProgrammingError) as error:
            # Another process created them between the check and the CREATE.
            logger.debug("table creation raced with another process: %s", error)
            self._metadata.create_all(self._engine, checkfirst=True)

    def _check_process(self) -> None:
        if os.getpid() != self._pid:
            self._after_fork()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        self._check_process()
        with self._engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._check_process()
        with self._engine.connect() as connection:
            connection = connection.execution_options(transports_read=True)
            with connection.begin():
                yield connection

    @contextmanager
    def _raw(self) -> Iterator[Any]:
        """A write transaction on this thread's DB-API connection: the hot paths.

        Publishing, claiming and settling skip SQLAlchemy's statement layer
        and its pool (their overhead per statement is several times SQLite's
        own cost) and run SQL built once per shape by :meth:`_sql`.
        """
        self._check_process()
        sqlite = self.dialect == "sqlite"
        connection: Any = (
            self._local_connection() if sqlite else self._engine.raw_connection()
        )
        if sqlite:
            with self._busy_lock:
                self._busy.add(id(connection))
        try:
            cursor = connection.cursor()
            if sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            if sqlite:
                cursor.execute("COMMIT")
            else:
                connection.commit()
        except BaseException as error:
            try:
                if sqlite:
                    connection.driver_connection.rollback()
                else:
                    connection.rollback()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                self._drop_local(connection)
            else:
                if isinstance(error, self._driver_errors):
                    self._drop_local(connection)
            raise
        finally:
            if not sqlite:
                connection.close()  # back to the pool (or discarded if invalidated)
            else:
                with self._busy_lock:
                    self._busy.discard(id(connection))
                if self.closed:  # close() left this one to us
                    self._drop_local(connection)
                    _close_quietly(connection)

    def _local_connection(self) -> Any:
        """This thread's own SQLite connection, kept open and outside the pool.

        Taken from the engine (so its connect events ran) and detached, so
        threads that publish or ack never exhaust the pool; closed when the
        thread ends or the transport closes.
        """
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._engine.raw_connection()
            connection.detach()
            self._local.connection = connection
            self._thread_connections.add(connection)
            weakref.finalize(threading.current_thread(), _close_quietly, connection)
        return connection

    def _drop_local(self, connection: Any) -> None:
        """Forget a broken connection of this thread; the next use opens another."""
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        self._thread_connections.discard(connection)
        with contextlib.suppress(Exception):
            connection.invalidate()

    def _sql(self, key: str, count: int = 1) -> str:
        """Return the hot-path statement *key* for *count* items (cached)."""
        found = self._statements.get((key, count))
        if found is None:
            found = self._statements[(key, count)] = self._build_sql(key, count)
        return found

    def _build_sql(self, key: str, count: int) -> str:
        quote = self._engine.dialect.identifier_preparer.quote
        m = quote(self._messages.name)
        c = {column.name: quote(column.name) for column in self._messages.c}
        p = self._mark
        marks = ", ".join([p] * count)
        pairs = ", ".join([f"({p}, {p})"] * count)
        columns = ", ".join(c[col.name] for col in self._claim_columns)
        insert_columns = (
            "queue", "rank", "visible_at", "expires_at", "delivery_count", "owner",
            "exchange", "routing_key", "envelope", "body",
        )  # fmt: skip
        owned = (
            f"{c['owner']} = {p} AND ({c['id']}, {c['delivery_count']}) IN ({pairs})"
        )
        candidates = (
            f"SELECT {c['id']} FROM {m} WHERE {c['queue']} IN ({marks}) AND "
            f"{c['visible_at']} <= {p} ORDER BY {c['rank']}, {c['id']} LIMIT {p}"
        )
        claim_set = (
            f"{c['visible_at']} = {p}, {c['owner']} = {p}, "
            f"{c['delivery_count']} = {c['delivery_count']} + 1"
        )
        if key == "insert":
            names = ", ".join(c[name] for name in insert_columns)
            values = ", ".join([p] * len(insert_columns))
            return f"INSERT INTO {m} ({names}) VALUES ({values})"
        if key == "claim" and self.dialect == "postgresql":
            prefixed = ", ".join(f"{m}.{c[col.name]}" for col in self._claim_columns)
            return (
                f"WITH chosen AS ({candidates} FOR UPDATE SKIP LOCKED) UPDATE {m} SET "
                f"{claim_set} FROM chosen WHERE {m}.{c['id']} = chosen.{c['id']} "
                f"RETURNING {prefixed}"
            )
        if key == "claim" and self.dialect == "sqlite":
            return (
                f"UPDATE {m} SET {claim_set} WHERE {c['id']} IN ({candidates}) "
                f"RETURNING {columns}"
            )
        if key == "claim":
            return (
                f"SELECT {columns} FROM {m} WHERE {c['queue']} IN ({marks}) AND "
                f"{c['visible_at']} <= {p} ORDER BY {c['rank']}, {c['id']} LIMIT {p} "
                "FOR UPDATE SKIP LOCKED"
            )
        if key == "mark":
            return f"UPDATE {m} SET {claim_set} WHERE {c['id']} IN ({marks})"
        if key == "ack":
            return f"DELETE FROM {m} WHERE {owned}"
        if key == "requeue":
            return (
                f"UPDATE {m} SET {c['owner']} = NULL, {c['visible_at']} = {p} "
                f"WHERE {owned}"
            )
        if key == "release":
            return (
                f"UPDATE {m} SET {c['owner']} = NULL, {c['visible_at']} = {p}, "
                f"{c['delivery_count']} = {c['delivery_count']} - 1 WHERE {owned}"
            )
        if key == "notify":
            return f"SELECT pg_notify({p}, {p})"
        if key == "routes":
            b = quote(self._bindings.name)
            return (
                f"SELECT {quote('exchange')}, {quote('queue')}, "
                f"{quote('routing_key')} FROM {b} WHERE {quote('exchange')} "
                f"IN ({marks})"
            )
        if key == "kinds":
            e = quote(self._exchanges.name)
            return (
                f"SELECT {quote('name')}, {quote('kind')} FROM {e} WHERE "
                f"{quote('name')} IN ({marks})"
            )
        raise KeyError(key)

    def _after_fork(self) -> None:
        """In a forked child: drop the parent's connections, threads and consumers."""
        if os.getpid() == self._pid:
            return
        self._pid = os.getpid()
        self._engine.dispose(close=False)
        # The parent's connections stay referenced, never closed or reused here:
        # closing a SQLite handle inherited across fork can break the parent's.
        _inherited.extend(self._thread_connections)
        self._local = threading.local()
        self._thread_connections = weakref.WeakSet()
        self._busy = set()
        self._busy_lock = threading.Lock()
        self._signal = _Signal()
        self._watcher = None
        self._watch_lock = threading.Lock()
        for consumer in list(self._consumers):
            consumer._closed = True
        super()._after_fork()

    def _close(self) -> None:
        with self._signal.cond:
            self._signal.closed = True
            self._signal.cond.notify_all()
        with self._busy_lock:
            idle = [c for c in self._thread_connections if id(c) not in self._busy]
        for connection in idle:
            with contextlib.suppress(Exception):
                connection.close()
        self._engine.dispose()

    # -- declarations ------------------------------------------------------------------

    def _spec(self, name: str, *, fresh: bool = False) -> QueueSpec | None:
        """The declared spec of queue *name* (cached a few seconds), or ``None``."""
        cached = self._specs.get(name)
        now = time.monotonic()
        if cached is not None and not fresh and now - cached[1] < _SPEC_TTL:
            return cached[0]
        with self._read() as connection:
            row = connection.execute(
                sa.select(self._queues.c.arguments).where(self._queues.c.name == name)
            ).first()
        spec = None if row is None else self._parse_spec(name, row[0])
        self._specs[name] = (spec, now)
        return spec

    @staticmethod
    def _parse_spec(name: str, text: str) -> QueueSpec:
        arguments = _JSON.loads(text.encode())
        return QueueSpec(name=name, **arguments)

    def _declare_queue(self, spec: QueueSpec) -> None:
        table = self._queues
        text = _JSON.dumps(spec.arguments()).decode()
        for _ in range(3):
            with self._write() as connection:
                row = connection.execute(
                    sa.select(table.c.arguments).where(table.c.name == spec.name)
                ).first()
                if row is None:
                    try:
                        connection.execute(
                            sa.insert(table).values(
                                name=spec.name,
                                arguments=text,
                                expires=spec.expires,
                                touched_at=time.time(),
                            )
                        )
                    except exc.IntegrityError:
                        continue  # declared by another process meanwhile
                    self._specs[spec.name] = (spec, time.monotonic())
                    return
            existing = self._parse_spec(spec.name, row[0])
            if existing != spec:
                raise DeclarationMismatchError(
                    spec.name, existing.arguments(), spec.arguments()
                )
            self._specs[spec.name] = (spec, time.monotonic())
            return

    def _declare_exchange(self, spec: ExchangeSpec) -> None:
        table = self._exchanges
        for _ in range(3):
            with self._write() as connection:
                row = connection.execute(
                    sa.select(table.c.kind, table.c.durable).where(
                        table.c.name == spec.name
                    )
                ).first()
                if row is None:
                    try:
                        connection.execute(
                            sa.insert(table).values(
                                name=spec.name, kind=spec.kind, durable=spec.durable
                            )
                        )
                    except exc.IntegrityError:
                        continue
                    return
            existing = ExchangeSpec(spec.name, row[0], bool(row[1]))
            if existing != spec:
                raise DeclarationMismatchError(
                    spec.name, existing.arguments(), spec.arguments()
                )
            return

    def _bind(self, binding: Binding) -> None:
        table = self._bindings
        values = {
            "exchange": binding.exchange,
            "queue": binding.queue,
            "routing_key": binding.routing_key,
        }
        with self._write() as connection:
            found = connection.execute(
                sa.select(table.c.queue).where(
                    *(table.c[key] == value for key, value in values.items())
                )
            ).first()
            if found is None:
                try:
                    with connection.begin_nested():
                        connection.execute(sa.insert(table).values(**values))
                except exc.IntegrityError:
                    logger.debug("binding %r was created concurrently", binding)

    def _unbind(self, binding: Binding) -> None:
        table = self._bindings
        with self._write() as connection:
            connection.execute(
                sa.delete(table).where(
                    table.c.exchange == binding.exchange,
                    table.c.queue == binding.queue,
                    table.c.routing_key == binding.routing_key,
                )
            )

    def _delete_queue(self, name: str) -> None:
        with self._write() as connection:
            self._delete_queue_in(connection, name)
        self._specs.pop(name, None)

    def _delete_queue_in(self, connection: Connection, name: str) -> None:
        connection.execute(
            sa.delete(self._messages).where(self._messages.c.queue == name)
        )
        connection.execute(
            sa.delete(self._bindings).where(self._bindings.c.queue == name)
        )
        connection.execute(sa.delete(self._queues).where(self._queues.c.name == name))

    # -- publishing --------------------------------------------------------------------

    def _routes(
        self, cursor: Any, messages: list[Outgoing]
    ) -> dict[str, tuple[str, list[tuple[str, str]]]]:
        """Exchange kind and bindings for each exchange named in *messages*."""
        names = sorted({m.exchange for m in messages if m.exchange})
        routes: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        if not names:
            return routes
        cursor.execute(self._sql("kinds", len(names)), names)
        kinds = {str(name): str(kind) for name, kind in cursor.fetchall()}
        cursor.execute(self._sql("routes", len(names)), names)
        rows = cursor.fetchall()
        for name in names:
            routes[name] = (kinds.get(name, "direct"), [])
        for exchange, queue, key in rows:
            routes[exchange][1].append((queue, key))
        return routes

    def _row(self, queue: str, message: Outgoing, envelope: bytes) -> tuple[Any, ...]:
        expires_at = message.expires_at
        spec = self._spec(queue) if queue else None
        if spec is not None and spec.message_ttl is not None:
            limit = message.visible_at + spec.message_ttl
            expires_at = limit if expires_at is None else min(expires_at, limit)
        return (
            queue,
            9 - message.priority,
            message.visible_at,
            expires_at,
            0,
            None,
            message.exchange,
            message.routing_key,
            envelope,
            message.body,
        )

    def _publish(self, messages: list[Outgoing], mandatory: bool) -> None:
        if len(messages) == 1 and not mandatory and not messages[0].exchange:
            self._publish_one(messages[0])
            return
        unroutable: list[Outgoing] = []
        if mandatory:
            unroutable = [
                message
                for message in messages
                if not message.exchange
                and self._spec(message.routing_key) is None
                and self._spec(message.routing_key, fresh=True) is None
            ]
        skip = {id(message) for message in unroutable}
        rows: list[tuple[Any, ...]] = []
        with self._raw() as cursor:
            routes = self._routes(cursor, messages)
            for message in messages:
                if id(message) in skip:
                    continue
                if message.exchange:
                    kind, bindings = routes[message.exchange]
                    targets = _routing.route(kind, bindings, message.routing_key)
                else:
                    targets = [message.routing_key]
                if not targets:
                    unroutable.append(message)
                    continue
                envelope = _envelope(message.headers, message.properties)
                rows.extend(self._row(queue, message, envelope) for queue in targets)
            if len(rows) == 1:
                cursor.execute(self._sql("insert"), rows[0])
            elif rows:
                cursor.executemany(self._sql("insert"), rows)
            if rows and self._listen:
                for queue in sorted({row[0] for row in rows}):
                    cursor.execute(self._sql("notify"), (self.channel, queue))
        if rows:
            self._signal.notify()
        if unroutable:
            if not mandatory:
                logger.debug(
                    "%s transport: %d message(s) matched no queue and were dropped",
                    self.name,
                    len(unroutable),
                )
                return
            first = unroutable[0]
            where = (
                f"exchange {first.exchange!r} with routing key {first.routing_key!r}"
                if first.exchange
                else f"queue {first.routing_key!r}, which was never declared"
            )
            raise UnroutableError(
                f"no queue receives messages published to {where} "
                f"({len(unroutable)} message(s) unroutable); declare and bind a "
                "queue first"
            )

    def _publish_one(self, message: Outgoing) -> None:
        """The common case, straight to a queue: one INSERT, no routing."""
        queue = message.routing_key
        row = self._row(queue, message, _envelope(message.headers, message.properties))
        with self._raw() as cursor:
            cursor.execute(self._sql("insert"), row)
            if self._listen:
                cursor.execute(self._sql("notify"), (self.channel, queue))
        self._signal.notify()

    # -- consuming ---------------------------------------------------------------------

    def _claim(
        self, consumer: Consumer, queues: tuple[str, ...], limit: int
    ) -> list[Delivery]:
        """Claim up to *limit* visible rows of *queues* for *consumer*, atomically.

        One queue at a time, in one transaction, starting with the next queue
        in turn at each claim: a backlog in one queue does not starve the
        others (as kombu rotates its queues).
        """
        if not queues:
            return []
        now = time.time()
        specs = {name: self._spec(name) for name in queues}
        until = now + self.lease
        sql = self._sql("claim", 1)
        rows: list[_Claimed] = []
        with self._raw() as cursor:
            for queue in consumer._in_turn(queues):
                wanted = limit - len(rows)
                if wanted <= 0:
                    break
                if self.dialect == "postgresql":
                    cursor.execute(sql, (queue, now, wanted, until, consumer.token))
                    rows += [_Claimed(*row) for row in cursor.fetchall()]
                elif self.dialect == "sqlite":
                    cursor.execute(sql, (until, consumer.token, queue, now, wanted))
                    rows += [_Claimed(*row) for row in cursor.fetchall()]
                else:
                    cursor.execute(sql, (queue, now, wanted))
                    locked = [_Claimed(*row) for row in cursor.fetchall()]
                    if locked:
                        cursor.execute(
                            self._sql("mark", len(locked)),
                            (until, consumer.token, *[row.id for row in locked]),
                        )
                    rows += [
                        r._replace(delivery_count=r.delivery_count + 1) for r in locked
                    ]
        rows.sort(key=lambda r: r.rank)  # stable: each queue's rows stay in order
        deliveries = []
        bad: list[tuple[_Claimed, str | None]] = []
        for row in rows:
            delivery, problem = self._delivery(row, specs.get(row.queue), now)
            if delivery is not None:
                deliveries.append(delivery)
            else:
                bad.append((row, problem))
        if bad:
            self._retrying("move aside", self._move_aside, consumer, bad, specs)
        return deliveries

    def _move_aside(
        self,
        consumer: Consumer,
        bad: list[tuple[_Claimed, str | None]],
        specs: dict[str, QueueSpec | None],
    ) -> None:
        """Dead-letter or quarantine claimed rows that must not be delivered."""
        m = self._messages
        with self._write() as connection:
            for row, problem in bad:
                still_ours = connection.execute(
                    sa.select(m.c.id).where(
                        m.c.id == row.id, m.c.owner == consumer.token
                    )
                ).first()
                if still_ours is None:
                    continue
                spec = specs.get(row.queue)
                if problem is None:
                    self._dead_letter(
                        connection, row, spec, self._reason(row, spec), None
                    )
                else:
                    self._quarantine(connection, row, spec, problem)

    @staticmethod
    def _reason(row: Any, spec: QueueSpec | None) -> str:
        limit = None if spec is None else spec.max_deliveries
        if limit is not None and row.delivery_count > limit:
            return f"delivered {row.delivery_count - 1} times without an ack"
        return "expired"

    def _delivery(
        self, row: _Claimed, spec: QueueSpec | None, now: float
    ) -> tuple[Delivery | None, str | None]:
        """Build the delivery for a claimed row.

        Returns ``(None, None)`` for a row to dead-letter (expired, or past
        ``max_deliveries``) and ``(None, reason)`` for a malformed one.
        """
        if row.expires_at is not None and row.expires_at <= now:
            return None, None
        if (
            spec is not None
            and spec.max_deliveries is not None
            and row.delivery_count > spec.max_deliveries
        ):
            return None, None
        try:
            if row.body is None or row.envelope is None:
                raise ValueError("the body or envelope column is NULL")
            envelope = _read_envelope(bytes(row.envelope))
            headers = envelope["h"]
            properties = envelope["p"]
            if not isinstance(headers, dict) or not isinstance(properties, dict):
                raise TypeError("headers and properties must be JSON objects")
        except Exception as error:  # noqa: BLE001 - any damage means "move it aside"
            return None, f"{type(error).__name__}: {error}"
        delivery = Delivery(
            body=bytes(row.body),
            headers=headers,
            properties=properties,
            queue=row.queue,
            exchange=row.exchange,
            routing_key=row.routing_key,
            delivery_count=row.delivery_count,
            tag=(row.id, row.delivery_count),
        )
        return delivery, None

    def _dead_letter(
        self,
        connection: Connection,
        row: Any,
        spec: QueueSpec | None,
        reason: str,
        envelope: dict[str, Any] | None,
    ) -> None:
        m = self._messages
        target = spec.dead_letter if spec is not None else None
        if target is None:
            connection.execute(sa.delete(m).where(m.c.id == row.id))
            logger.error(
                "%s transport %s: dropped message %s of queue %r (%s); declare the "
                "queue with dead_letter=... to keep such messages",
                self.name,
                self.url,
                row.id,
                row.queue,
                reason,
            )
            return
        if envelope is None:
            try:
                envelope = _JSON.loads(bytes(row.envelope))
                if not isinstance(envelope, dict) or not isinstance(
                    envelope.get("h"), dict
                ):
                    raise TypeError("not an envelope")
            except Exception:  # noqa: BLE001 - damaged: quarantine instead
                self._quarantine(connection, row, spec, reason)
                return
        headers = dict(envelope["h"])
        headers.update(
            {
                DEATH_REASON: reason,
                DEATH_QUEUE: row.queue,
                DEATH_COUNT: max(row.delivery_count - 1, 0)
                if reason == "expired" or reason.startswith("delivered")
                else row.delivery_count,
            }
        )
        moved = {"h": headers, "p": envelope.get("p", {})}
        self._move(connection, row.id, target, _JSON.dumps(moved))
        logger.warning(
            "%s transport %s: moved message %s of queue %r to %r (%s)",
            self.name,
            self.url,
            row.id,
            row.queue,
            target,
            reason,
        )

    def _quarantine(
        self, connection: Connection, row: Any, spec: QueueSpec | None, reason: str
    ) -> None:
        target = (
            spec.dead_letter if spec is not None else None
        ) or self.quarantine_queue
        raw = bytes(row.envelope) if row.envelope is not None else b""
        headers = {
            DEATH_REASON: f"malformed message: {reason}",
            DEATH_QUEUE: row.queue,
            DEATH_COUNT: row.delivery_count,
            "x-original-envelope": raw[:4096].decode("utf-8", "replace"),
        }
        if row.body is None:
            self._messages_update(connection, row.id, body=b"")
        self._move(connection, row.id, target, _JSON.dumps({"h": headers, "p": {}}))
        logger.error(
            "%s transport %s: moved malformed message %s of queue %r to %r: %s",
            self.name,
            self.url,
            row.id,
            row.queue,
            target,
            reason,
        )

    def _messages_update(
        self, connection: Connection, row_id: int, **values: Any
    ) -> None:
        m = self._messages
        connection.execute(sa.update(m).where(m.c.id == row_id).values(**values))

    def _move(
        self, connection: Connection, row_id: int, queue: str, envelope: bytes
    ) -> None:
        self._messages_update(
            connection,
            row_id,
            queue=queue,
            envelope=envelope,
            visible_at=time.time(),
            expires_at=None,
            delivery_count=0,
            owner=None,
        )

    def _next_due(self, queues: tuple[str, ...]) -> float | None:
        """The earliest future ``visible_at`` among *queues* (delays, leases)."""
        m = self._messages
        try:
            with self._read() as connection:
                value = connection.execute(
                    sa.select(sa.func.min(m.c.visible_at)).where(
                        m.c.queue.in_(queues), m.c.visible_at > time.time()
                    )
                ).scalar()
        except self._retryable():
            return None
        return None if value is None else float(value)

    @property
    def _idle_wait(self) -> float:
        assert self.recheck_interval is not None  # noqa: S101 - set in __init__
        return self.poll_interval if self._polls else self.recheck_interval

    def _signal_for_waiting(self) -> _Signal:
        """The signal to wait on; starts the change watcher on first use."""
        self._check_process()
        if self.dialect == "sqlite" or self._listen:
            with self._watch_lock:
                if self._watcher is None or not self._watcher.is_alive():
                    target = (
                        self._watch_sqlite
                        if self.dialect == "sqlite"
                        else self._watch_postgres
                    )
                    self._watcher = threading.Thread(
                        target=target,
                        args=(self._signal,),
                        name="transports-watch",
                        daemon=True,
                    )
                    self._watcher.start()
        return self._signal

    def _watch_sqlite(self, signal: _Signal) -> None:
        """Wake waiters when another connection commits.

        A commit in WAL mode writes to the ``-wal`` file. On Linux inotify
        reports that write, so an idle consumer costs no CPU; elsewhere the
        file is ``stat``-ed every ``poll_interval``. Either way ``PRAGMA
        data_version`` (exact, but dearer than a ``stat``) confirms each
        change, and runs every second in case an event was missed.
        """
        wal = self._database_path + "-wal"

        def stamp() -> tuple[int, int, int] | None:
            try:
                status = os.stat(wal)
            except OSError:
                return None
            return (status.st_mtime_ns, status.st_size, status.st_ino)

        watch = _inotify.open_watch(self._database_path, ("-wal",))
        connection = sqlite3.connect(
            self._database_path, timeout=30.0, check_same_thread=False
        )
        connection.isolation_level = None
        try:
            version = _data_version(connection)
            seen = stamp()
            checked = time.monotonic()
            settling = 0.0
            while True:
                with signal.cond:
                    while signal.waiters == 0 and not signal.closed:
                        signal.cond.wait(1.0)
                    if signal.closed or signal is not self._signal:
                        return
                if watch is not None:
                    # A write to the WAL can precede its commit by a moment:
                    # after an event, look again every 2 ms for 50 ms.
                    pending = time.monotonic() < settling
                    changed = watch.wait(0.002 if pending else 0.5) or pending
                    if changed and not pending:
                        settling = time.monotonic() + 0.05
                else:
                    time.sleep(self.poll_interval)
                    current = stamp()
                    changed, seen = current != seen, current
                if not changed and time.monotonic() - checked < 1.0:
                    continue
                checked = time.monotonic()
                now = _data_version(connection)
                if now != version:
                    version = now
                    settling = 0.0
                    signal.notify()
        except (sqlite3.Error, OSError) as error:
            logger.warning(
                "%s transport %s: change watcher stopped: %s",
                self.name,
                self.url,
                error,
            )
        finally:
            connection.close()
            if watch is not None:
                watch.close()

    def _watch_postgres(self, signal: _Signal) -> None:
        """Wake waiters on NOTIFY from publishers (LISTEN on a dedicated connection)."""
        import psycopg
        import psycopg.sql

        conninfo = self._sa_url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        attempt = 0
        while self._listening(signal):
            try:
                with psycopg.connect(
                    conninfo, autocommit=True, connect_timeout=5
                ) as conn:
                    conn.execute(
                        psycopg.sql.SQL("LISTEN {}").format(
                            psycopg.sql.Identifier(self.channel)
                        )
                    )
                    attempt = 0
                    signal.notify()  # changes may have been missed while reconnecting
                    while self._listening(signal):
                        # select() (patched under gevent and eventlet) waits for
                        # the socket: psycopg's own wait would block the hub.
                        ready, _, _ = select.select([conn.fileno()], [], [], 1.0)
                        if ready and any(True for _ in conn.notifies(timeout=0)):
                            signal.notify()
            except psycopg.Error as error:
                pause = min(0.05 * 2**attempt, self.retry_backoff_max or 1.0)
                attempt += 1
                logger.warning(
                    "%s transport %s: LISTEN connection lost (%s); again in %.2f s",
                    self.name,
                    self.url,
                    self._scrub(error),
                    pause,
                )
                time.sleep(pause)

    def _retryable(self) -> tuple[type[BaseException], ...]:
        return (*self.connection_errors, *self._driver_errors)

    def _listening(self, signal: _Signal) -> bool:
        return not signal.closed and signal is self._signal

    # -- settling and leases -----------------------------------------------------------

    def _owned(self, consumer: Consumer, deliveries: Sequence[Delivery]) -> Any:
        m = self._messages
        return sa.and_(
            m.c.owner == consumer.token,
            sa.tuple_(m.c.id, m.c.delivery_count).in_(
                [tuple(d.tag) for d in deliveries]
            ),
        )

    def _settle(
        self, consumer: Consumer, deliveries: list[Delivery], outcome: Outcome
    ) -> None:
        if outcome == "reject":
            self._reject(consumer, deliveries)
        else:
            now = time.time()
            with self._raw() as cursor:
                for start in range(0, len(deliveries), _CHUNK):
                    chunk = deliveries[start : start + _CHUNK]
                    pairs = [value for d in chunk for value in d.tag]
                    if outcome == "ack":
                        params: tuple[Any, ...] = (consumer.token, *pairs)
                    else:
                        params = (now, consumer.token, *pairs)
                    cursor.execute(self._sql(outcome, len(chunk)), params)
                if self._listen and outcome in RETURNED:
                    cursor.execute(self._sql("notify"), (self.channel, ""))
        if outcome != "ack":
            self._signal.notify()

    def _reject(self, consumer: Consumer, deliveries: list[Delivery]) -> None:
        with self._write() as connection:
            for start in range(0, len(deliveries), _CHUNK):
                chunk = deliveries[start : start + _CHUNK]
                rows = connection.execute(
                    sa.select(*self._claim_columns).where(self._owned(consumer, chunk))
                ).all()
                for row in rows:
                    self._dead_letter(
                        connection, row, self._spec(row.queue), "rejected", None
                    )
            if self._listen:
                connection.execute(
                    sa.text("SELECT pg_notify(:c, :q)"), {"c": self.channel, "q": ""}
                )

    def _renew(
        self, consumer: Consumer, deliveries: list[Delivery], seconds: float
    ) -> None:
        m = self._messages
        now = time.time()
        groups: dict[float, list[Delivery]] = {}
        for delivery in deliveries:
            until = max(now + seconds, delivery.extended_until)
            groups.setdefault(round(until, 3), []).append(delivery)
        with self._write() as connection:
            for until, items in groups.items():
                for start in range(0, len(items), _CHUNK):
                    chunk = items[start : start + _CHUNK]
                    connection.execute(
                        sa.update(m)
                        .where(
                            m.c.owner == consumer.token,
                            m.c.id.in_([d.tag[0] for d in chunk]),
                            m.c.visible_at < until,
                        )
                        .values(visible_at=until)
                    )

    def _housekeeping(self) -> None:
        """Touch consumed expiring queues, drop expired ones, sweep expired rows."""
        now = time.time()
        consumed = sorted({name for c in self._live_consumers() for name in c.queues})
        q = self._queues
        m = self._messages
        with self._write() as connection:
            if consumed:
                connection.execute(
                    sa.update(q)
                    .where(q.c.name.in_(consumed), q.c.expires.is_not(None))
                    .values(touched_at=now)
                )
            stale = (
                connection.execute(
                    sa.select(q.c.name).where(
                        q.c.expires.is_not(None), q.c.touched_at + q.c.expires < now
                    )
                )
                .scalars()
                .all()
            )
            for name in stale:
                logger.info("%s transport: removing expired queue %r", self.name, name)
                self._delete_queue_in(connection, name)
            expired = connection.execute(
                sa.select(*self._claim_columns)
                .where(
                    m.c.expires_at.is_not(None),
                    m.c.expires_at <= now,
                    m.c.visible_at <= now,
                )
                .limit(_CHUNK)
            ).all()
            for row in expired:
                self._dead_letter(
                    connection, row, self._spec(row.queue), "expired", None
                )

    # -- queue management --------------------------------------------------------------

    def _purge(self, queue: str) -> int:
        m = self._messages
        with self._write() as connection:
            result = connection.execute(
                sa.delete(m).where(m.c.queue == queue, m.c.visible_at <= time.time())
            )
        return int(result.rowcount)

    def _remember(
        self, name: str, keys: list[str], expires_at: float, limit: int
    ) -> None:
        t = self._sets
        now = time.time()
        with self._write() as connection:
            connection.execute(
                sa.delete(t).where(
                    t.c.name == name,
                    sa.or_(t.c.member.in_(keys), t.c.expires_at <= now),
                )
            )
            connection.execute(
                sa.insert(t),
                [{"name": name, "member": k, "expires_at": expires_at} for k in keys],
            )
            count = connection.execute(
                sa.select(sa.func.count()).where(t.c.name == name)
            ).scalar_one()
            if count > limit:  # drop the ones expiring first
                cut = connection.execute(
                    sa.select(t.c.expires_at)
                    .where(t.c.name == name)
                    .order_by(t.c.expires_at)
                    .offset(count - limit)
                    .limit(1)
                ).scalar_one()
                connection.execute(
                    sa.delete(t).where(t.c.name == name, t.c.expires_at < cut)
                )

    def _recall(self, name: str) -> dict[str, float]:
        t = self._sets
        with self._read() as connection:
            rows = connection.execute(
                sa.select(t.c.member, t.c.expires_at).where(
                    t.c.name == name, t.c.expires_at > time.time()
                )
            ).all()
        return {member: float(at) for member, at in rows}

    def _size(self, queue: str) -> int:
        m = self._messages
        now = time.time()
        with self._read() as connection:
            value = connection.execute(
                sa.select(sa.func.count()).where(
                    m.c.queue == queue,
                    m.c.visible_at <= now,
                    sa.or_(m.c.expires_at.is_(None), m.c.expires_at > now),
                )
            ).scalar_one()
        return int(value)

    def drop_tables(self) -> None:
        """Drop this transport's five tables (for tests and tear-down scripts).

        Raises:
            TransportConnectionError: The database stayed unreachable.
        """
        self._retrying("drop tables", self._metadata.drop_all, self._engine)
