"""The Redis transport against a real server: conformance, reliability, failover.

Every test works under its own ``global_keyprefix`` (``qm_<hex>:``) and
deletes every key under it afterwards (``SCAN MATCH`` + ``DEL``, never a
flush): the server on 6379 is shared. Connection drops are caused with
``CLIENT KILL ID`` for our own connections only (found by a unique client
name); failover runs ``SENTINEL FAILOVER`` on the private sentinel group and
waits for it to settle again.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from transports import Message, Transport, TransportError, connect
from transports.testing import TransportConformance, collect, run_sigkill_test

Names = Callable[..., str]
UP = Path(__file__).resolve().parent.parent / "services" / "up"


def _delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture
def prefix(redis_url: str, unique_name: Names) -> Iterator[str]:
    """A key prefix of this test; its keys are deleted afterwards."""
    value = unique_name("tr") + ":"
    yield value
    _delete_prefix(redis_url, value)


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class TestRedis(TransportConformance):
    """The conformance suite, each test under a fresh ``global_keyprefix``."""

    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str, prefix: str) -> None:
        self.url = redis_url
        self.prefix = prefix

    def transport_url(self) -> str:
        return self.url

    def transport_options(self) -> dict[str, Any]:
        return {"global_keyprefix": self.prefix}

    def inject_malformed(self, transport: Transport, queue: str) -> bool:
        client = redis.Redis.from_url(self.url)
        client.lpush(self.prefix + queue, b"{not json")
        client.close()
        return True


# -- kombu's layout --------------------------------------------------------------------


def test_messages_use_kombus_lists_envelope_and_unacked_shape(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    with connect(redis_url, global_keyprefix=prefix) as transport:
        transport.declare_queue("celery")
        transport.publish(
            "celery",
            b"[[1, 2], {}, null]",
            headers={"task": "proj.add", "id": "t1"},
            properties={
                "content_type": "application/json",
                "content_encoding": "utf-8",
                "correlation_id": "t1",
                "priority": 5,
            },
        )
        assert raw.llen(prefix + "celery\x06\x163") == 1
        envelope = json.loads(raw.lindex(prefix + "celery\x06\x163", 0) or b"")
        assert envelope["content-type"] == "application/json"
        assert envelope["content-encoding"] == "utf-8"
        assert envelope["headers"] == {"task": "proj.add", "id": "t1"}
        assert envelope["properties"]["body_encoding"] == "base64"
        assert envelope["properties"]["priority"] == 5
        assert envelope["properties"]["delivery_info"] == {
            "exchange": "",
            "routing_key": "celery",
        }
        tag = envelope["properties"]["delivery_tag"]
        with transport.consumer(["celery"]) as consumer:
            (delivery,) = collect(consumer, 1)
            assert delivery.body == b"[[1, 2], {}, null]"
            stored = json.loads(raw.hget(prefix + "unacked", tag) or b"")
            assert stored == [envelope, "", "celery"]
            assert raw.zscore(prefix + "unacked_index", tag) is not None
            assert raw.hget(prefix + "_qm.owner", tag) == consumer.token.encode()
            delivery.ack()
            assert raw.hget(prefix + "unacked", tag) is None
            assert raw.zscore(prefix + "unacked_index", tag) is None


def test_priorities_use_kombus_steps_and_higher_numbers_come_first(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    with connect(redis_url, global_keyprefix=prefix) as transport:
        for priority in (0, 2, 3, 5, 6, 8, 9):
            transport.publish("q", b"%d" % priority, properties={"priority": priority})
        assert [
            raw.llen(prefix + key)
            for key in ("q", *(f"q\x06\x16{s}" for s in (3, 6, 9)))
        ] == [2, 2, 2, 1]
        with transport.consumer(["q"], prefetch=10) as consumer:
            got = collect(consumer, 7)
            assert [d.body for d in got] == [b"9", b"6", b"8", b"3", b"5", b"0", b"2"]
            transport.ack_many(got)


def test_bindings_live_in_kombus_binding_sets(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    with connect(redis_url, global_keyprefix=prefix) as transport:
        transport.declare_exchange("jobs", "direct")
        transport.declare_exchange("events", "topic")
        transport.bind("q1", "jobs", "k1")
        transport.bind("q2", "events", "worker.#")
        assert raw.smembers(prefix + "_kombu.binding.jobs") == {b"k1\x06\x16\x06\x16q1"}
        (member,) = raw.smembers(prefix + "_kombu.binding.events")
        assert member.startswith(b"worker.#\x06\x16^worker")
        assert member.endswith(b"q2")
        transport.delete_queue("q1")
        assert raw.smembers(prefix + "_kombu.binding.jobs") == set()


def test_fanout_uses_kombus_pubsub_channels(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    pubsub = raw.pubsub()
    pubsub.psubscribe(prefix + "/0.celeryev*")
    assert pubsub.get_message(timeout=2)["type"] == "psubscribe"  # type: ignore[index]
    with connect(redis_url, global_keyprefix=prefix) as transport:
        transport.declare_exchange("celeryev", "fanout")
        transport.publish("worker.heartbeat", b"beat", exchange="celeryev")
        message = pubsub.get_message(timeout=2)
        assert message is not None
        assert message["channel"] == (prefix + "/0.celeryev/worker.heartbeat").encode()
        assert json.loads(message["data"])["properties"]["delivery_info"] == {
            "exchange": "celeryev",
            "routing_key": "worker.heartbeat",
        }
        with transport.consumer(
            subscriptions=["celeryev"]
        ) as consumer:  # subscribes with kombu's patterns
            raw.publish(prefix + "/0.celeryev/task.multi", message["data"])
            (delivery,) = collect(consumer, 1)
            assert delivery.body == b"beat"
            delivery.ack()
    pubsub.close()


# -- reliability -----------------------------------------------------------------------


def test_a_dead_consumers_deliveries_return_within_seconds_not_after_the_lease(
    redis_url: str, prefix: str
) -> None:
    options = {
        "global_keyprefix": prefix,
        "heartbeat_interval": 0.5,
        "heartbeat_ttl": 2.0,
    }
    with connect(redis_url, **options) as transport:
        transport.publish_many(Message("q", b"%d" % n) for n in range(3))
        dying = connect(redis_url, **options)
        held = collect(dying.consumer(["q"], prefetch=3), 3)
        assert len(held) == 3
        # A crash: the heartbeat thread stops, nothing is settled or returned.
        dying._beating = True  # type: ignore[attr-defined]
        dying._closed = True  # type: ignore[attr-defined]
        started = time.monotonic()
        with transport.consumer(["q"], prefetch=3) as consumer:
            got = collect(consumer, 3, timeout=15)
            waited = time.monotonic() - started
            assert sorted(d.body for d in got) == [b"0", b"1", b"2"]
            assert all(d.redelivered and d.delivery_count == 2 for d in got)
            assert waited < 6, "the heartbeat (2 s), not the 60 s lease, decides"
            transport.ack_many(got)


def test_lease_renewal_keeps_a_long_task_from_kombus_and_our_sweeps(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    with connect(
        redis_url, global_keyprefix=prefix, lease=1.0, renew_interval=0.25
    ) as transport:
        transport.publish("q", b"long")
        with transport.consumer(["q"]) as consumer:
            (delivery,) = collect(consumer, 1)
            tag = delivery.tag.tag
            first = raw.zscore(prefix + "unacked_index", tag)
            time.sleep(3.0)
            assert transport.sweep() == 0
            assert transport.size("q") == 0
            later = raw.zscore(prefix + "unacked_index", tag)
            assert first is not None
            assert later is not None
            assert later > first + 2, "renewals re-score kombu's unacked_index"
            delivery.ack()


def test_kombu_consumers_unacked_entries_are_restored_after_the_lease(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    """An entry without our owner (a kombu consumer's) comes back after the lease."""
    envelope = {
        "body": "aGk=",
        "content-encoding": "utf-8",
        "content-type": "text/plain",
        "headers": {},
        "properties": {
            "delivery_tag": "kombu-tag-1",
            "delivery_info": {"exchange": "", "routing_key": "q"},
            "priority": 0,
            "body_encoding": "base64",
        },
    }
    raw.hset(prefix + "unacked", "kombu-tag-1", json.dumps([envelope, "", "q"]))
    raw.zadd(prefix + "unacked_index", {"kombu-tag-1": time.time() - 0.5})
    with connect(
        redis_url, global_keyprefix=prefix, lease=2.0, renew_interval=0.5
    ) as transport:
        assert transport.sweep() == 0  # not yet: younger than the lease
        raw.zadd(prefix + "unacked_index", {"kombu-tag-1": time.time() - 5})
        assert transport.sweep() == 1
        assert transport.sweep() == 0  # restored once only
        with transport.consumer(["q"]) as consumer:
            (delivery,) = collect(consumer, 1)
            assert delivery.body == b"hi"
            assert delivery.redelivered
            delivery.ack()


def test_a_delayed_message_is_moved_by_a_waiting_consumer(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    with (
        connect(redis_url, global_keyprefix=prefix) as transport,
        transport.consumer(["q"]) as consumer,
    ):
        transport.publish("q", b"later", delay=0.6)
        assert raw.zcard(prefix + "_qm.delayed") == 1
        assert transport.size("q") == 0
        started = time.monotonic()
        got = consumer.fetch(timeout=5.0)
        waited = time.monotonic() - started
        assert [d.body for d in got] == [b"later"]
        assert 0.5 <= waited < 1.5
        assert raw.zcard(prefix + "_qm.delayed") == 0
        got[0].ack()


def test_a_malformed_envelope_without_dead_letter_target_is_quarantined(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    with connect(redis_url, global_keyprefix=prefix) as transport:
        raw.lpush(prefix + "q", b"\xff not json", b'{"properties": "no tag"}')
        transport.publish("q", b"fine")
        with transport.consumer(["q"], prefetch=5) as consumer:
            got = collect(consumer, 1)
            assert [d.body for d in got] == [b"fine"]
            got[0].ack()
        assert transport.size("transports.malformed") == 2
        assert raw.llen(prefix + "_qm.malformed") == 0
        with transport.consumer(["transports.malformed"], prefetch=5) as consumer:
            moved = collect(consumer, 2)
            assert sorted(d.body for d in moved) == [
                b'{"properties": "no tag"}',
                b"\xff not json",
            ]
            assert all("malformed" in d.headers["x-death-reason"] for d in moved)
            transport.ack_many(moved)


def _own_clients(raw: redis.Redis, name: str) -> list[int]:
    return [int(c["id"]) for c in raw.client_list() if c.get("name") == name]


def test_producers_and_consumers_carry_on_after_client_kill(
    redis_url: str, prefix: str, raw: redis.Redis, unique_name: Names
) -> None:
    name = unique_name("client")
    with connect(
        redis_url, global_keyprefix=prefix, client_name=name, retry_backoff_max=0.2
    ) as transport:
        transport.publish_many(Message("q", b"%d" % n) for n in range(3))
        consumer = transport.consumer(["q"], prefetch=1)
        (held,) = collect(consumer, 1)
        victims = _own_clients(raw, name)
        assert victims
        for client_id in victims:
            raw.client_kill_filter(_id=client_id)
        assert not set(_own_clients(raw, name)) & set(victims)
        transport.publish("q", b"3")  # the producer reconnects
        held.ack()  # the delivery survived the dropped connection
        got = []
        for _ in range(3):
            got += collect(consumer, 1)
            got[-1].ack()
        assert sorted(d.body for d in [held, *got]) == [b"0", b"1", b"2", b"3"]
        assert transport.size("q") == 0
        assert raw.hlen(prefix + "unacked") == 0
        consumer.close()


def test_a_subscription_survives_client_kill(
    redis_url: str, prefix: str, raw: redis.Redis, unique_name: Names
) -> None:
    name = unique_name("client")
    with connect(redis_url, global_keyprefix=prefix, client_name=name) as transport:
        transport.declare_exchange("bcast", "fanout")
        with transport.consumer(subscriptions=["bcast"]) as consumer:
            for client_id in _own_clients(raw, name):
                raw.client_kill_filter(_id=client_id)
            deadline = time.monotonic() + 10
            got: list[Any] = []
            while not got and time.monotonic() < deadline:
                transport.publish("", b"again", exchange="bcast")
                got = consumer.fetch(timeout=0.5)
            assert got
            assert got[0].body == b"again"
            transport.ack_many(got)


def test_a_claim_whose_reply_was_lost_returns_its_messages_at_once(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    """A connection that dies between a claim and its reply (CLIENT KILL under
    load) leaves the claimed messages to the consumer: they come back at once,
    once each, not after the lease (60 s)."""
    with connect(redis_url, global_keyprefix=prefix) as transport:
        transport.publish_many(Message("q", b"%d" % n) for n in range(3))
        claim = transport._claim_script  # type: ignore[attr-defined]
        lost: list[Any] = []

        def claim_and_lose_the_reply(**options: Any) -> Any:
            reply = claim(**options)
            if not lost:
                lost.append(reply)
                raise redis.ConnectionError("Connection closed by server.")
            return reply

        transport._claim_script = claim_and_lose_the_reply  # type: ignore[attr-defined]
        started = time.monotonic()
        with transport.consumer(["q"], prefetch=3) as consumer:
            got = collect(consumer, 3, timeout=10)
            assert len(lost[0]) == 1 + 3 * 3  # the lost claim had taken all three
            assert sorted(d.body for d in got) == [b"0", b"1", b"2"]
            assert time.monotonic() - started < 5
            assert collect(consumer, 1, timeout=0.5) == []
            transport.ack_many(got)
        assert raw.hlen(prefix + "unacked") == 0


def test_the_sigkill_harness_loses_nothing(redis_url: str, prefix: str) -> None:
    report = run_sigkill_test(
        redis_url,
        options={
            "global_keyprefix": prefix,
            "heartbeat_interval": 0.5,
            "heartbeat_ttl": 2.0,
        },
    )
    print(f"SIGKILL redis: {report}")
    assert report.kills >= 100
    assert report.missing == frozenset()
    assert report.crashes == 0
    assert report.ok, str(report)


# -- URLs and secrets ------------------------------------------------------------------


def test_a_password_never_shows_in_reprs_or_errors() -> None:
    transport = connect(
        "redis://:s3cr3t-pw@127.0.0.1:1/0",
        max_retries=0,
        socket_connect_timeout=0.2,
    )
    assert "s3cr3t-pw" not in repr(transport)
    with pytest.raises(TransportError) as info:
        transport.publish("q", b"x")
    assert "s3cr3t-pw" not in str(info.value)
    assert "***" in str(info.value)
    transport.close()


def test_a_unix_socket_url_reaches_the_server(tmp_path: Path) -> None:
    """A private socket-only server (port 0), since the shared one listens on TCP."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary to start a socket-only server")
    sock = tmp_path / "redis.sock"
    server = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        with connect(f"redis+socket://{sock}?db=1") as transport:
            transport.publish("q", b"over the socket")
            with transport.consumer(["q"]) as consumer:
                (delivery,) = collect(consumer, 1)
                assert delivery.body == b"over the socket"
                delivery.ack()
    finally:
        server.terminate()
        server.wait(10)


# -- sentinel failover -----------------------------------------------------------------


def _services_up() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("services_up", str(UP))
    spec = importlib.util.spec_from_loader("services_up", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.sentinel
def test_nothing_is_lost_when_the_sentinel_master_fails_over(
    redis_sentinel_url: str,
    redis_sentinel_addresses: list[tuple[str, int]],
    redis_sentinel_master: str,
    unique_name: Names,
) -> None:
    up = _services_up()
    deadline = time.monotonic() + 60
    while not up.sentinel_group_healthy(settled=True):
        assert time.monotonic() < deadline, "the sentinel group is not healthy"
        time.sleep(0.5)
    prefix = unique_name("tr") + ":"
    url = f"{redis_sentinel_url}?master_name={redis_sentinel_master}"
    options = {
        "global_keyprefix": prefix,
        "min_replicas": 1,
        "lease": 3.0,
        "renew_interval": 1.0,
        "max_retries": 60,
        "retry_backoff_max": 0.5,
        "socket_timeout": 2.0,
    }
    total = 600
    producer = connect(url, **options)
    consumer_side = connect(url, **options)
    seen: list[int] = []
    done = threading.Event()

    def produce() -> None:
        for start in range(0, total, 10):
            producer.publish_many(
                Message("q", b"%d" % n) for n in range(start, start + 10)
            )
            time.sleep(0.02)
        done.set()

    try:
        consumer = consumer_side.consumer(["q"], prefetch=20)
        thread = threading.Thread(target=produce)
        thread.start()
        time.sleep(0.5)
        sentinel = redis.Redis(*redis_sentinel_addresses[0], socket_timeout=5)
        sentinel.execute_command("SENTINEL", "FAILOVER", redis_sentinel_master)
        sentinel.close()
        finish = time.monotonic() + 90
        while time.monotonic() < finish:
            got = consumer.fetch(timeout=0.5)
            seen.extend(int(d.body) for d in got)
            consumer_side.ack_many(got)
            if done.is_set() and len(set(seen)) >= total:
                break
        thread.join(30)
        missing = set(range(total)) - set(seen)
        print(
            f"sentinel failover: {total} published, {len(set(seen))} received, "
            f"{len(seen) - len(set(seen))} duplicates"
        )
        assert not missing, f"{len(missing)} lost, e.g. {sorted(missing)[:10]}"
        consumer.close()
    finally:
        for transport in (producer, consumer_side):
            try:
                transport.delete_keys()  # type: ignore[attr-defined]
            finally:
                transport.close()
        deadline = time.monotonic() + 60
        while not up.sentinel_group_healthy(settled=True):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
