"""Publish and consume+ack rates per transport, each beside a raw-driver baseline.

Run with ``nox -s bench -- transports`` (or ``python benchmarks/bench_transports.py``).
Options: ``--count N`` messages per phase (20,000), ``--size B`` body bytes
(200), ``--batch N`` messages per batched publish (500), ``--prefetch N``
(100), ``--transports a,b`` to choose. Servers come from ``POSTGRES_URL`` and
``MYSQL_URL`` (defaulting to the local ports); a transport whose server or
driver is missing is reported and skipped.

Phases, one thread, one queue:

- ``publish``: ``publish(queue, body)`` once per message;
- ``publish batched``: ``publish_many`` of ``--batch`` messages;
- ``consume+ack``: ``fetch`` up to ``--prefetch`` deliveries, ``ack_many`` them.

Each phase runs ``--rounds`` times (2), the transport and its baseline
alternating, and the best rate of each is shown: the disk and the servers are
shared, and the best run is the least disturbed one.

Each baseline issues the same statements through the driver alone, on tables
of its own (sqlite3,
psycopg, PyMySQL cursors): the same INSERT (plus ``pg_notify`` on
PostgreSQL), the same claim (``UPDATE ... RETURNING`` / ``SKIP LOCKED``) and
the same DELETE, in the same transactions, so the ratio is what the
transport's own work costs. To add a transport, add a :class:`Target` to
:func:`targets` with a :class:`Baseline` subclass doing its raw commands.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import transports
from transports import Message, connect

PREFIX = f"qm_bench_{os.getpid()}_"
RAW_PREFIX = f"qm_bench_{os.getpid()}_raw_"
ENVELOPE = b'{"h": {}, "p": {}}'
COLUMNS = (
    "id, queue, rank, expires_at, delivery_count, exchange, routing_key, envelope, body"
)


class Baseline(ABC):
    """The same broker commands as the transport, through the raw client alone."""

    @abstractmethod
    def publish(self, queue: str, bodies: list[bytes]) -> None:
        """Publish each body in its own round trip."""

    @abstractmethod
    def publish_batches(self, queue: str, bodies: list[bytes], batch: int) -> None:
        """Publish the bodies *batch* at a time."""

    @abstractmethod
    def consume(self, queue: str, count: int, prefetch: int) -> None:
        """Claim up to *prefetch* at a time and ack each batch, *count* in all."""

    @abstractmethod
    def purge(self, queue: str) -> None:
        """Remove the queue's messages."""

    @abstractmethod
    def close(self) -> None:
        """Release the client."""


class _SQLBaseline(Baseline):
    """DB-API cursors with the statements the SQL transport issues."""

    mark = "?"

    def __init__(self, connection: Any, table: str, lease: float = 60.0) -> None:
        self.db = connection
        self.table = table
        self.lease = lease
        self.token = uuid.uuid4().hex

    def begin(self, cursor: Any) -> None:
        """Start a write transaction (DB-API drivers start one implicitly)."""

    def commit(self) -> None:
        self.db.commit()

    def notify(self, cursor: Any, queue: str) -> None:
        """Wake consumers (PostgreSQL only)."""

    def _row(self, queue: str, body: bytes) -> tuple[Any, ...]:
        return (queue, 9, time.time(), None, 0, None, "", queue, ENVELOPE, body)

    def _insert(self) -> str:
        marks = ", ".join([self.mark] * 10)
        return (
            f"INSERT INTO {self.table} (queue, rank, visible_at, expires_at, "
            "delivery_count, owner, exchange, routing_key, envelope, body) "
            f"VALUES ({marks})"
        )

    def publish(self, queue: str, bodies: list[bytes]) -> None:
        sql = self._insert()
        cursor = self.db.cursor()
        for body in bodies:
            self.begin(cursor)
            cursor.execute(sql, self._row(queue, body))
            self.notify(cursor, queue)
            self.commit()

    def publish_batches(self, queue: str, bodies: list[bytes], batch: int) -> None:
        sql = self._insert()
        cursor = self.db.cursor()
        for start in range(0, len(bodies), batch):
            self.begin(cursor)
            cursor.executemany(
                sql, [self._row(queue, body) for body in bodies[start : start + batch]]
            )
            self.notify(cursor, queue)
            self.commit()

    def claim(self, cursor: Any, queue: str, limit: int) -> list[Any]:
        m, q = self.table, self.mark
        now = time.time()
        cursor.execute(
            f"UPDATE {m} SET visible_at={q}, owner={q}, "
            "delivery_count=delivery_count + 1 WHERE id IN (SELECT id FROM "
            f"{m} WHERE queue IN ({q}) AND visible_at <= {q} ORDER BY rank, id "
            f"LIMIT {q}) RETURNING {COLUMNS}",
            (now + self.lease, self.token, queue, now, limit),
        )
        return list(cursor.fetchall())

    def consume(self, queue: str, count: int, prefetch: int) -> None:
        cursor = self.db.cursor()
        done = 0
        while done < count:
            self.begin(cursor)
            rows = self.claim(cursor, queue, prefetch)
            self.commit()
            if not rows:
                raise AssertionError("the baseline ran out of messages")
            pairs = ", ".join([f"({self.mark}, {self.mark})"] * len(rows))
            params: list[Any] = [self.token]
            for row in rows:
                params += [row[0], row[4]]
            self.begin(cursor)
            cursor.execute(
                f"DELETE FROM {self.table} WHERE owner = {self.mark} AND "
                f"(id, delivery_count) IN ({pairs})",
                params,
            )
            self.commit()
            done += len(rows)

    def purge(self, queue: str) -> None:
        cursor = self.db.cursor()
        self.begin(cursor)
        cursor.execute(f"DELETE FROM {self.table} WHERE queue = {self.mark}", (queue,))
        self.commit()

    def close(self) -> None:
        self.db.close()


class SQLiteBaseline(_SQLBaseline):
    def __init__(self, path: str, table: str) -> None:
        connection = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        super().__init__(connection, table)

    def begin(self, cursor: Any) -> None:
        cursor.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")


class PostgresBaseline(_SQLBaseline):
    mark = "%s"

    def __init__(self, url: str, table: str, channel: str) -> None:
        import psycopg

        super().__init__(psycopg.connect(url), table)
        self.channel = channel

    def notify(self, cursor: Any, queue: str) -> None:
        cursor.execute("SELECT pg_notify(%s, %s)", (self.channel, queue))

    def claim(self, cursor: Any, queue: str, limit: int) -> list[Any]:
        m = self.table
        now = time.time()
        cursor.execute(
            f"WITH chosen AS (SELECT id FROM {m} WHERE queue IN (%s) AND "
            "visible_at <= %s ORDER BY rank, id LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"UPDATE {m} SET visible_at=%s, owner=%s, delivery_count="
            f"{m}.delivery_count + 1 FROM chosen WHERE {m}.id = chosen.id "
            "RETURNING " + ", ".join(f"{m}.{c.strip()}" for c in COLUMNS.split(",")),
            (queue, now, limit, now + self.lease, self.token),
        )
        return list(cursor.fetchall())


class MySQLBaseline(_SQLBaseline):
    mark = "%s"

    def __init__(self, url: str, table: str) -> None:
        import pymysql
        from sqlalchemy.engine import make_url

        parts = make_url(url)
        connection = pymysql.connect(
            host=parts.host,
            port=parts.port or 3306,
            user=parts.username,
            password=parts.password or "",
            database=parts.database,
        )
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        super().__init__(connection, table)

    def claim(self, cursor: Any, queue: str, limit: int) -> list[Any]:
        now = time.time()
        cursor.execute(
            f"SELECT {COLUMNS} FROM {self.table} WHERE queue IN (%s) AND "
            "visible_at <= %s ORDER BY rank, id LIMIT %s FOR UPDATE SKIP LOCKED",
            (queue, now, limit),
        )
        rows = list(cursor.fetchall())
        if rows:
            ids = ", ".join(["%s"] * len(rows))
            cursor.execute(
                f"UPDATE {self.table} SET visible_at=%s, owner=%s, "
                f"delivery_count=delivery_count + 1 WHERE id IN ({ids})",
                (now + self.lease, self.token, *[row[0] for row in rows]),
            )
        return [(*row[:4], row[4] + 1, *row[5:]) for row in rows]


@dataclass
class Target:
    """A transport to measure and the raw-client baseline beside it.

    The baseline gets tables of its own (``baseline_url`` and
    ``baseline_options`` create them through the transport, which is then
    closed), so neither side slows the other by the rows it leaves behind.
    """

    url: str
    options: dict[str, Any]
    baseline: Callable[[], Baseline] | None = None
    baseline_url: str = ""
    baseline_options: dict[str, Any] | None = None


def targets(tmp: str) -> dict[str, Target]:
    env = os.environ.get
    postgres = env("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    mysql = env("MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
    ours = {"table_prefix": PREFIX}
    raw = {"table_prefix": RAW_PREFIX}
    table = f"{RAW_PREFIX}messages"
    return {
        "memory": Target("memory://bench", {}),
        "sqlite": Target(
            f"sqlite:///{tmp}/bench.db",
            ours,
            lambda: SQLiteBaseline(f"{tmp}/raw.db", table),
            f"sqlite:///{tmp}/raw.db",
            raw,
        ),
        "postgresql": Target(
            postgres,
            ours,
            lambda: PostgresBaseline(postgres, table, f"{RAW_PREFIX}wakeup"),
            postgres,
            raw,
        ),
        "mysql": Target(mysql, ours, lambda: MySQLBaseline(mysql, table), mysql, raw),
        **_more_targets(tmp),
    }


def _more_targets(tmp: str) -> dict[str, Target]:
    """Targets of the network brokers, each in a ``targets_<broker>.py`` beside this."""
    found: dict[str, Target] = {}
    for module in ("targets_redis", "targets_amqp"):
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        found.update(loaded.targets(tmp))
    return found


def _rate(count: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def _ours(
    transport: Any, queue: str, bodies: list[bytes], batch: int, prefetch: int
) -> dict[str, Callable[[], None]]:
    def single() -> None:
        for body in bodies:
            transport.publish(queue, body)

    def batched() -> None:
        for start in range(0, len(bodies), batch):
            transport.publish_many(
                Message(queue, body) for body in bodies[start : start + batch]
            )

    def consume() -> None:
        done = 0
        with transport.consumer([queue], prefetch=prefetch) as consumer:
            while done < len(bodies):
                got = consumer.fetch(timeout=5.0)
                if not got:
                    raise AssertionError("the transport ran out of messages")
                transport.ack_many(got)
                done += len(got)

    return {"publish": single, "publish batched": batched, "consume+ack": consume}


def _raw(
    baseline: Baseline, queue: str, bodies: list[bytes], batch: int, prefetch: int
) -> dict[str, Callable[[], None]]:
    return {
        "publish": lambda: baseline.publish(queue, bodies),
        "publish batched": lambda: baseline.publish_batches(queue, bodies, batch),
        "consume+ack": lambda: baseline.consume(queue, len(bodies), prefetch),
    }


def measure(
    transport: Any,
    baseline: Baseline | None,
    bodies: list[bytes],
    batch: int,
    prefetch: int,
    rounds: int,
) -> list[tuple[str, float, float | None]]:
    """Best rate of each phase over *rounds*, ours and the baseline alternating."""
    ours_queue, raw_queue = f"{PREFIX}ours", f"{PREFIX}raw"
    transport.declare_queue(ours_queue)
    best: dict[tuple[str, str], float] = {}
    for _ in range(rounds):
        sides = {"ours": _ours(transport, ours_queue, bodies, batch, prefetch)}
        if baseline is not None:
            sides["raw"] = _raw(baseline, raw_queue, bodies, batch, prefetch)
        for phase in ("publish", "publish batched", "consume+ack"):
            for side, runs in sides.items():
                rate = _rate(len(bodies), runs[phase])
                best[(side, phase)] = max(rate, best.get((side, phase), 0.0))
            if phase == "publish":
                transport.purge(ours_queue)
                if baseline is not None:
                    baseline.purge(raw_queue)
    transport.delete_queue(ours_queue)
    return [
        (phase, best[("ours", phase)], best.get(("raw", phase)))
        for phase in ("publish", "publish batched", "consume+ack")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--transports", default="")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(
        f"transports {transports.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; {args.count} messages of "
        f"{args.size} bytes, batches of {args.batch}, prefetch {args.prefetch}"
    )
    bodies = [os.urandom(args.size // 2).hex().encode()[: args.size]] * args.count
    chosen = [name for name in args.transports.split(",") if name]
    header = f"{'transport':<11} {'phase':<16} {'ours/s':>9} {'raw/s':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for name, target in targets(tmp).items():
            if chosen and name not in chosen:
                continue
            try:
                transport = connect(target.url, **target.options)
                tables = (
                    connect(target.baseline_url, **(target.baseline_options or {}))
                    if target.baseline is not None
                    else None
                )
            except (transports.TransportError, OSError) as exc:
                print(f"{name:<11} skipped: {exc}")
                continue
            try:
                baseline = target.baseline() if target.baseline is not None else None
                try:
                    rows = measure(
                        transport, baseline, bodies, args.batch, args.prefetch,
                        args.rounds,
                    )  # fmt: skip
                finally:
                    if baseline is not None:
                        baseline.close()
                for phase, rate, base in rows:
                    shown = (
                        f"{base:>9,.0f} {rate / base:>6.2f}"
                        if base
                        else f"{'-':>9} {'-':>6}"
                    )
                    print(f"{name:<11} {phase:<16} {rate:>9,.0f} {shown}")
            finally:
                for opened in (transport, tables):
                    if opened is not None:
                        if hasattr(opened, "drop_tables"):
                            opened.drop_tables()
                        opened.close()


if __name__ == "__main__":
    main()
