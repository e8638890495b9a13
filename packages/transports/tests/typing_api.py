"""Uses the public API as a user would; mypy checks it, pytest never runs it."""

from __future__ import annotations

from collections.abc import Iterator

from typing_extensions import assert_type

import transports
from transports import (
    Capabilities,
    Consumer,
    DeclarationMismatchError,
    Delivery,
    Message,
    QueueSpec,
    Subscription,
    Transport,
    TransportError,
    UnknownSchemeError,
    connect,
)
from transports.testing import SigkillReport, TransportConformance, run_sigkill_test

assert_type(transports.__version__, str)
exc = UnknownSchemeError("reddis", ("redis",))
assert_type(exc.installed, tuple[str, ...])
mismatch: TransportError = DeclarationMismatchError("q", {"a": 1}, {"a": 2})

with connect("sqlite:///broker.db", lease=30.0, renew_interval=10.0) as conn:
    assert_type(conn, Transport)
    assert_type(conn.capabilities, Capabilities)
    assert_type(conn.capabilities.priority_levels, int)
    spec = conn.declare_queue("tasks", max_priority=9, dead_letter="tasks.dead")
    assert_type(spec, QueueSpec)
    conn.declare_exchange("events", "topic")
    conn.bind("tasks", "events", "task.#")
    conn.publish(
        "tasks",
        b"payload",
        headers={"task": "x"},
        properties={"content_type": "application/json", "priority": 5},
        delay=30.0,
    )
    conn.publish("task.sent", b"{}", exchange="events", mandatory=True)
    conn.publish_many([Message("tasks", b"1"), Message("tasks", b"2", ttl=60.0)])
    stream = conn.consume(["tasks"], prefetch=100, timeout=1.0)
    assert_type(stream, Iterator[Delivery])
    for delivery in stream:
        assert_type(delivery.body, bytes)
        assert_type(delivery.delivery_count, int)
        assert_type(delivery.redelivered, bool)
        delivery.extend(60.0)
        delivery.ack()
    consumer = conn.consumer(
        ["tasks"], subscriptions=[Subscription("events", "worker.*"), "pidbox"]
    )
    assert_type(consumer, Consumer)
    batch = consumer.fetch(50, timeout=0.5)
    assert_type(batch, list[Delivery])
    conn.ack_many(batch)
    consumer.add_queue("other")
    consumer.cancel_queue("other")
    assert_type(consumer.drain(1.0), int)
    consumer.interrupt()
    consumer.close(requeue=False)
    assert_type(conn.size("tasks"), int)
    assert_type(conn.purge("tasks"), int)


class TestMine(TransportConformance):
    def transport_url(self) -> str:
        return "memory://"


report = run_sigkill_test("sqlite:///x.db", messages=1000, kills=10)
assert_type(report, SigkillReport)
assert_type(report.duplicates, int)
