"""Our Redis transport and kombu's share queues, unacked entries and fanout.

kombu is installed only in the ``interop`` nox session's virtualenv. Each
test uses its own ``global_keyprefix`` on both sides and deletes every key
under it afterwards (``SCAN MATCH`` + ``DEL``).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue

from transports import Message, connect
from transports.testing import collect

Names = Callable[..., str]


@pytest.fixture
def prefix(redis_url: str, unique_name: Names) -> Iterator[str]:
    value = unique_name("kr") + ":"
    yield value
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=value + "*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()


def kombu_connection(url: str, prefix: str, **options: Any) -> Connection:
    return Connection(url, transport_options={"global_keyprefix": prefix, **options})


def test_a_kombu_producers_message_reaches_our_consumer_intact(
    redis_url: str, prefix: str
) -> None:
    queue = Queue("tasks", Exchange("tasks", "direct"), routing_key="tasks")
    with kombu_connection(redis_url, prefix) as conn:
        producer = conn.Producer(serializer="json")
        for priority, label in ((0, "low"), (9, "high"), (5, "mid")):
            producer.publish(
                {"label": label},
                exchange="",
                routing_key="tasks",
                declare=[queue],
                priority=priority,
                headers={"task": "proj.add", "id": label},
                correlation_id=f"c-{label}",
                reply_to="r-1",
            )
    with (
        connect(redis_url, global_keyprefix=prefix) as transport,
        transport.consumer(["tasks"], prefetch=3) as consumer,
    ):
        got = collect(consumer, 3, timeout=5)
        # Higher numbers first on our side; kombu's own consumers serve 0 first.
        assert [json.loads(d.body)["label"] for d in got] == ["high", "mid", "low"]
        high = got[0]
        assert high.headers == {"task": "proj.add", "id": "high"}
        assert high.properties["content_type"] == "application/json"
        assert high.properties["content_encoding"] == "utf-8"
        assert high.properties["correlation_id"] == "c-high"
        assert high.properties["reply_to"] == "r-1"
        assert high.properties["priority"] == 9
        assert (high.queue, high.routing_key) == ("tasks", "tasks")
        assert high.delivery_count == 1
        transport.ack_many(got)
        assert transport.size("tasks") == 0


def test_our_message_reaches_a_kombu_consumer_intact(
    redis_url: str, prefix: str
) -> None:
    with connect(redis_url, global_keyprefix=prefix) as transport:
        transport.publish(
            "jobs",
            json.dumps({"n": 1}).encode(),
            headers={"task": "proj.add", "id": "t1"},
            properties={
                "content_type": "application/json",
                "content_encoding": "utf-8",
                "correlation_id": "t1",
                "priority": 6,
            },
        )
    with kombu_connection(redis_url, prefix) as conn:
        simple = conn.SimpleQueue("jobs")
        message = simple.get(timeout=5)
        assert message.payload == {"n": 1}
        assert message.headers == {"task": "proj.add", "id": "t1"}
        assert message.properties["correlation_id"] == "t1"
        assert message.properties["priority"] == 6
        assert message.content_type == "application/json"
        assert message.delivery_info["routing_key"] == "jobs"
        message.ack()
        simple.close()


KOMBU_HOLDER = """
import sys, time
from kombu import Connection
url, prefix, queue, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
conn = Connection(url, transport_options={"global_keyprefix": prefix})
simple = conn.SimpleQueue(queue)
held = [simple.get(timeout=10) for _ in range(count)]
print("holding", len(held), flush=True)
time.sleep(600)
"""

OUR_HOLDER = """
import sys, time
from transports import connect
url, prefix, queue, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
transport = connect(url, global_keyprefix=prefix)
consumer = transport.consumer([queue], prefetch=count)
held = []
while len(held) < count:
    held += consumer.fetch(timeout=10)
print("holding", len(held), flush=True)
time.sleep(600)
"""


def _hold_then_kill(code: str, *args: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            assert line.startswith("holding"), line
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)


def test_our_sweep_restores_a_killed_kombu_consumers_messages(
    redis_url: str, prefix: str
) -> None:
    with connect(
        redis_url, global_keyprefix=prefix, lease=1.0, renew_interval=0.3
    ) as transport:
        transport.publish_many(Message("work", b"%d" % n) for n in range(3))
        _hold_then_kill(KOMBU_HOLDER, redis_url, prefix, "work", "3")
        raw = redis.Redis.from_url(redis_url)
        assert raw.hlen(prefix + "unacked") == 3  # kombu recorded them
        assert transport.size("work") == 0
        time.sleep(1.2)  # older than our lease now; kombu entries have no owner
        assert transport.sweep() == 3  # type: ignore[attr-defined]
        assert raw.hlen(prefix + "unacked") == 0
        raw.close()
        with transport.consumer(["work"], prefetch=3) as consumer:
            got = collect(consumer, 3)
            assert sorted(d.body for d in got) == [b"0", b"1", b"2"]
            assert all(d.redelivered for d in got)
            transport.ack_many(got)


def test_kombus_restore_visible_restores_our_killed_consumers_messages(
    redis_url: str, prefix: str
) -> None:
    with connect(redis_url, global_keyprefix=prefix) as transport:
        transport.publish_many(
            Message("work", json.dumps(n).encode(), properties={
                "content_type": "application/json", "content_encoding": "utf-8"
            })
            for n in range(3)
        )  # fmt: skip
    _hold_then_kill(OUR_HOLDER, redis_url, prefix, "work", "3")
    with kombu_connection(redis_url, prefix, visibility_timeout=1) as conn:
        time.sleep(1.5)
        conn.default_channel.qos.restore_visible(num=100, interval=1)
        simple = conn.SimpleQueue("work")
        got = [simple.get(timeout=5) for _ in range(3)]
        assert sorted(m.payload for m in got) == [0, 1, 2]
        assert all(m.delivery_info.get("redelivered") for m in got)
        for message in got:
            message.ack()
        simple.close()


def test_kombus_fanout_reaches_our_subscriber_and_ours_reaches_kombus(
    redis_url: str, prefix: str
) -> None:
    exchange = Exchange("bcast", "fanout", durable=False)
    with (
        connect(redis_url, global_keyprefix=prefix) as transport,
        kombu_connection(redis_url, prefix) as conn,
    ):
        transport.declare_exchange("bcast", "fanout")
        with transport.consumer(subscriptions=["bcast"]) as ours:
            producer = conn.Producer(serializer="json")
            producer.publish(
                {"from": "kombu"}, exchange=exchange, routing_key="", declare=[exchange]
            )
            (delivery,) = collect(ours, 1)
            assert json.loads(delivery.body) == {"from": "kombu"}
            assert delivery.exchange == "bcast"
            delivery.ack()

        received: list[Any] = []
        queue = Queue("bcast.kombu", exchange, exclusive=True, auto_delete=True)
        stop = threading.Event()

        def keep_publishing() -> None:
            # kombu subscribes inside drain_events; repeat until it listens.
            while not stop.is_set():
                transport.publish(
                    "",
                    b'{"from": "us"}',
                    exchange="bcast",
                    properties={"content_type": "application/json"},
                )
                stop.wait(0.2)

        publisher = threading.Thread(target=keep_publishing)
        with conn.Consumer(
            queue, callbacks=[lambda body, message: received.append(body)]
        ):
            publisher.start()
            deadline = time.monotonic() + 10
            try:
                while not received and time.monotonic() < deadline:
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=0.5)
            finally:
                stop.set()
                publisher.join()
        assert received
        assert received[0] == {"from": "us"}
