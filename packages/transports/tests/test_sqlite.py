"""The conformance suite over SQLite (the embedded default), and SQL specifics."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from transports import Transport, UnroutableError, connect
from transports.testing import TransportConformance, collect


@pytest.fixture(scope="class")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sqlite") / "broker.db"


class TestSQLiteTransport(TransportConformance):
    @pytest.fixture(autouse=True)
    def _database(self, database: Path) -> None:
        self.path = database

    def transport_url(self) -> str:
        return f"sqlite:///{self.path}"

    def inject_malformed(self, transport: Transport, queue: str) -> bool:
        import sqlite3
        import time

        with sqlite3.connect(self.path) as db:
            db.execute(
                "INSERT INTO transports_messages (queue, rank, visible_at, "
                "delivery_count, exchange, routing_key, envelope, body) "
                "VALUES (?, 9, ?, 0, '', ?, ?, ?)",
                (queue, time.time(), queue, b"{not json", b"x"),
            )
        return True


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'b.db'}"


def test_the_database_runs_in_wal_mode(url: str, tmp_path: Path) -> None:
    import sqlite3

    with connect(url) as transport:
        transport.declare_queue("q")
    mode = sqlite3.connect(tmp_path / "b.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


# Python 3.12+ warns that forking a threaded process may deadlock; forking a
# process that has a transport open is exactly what this test checks.
@pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)
def test_a_forked_child_uses_its_own_connections(url: str) -> None:
    transport = connect(url)
    transport.declare_queue("q")
    transport.publish("q", b"parent")
    consumer = transport.consumer(["q"])
    (held,) = collect(consumer, 1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            assert consumer.closed  # the parent's consumer is not the child's
            transport.publish("q", b"child")
            with transport.consumer(["q"]) as own:
                got = collect(own, 1)
                code = 0 if [d.body for d in got] == [b"child"] else 2
                transport.ack_many(got)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    held.ack()
    assert transport.size("q") == 0
    transport.close()


def test_a_malformed_row_without_a_dead_letter_queue_is_quarantined(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    transport = connect(url)
    transport.declare_queue("q")
    with sqlite3.connect(tmp_path / "b.db") as db:
        db.execute(
            "INSERT INTO transports_messages (queue, rank, visible_at, delivery_count,"
            " exchange, routing_key, envelope, body) VALUES ('q', 9, 0, 0, '', 'q',"
            " ?, NULL)",
            (b'{"h": [], "p": {}}',),
        )
    transport.publish("q", b"good")
    with transport.consumer(["q"]) as consumer:
        got = collect(consumer, 2, timeout=0.5)
        assert [d.body for d in got] == [b"good"]
        transport.ack_many(got)
    assert "moved malformed message" in caplog.text
    with transport.consumer(["transports.malformed"]) as consumer:
        (moved,) = collect(consumer, 1)
        assert moved.headers["x-death-queue"] == "q"
        assert "NULL" in moved.headers["x-death-reason"]
        assert moved.headers["x-original-envelope"] == '{"h": [], "p": {}}'
        moved.ack()
    transport.close()


def test_an_expired_message_is_dead_lettered_with_that_reason(url: str) -> None:
    transport = connect(url)
    transport.declare_queue("dead")
    transport.declare_queue("q", dead_letter="dead")
    transport.publish("q", b"late", ttl=0.05)
    time.sleep(0.1)
    with transport.consumer(["q"]) as consumer:
        assert consumer.fetch(timeout=0.1) == []
    with transport.consumer(["dead"]) as consumer:
        (moved,) = collect(consumer, 1)
        assert moved.headers["x-death-reason"] == "expired"
        moved.ack()
    transport.close()


def test_housekeeping_removes_the_queues_of_dead_subscribers(url: str) -> None:
    transport = connect(url, lease=3.0, renew_interval=1.0)
    transport.declare_exchange("ev", "fanout")
    transport.declare_queue("orphan", expires=0.05, auto_delete=True)
    transport.bind("orphan", "ev")
    transport.publish("", b"x", exchange="ev")
    time.sleep(0.1)
    transport._housekeeping()
    assert transport.size("orphan") == 0
    with pytest.raises(UnroutableError):
        transport.publish("", b"x", exchange="ev", mandatory=True)
    transport.close()


def test_two_transports_on_one_file_see_each_other(url: str) -> None:
    producer = connect(url)
    consumer_side = connect(url)
    producer.declare_queue("q")
    with consumer_side.consumer(["q"]) as consumer:
        timer = threading.Timer(0.2, producer.publish, ("q", b"hi"))
        timer.start()
        started = time.monotonic()
        got = consumer.fetch(timeout=5)
        timer.join()
        assert [d.body for d in got] == [b"hi"]
        assert time.monotonic() - started < 1.0  # woken by data_version, not a poll
        got[0].ack()
    producer.close()
    consumer_side.close()
