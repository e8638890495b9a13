"""kombu and the AMQP transport exchange task messages over RabbitMQ.

kombu is installed only in the ``interop`` nox session's virtualenv. A kombu
producer's message reaches our consumer with body, headers and properties
intact, and ours reaches a kombu consumer the same way, in Celery's protocol-2
shape (PROTOCOL.md §1.2-1.3).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu import Connection, Consumer, Producer, Queue

from transports import Transport, connect
from transports.testing import collect

pytestmark = pytest.mark.amqp

TASK_ID = "fa885efd-8c88-4795-aae0-1bab8cc38224"
HEADERS: dict[str, Any] = {
    "lang": "py",
    "task": "proj.add",
    "id": TASK_ID,
    "shadow": None,
    "eta": None,
    "expires": None,
    "group": None,
    "group_index": None,
    "retries": 0,
    "timelimit": [60, 50],
    "root_id": TASK_ID,
    "parent_id": None,
    "argsrepr": "(2, 3)",
    "kwargsrepr": "{}",
    "origin": "gen10785@vm",
    "ignore_result": False,
    "stamped_headers": None,
    "stamps": {},
}
BODY = json.dumps(
    [[2, 3], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
).encode()


@pytest.fixture
def queue(amqp_url: str, unique_name: Callable[..., str]) -> Iterator[str]:
    name = unique_name("kombu")
    with connect(amqp_url) as transport:
        transport.declare_queue(name, max_priority=9)
        yield name
        transport.delete_queue(name)


@pytest.fixture
def transport(amqp_url: str) -> Iterator[Transport]:
    with connect(amqp_url) as opened:
        yield opened


def _bytes(body: Any) -> bytes:
    return body if isinstance(body, bytes) else str(body).encode()


def test_a_kombu_message_reaches_our_consumer_intact(
    amqp_url: str, queue: str, transport: Transport
) -> None:
    reply_to = str(uuid.uuid4())
    with Connection(amqp_url) as conn:
        Producer(conn).publish(
            BODY,
            routing_key=queue,
            exchange="",
            content_type="application/json",
            content_encoding="utf-8",
            headers=HEADERS,
            correlation_id=TASK_ID,
            reply_to=reply_to,
            priority=5,
            delivery_mode=2,
        )
    with transport.consumer([queue]) as consumer:
        (delivery,) = collect(consumer, 1)
        assert delivery.body == BODY
        assert {key: delivery.headers[key] for key in HEADERS} == HEADERS
        assert delivery.properties["content_type"] == "application/json"
        assert delivery.properties["content_encoding"] == "utf-8"
        assert delivery.properties["correlation_id"] == TASK_ID
        assert delivery.properties["reply_to"] == reply_to
        assert delivery.properties["priority"] == 5
        assert delivery.properties["delivery_mode"] == 2
        assert (delivery.exchange, delivery.routing_key) == ("", queue)
        assert json.loads(delivery.body)[0] == [2, 3]
        delivery.ack()


def test_our_message_reaches_a_kombu_consumer_intact(
    amqp_url: str, queue: str, transport: Transport
) -> None:
    reply_to = str(uuid.uuid4())
    transport.publish(
        queue,
        BODY,
        headers=HEADERS,
        properties={
            "content_type": "application/json",
            "content_encoding": "utf-8",
            "correlation_id": TASK_ID,
            "reply_to": reply_to,
            "priority": 7,
        },
    )
    received: list[Any] = []
    with Connection(amqp_url) as conn:
        kombu_queue = Queue(queue, no_declare=True)
        with Consumer(
            conn, [kombu_queue], callbacks=[lambda _b, m: received.append(m)]
        ):
            conn.drain_events(timeout=5)
        (message,) = received
        assert _bytes(message.body) == BODY
        assert message.decode() == json.loads(BODY)
        assert message.headers == HEADERS
        assert message.content_type == "application/json"
        assert message.content_encoding == "utf-8"
        assert message.properties["correlation_id"] == TASK_ID
        assert message.properties["reply_to"] == reply_to
        assert message.properties["priority"] == 7
        assert message.properties["delivery_mode"] == 2
        assert message.delivery_info["routing_key"] == queue
        message.ack()
    assert transport.size(queue) == 0
