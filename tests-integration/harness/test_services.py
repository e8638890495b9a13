"""Each service answers a real round trip through its real client library.

These tests check the harness itself: ``tests-integration/services/up`` and the
fixtures in ``tests-integration/conftest.py``. They never flush a server; every
name they create carries a random suffix and is removed afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import amqp
import boto3
import psycopg
import pycouchdb
import pymemcache
import pymongo
import pymysql
import pytest
import redis
from cassandra.cluster import Cluster
from redis.sentinel import Sentinel

CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"
TIMEOUT = 2.0


@pytest.mark.redis
def test_redis_set_get_and_list_push_pop(
    redis_url: str, unique_name: Callable[..., str]
) -> None:
    client = redis.Redis.from_url(
        redis_url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT
    )
    key, queue = unique_name("key"), unique_name("list")
    try:
        client.set(key, b"value", ex=60)
        assert client.get(key) == b"value"
        client.lpush(queue, b"first", b"second")
        assert client.rpop(queue) == b"first"
        assert client.rpop(queue) == b"second"
        assert client.rpop(queue) is None
    finally:
        client.delete(key, queue)
        client.close()


def _amqp_connection(url: str) -> amqp.Connection:
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return amqp.Connection(
        host=f"{parts.hostname}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=vhost,
        connect_timeout=TIMEOUT,
    )


@pytest.mark.amqp
def test_amqp_publish_get_and_ack_on_an_auto_delete_queue(
    amqp_url: str, unique_name: Callable[..., str]
) -> None:
    queue = unique_name("queue")
    with _amqp_connection(amqp_url) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, auto_delete=True)
        try:
            channel.basic_publish(amqp.Message(b"payload"), routing_key=queue)
            deadline = time.monotonic() + 5
            message = channel.basic_get(queue)
            while message is None and time.monotonic() < deadline:
                time.sleep(0.05)
                message = channel.basic_get(queue)
            assert message is not None
            assert message.body == b"payload"
            channel.basic_ack(message.delivery_tag)
            assert channel.basic_get(queue) is None
        finally:
            channel.queue_delete(queue)


@pytest.mark.postgres
def test_postgres_insert_and_select_in_a_temporary_table(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, connect_timeout=2) as connection:
        connection.execute("CREATE TEMPORARY TABLE harness (id int, name text)")
        connection.execute(
            "INSERT INTO harness VALUES (%s, %s), (%s, %s)", (1, "one", 2, "two")
        )
        rows = connection.execute("SELECT id, name FROM harness ORDER BY id")
        assert rows.fetchall() == [(1, "one"), (2, "two")]


@pytest.mark.mysql
def test_mysql_insert_and_select_in_a_temporary_table(mysql_url: str) -> None:
    parts = urlsplit(mysql_url)
    connection = pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/") or None,
        connect_timeout=2,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE harness (id INT, name TEXT)")
            cursor.execute(
                "INSERT INTO harness VALUES (%s, %s), (%s, %s)", (1, "one", 2, "two")
            )
            cursor.execute("SELECT id, name FROM harness ORDER BY id")
            assert cursor.fetchall() == ((1, "one"), (2, "two"))
    finally:
        connection.close()


@pytest.mark.memcached
def test_memcached_set_get_delete(
    memcached_url: str, unique_name: Callable[..., str]
) -> None:
    parts = urlsplit(memcached_url)
    client = pymemcache.Client(
        (parts.hostname, parts.port or 11211), connect_timeout=TIMEOUT, timeout=TIMEOUT
    )
    key = unique_name("key")
    try:
        assert client.set(key, b"value", expire=60, noreply=False)
        assert client.get(key) == b"value"
        assert client.delete(key, noreply=False)
        assert client.get(key) is None
    finally:
        client.close()


@pytest.mark.sentinel
def test_sentinel_finds_the_master_and_the_replica_receives_its_writes(
    redis_sentinel_addresses: list[tuple[str, int]],
    redis_sentinel_master: str,
    unique_name: Callable[..., str],
) -> None:
    sentinel = Sentinel(
        redis_sentinel_addresses,
        socket_timeout=TIMEOUT,
        sentinel_kwargs={"socket_timeout": TIMEOUT},
    )
    host, port = sentinel.discover_master(redis_sentinel_master)
    assert port != 6379, "the sentinels must watch a private master"
    master = sentinel.master_for(redis_sentinel_master, socket_timeout=TIMEOUT)
    replica = sentinel.slave_for(redis_sentinel_master, socket_timeout=TIMEOUT)
    key = unique_name("key")
    try:
        master.set(key, b"replicated", ex=60)
        # After a SENTINEL FAILOVER the old master turns replica some seconds later.
        deadline = time.monotonic() + 20
        while master.wait(1, 500) < 1 and time.monotonic() < deadline:
            pass
        while replica.get(key) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert replica.get(key) == b"replicated"
        assert replica.connection_pool.get_master_address() == (host, port)
    finally:
        master.delete(key)
        master.close()
        replica.close()


@pytest.mark.sqs
def test_sqs_send_receive_delete(
    sqs_endpoint_url: str, unique_name: Callable[..., str]
) -> None:
    client = boto3.client(
        "sqs",
        endpoint_url=sqs_endpoint_url,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    queue_url = client.create_queue(QueueName=unique_name("queue"))["QueueUrl"]
    try:
        client.send_message(QueueUrl=queue_url, MessageBody="payload")
        received = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=2
        )["Messages"]
        assert [message["Body"] for message in received] == ["payload"]
        client.delete_message(
            QueueUrl=queue_url, ReceiptHandle=received[0]["ReceiptHandle"]
        )
        again = client.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)
        assert again.get("Messages", []) == []
    finally:
        client.delete_queue(QueueUrl=queue_url)
        client.close()


@pytest.mark.mongodb
def test_mongodb_insert_find_and_drop_a_collection(
    mongodb_url: str, unique_name: Callable[..., str]
) -> None:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        mongodb_url, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000
    )
    try:
        collection = client.get_default_database("test")[unique_name("collection")]
        collection.insert_one({"_id": "one", "value": 1})
        try:
            assert collection.find_one({"_id": "one"}) == {"_id": "one", "value": 1}
        finally:
            collection.drop()
        assert collection.name not in collection.database.list_collection_names()
    finally:
        client.close()


@pytest.mark.couchdb
def test_couchdb_save_get_delete_by_id(
    couchdb_url: str, unique_name: Callable[..., str]
) -> None:
    server = pycouchdb.Server(couchdb_url, timeout=5)
    name = unique_name("db")
    db = server.create(name)
    try:
        saved = db.save({"_id": "doc", "value": 1})
        assert saved["_rev"].startswith("1-")
        assert db.get("doc")["value"] == 1
        db.delete("doc")  # by id: pycouchdb reads the revision from the HEAD ETag
        with pytest.raises(pycouchdb.exceptions.NotFound):
            db.get("doc")
    finally:
        server.delete(name)
    assert name not in server


@pytest.mark.cassandra
def test_cassandra_connects_and_answers_a_query(cassandra_url: str) -> None:
    parts = urlsplit(cassandra_url)
    cluster = Cluster(
        [parts.hostname], port=parts.port or 9042, connect_timeout=TIMEOUT
    )
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
        assert row.release_version
    finally:
        cluster.shutdown()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestRequiredServices:
    """An unreachable service skips its tests, or fails them when required."""

    @pytest.fixture
    def project(self, tmp_path: Path) -> Path:
        (tmp_path / "conftest.py").write_text(CONFTEST.read_text())
        (tmp_path / "test_needs_redis.py").write_text(
            textwrap.dedent(
                """
                from __future__ import annotations

                import pytest


                def test_with_fixture(redis_url):
                    pass


                @pytest.mark.redis
                def test_with_marker_only():
                    pass
                """
            )
        )
        return tmp_path

    def _run(self, project: Path, *, require: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env["REDIS_URL"] = f"redis://127.0.0.1:{_closed_port()}/0"
        env["QUEUE_REQUIRE_SERVICES"] = require
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-ra", "-p", "no:cacheprovider"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def test_unreachable_service_is_skipped_with_its_reason(
        self, project: Path
    ) -> None:
        result = self._run(project, require="amqp, postgres")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 skipped" in result.stdout
        assert "SKIPPED" in result.stdout
        assert "redis: not answering at redis://127.0.0.1:" in result.stdout
        assert "(REDIS_URL)" in result.stdout

    def test_unreachable_required_service_fails_the_run(self, project: Path) -> None:
        result = self._run(project, require="amqp,redis")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "2 error" in result.stdout
        assert "required by QUEUE_REQUIRE_SERVICES: redis: not answering" in (
            result.stdout
        )


UP = Path(__file__).resolve().parents[1] / "services" / "up"


def test_up_run_again_is_a_quick_no_op_with_the_same_urls() -> None:
    """A second ``services/up`` run reuses everything: under 5 s, same lines."""
    first = subprocess.run([str(UP)], capture_output=True, text=True, check=True)
    started = time.monotonic()
    second = subprocess.run([str(UP)], capture_output=True, text=True, check=True)
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"the second run took {elapsed:.1f} s"
    assert second.stdout == first.stdout
    assert "REDIS_URL=" in second.stdout
