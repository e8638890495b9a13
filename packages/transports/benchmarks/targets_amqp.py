"""The AMQP target of ``bench_transports.py``: RabbitMQ beside raw py-amqp.

The baseline issues what the transport issues, through py-amqp alone:
persistent ``basic_publish`` on a channel in confirm mode, waiting for the
confirm of each message (``publish``) or once per batch (``publish
batched``), and, on a connection of its own, ``basic_qos(prefetch)`` +
``basic_consume`` with one ``basic_ack(multiple=True)`` per received batch,
as ``fetch`` + ``ack_many`` send. The broker comes from ``AMQP_URL``
(default ``amqp://guest:guest@127.0.0.1:5672//``).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp
from bench_transports import Baseline, Target


class AMQPBaseline(Baseline):
    """py-amqp alone: the same publishes, confirms, consume and acks."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        path = parts.path
        self.options: dict[str, Any] = {
            "host": f"{parts.hostname or 'localhost'}:{parts.port or 5672}",
            "userid": unquote(parts.username or "guest"),
            "password": unquote(parts.password or "guest"),
            "virtual_host": unquote(path[1:]) if len(path) > 1 else "/",
        }
        self.connection = self._open()
        self.channel = self.connection.Channel(self.connection, None, auto_decode=False)
        self.channel.open()
        self.channel.confirm_select()
        self.confirmed = 0
        self.published = 0
        self.channel.events["basic_ack"].add(self._on_ack)
        self.declared: set[str] = set()

    def _open(self) -> amqp.Connection:
        connection = amqp.Connection(**self.options)
        connection.connect()
        return connection

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self.confirmed = max(self.confirmed, tag)

    def _declare(self, queue: str) -> None:
        if queue not in self.declared:
            self.channel.queue_declare(queue, durable=True, auto_delete=False)
            self.declared.add(queue)

    def _wait_confirms(self) -> None:
        while self.confirmed < self.published:
            self.connection.drain_events(timeout=30)

    def publish(self, queue: str, bodies: list[bytes]) -> None:
        self._declare(queue)
        for body in bodies:
            self.channel.basic_publish(amqp.Message(body, delivery_mode=2), "", queue)
            self.published += 1
            self._wait_confirms()

    def publish_batches(self, queue: str, bodies: list[bytes], batch: int) -> None:
        self._declare(queue)
        for start in range(0, len(bodies), batch):
            for body in bodies[start : start + batch]:
                message = amqp.Message(body, delivery_mode=2)
                self.channel.basic_publish(message, "", queue)
                self.published += 1
            self._wait_confirms()

    def consume(self, queue: str, count: int, prefetch: int) -> None:
        connection = self._open()
        channel = connection.Channel(connection, None, auto_decode=False)
        channel.open()
        channel.basic_qos(0, prefetch, False)
        tags: list[int] = []
        channel.basic_consume(
            queue, callback=lambda m: tags.append(m.delivery_info["delivery_tag"])
        )
        done = 0
        try:
            while done < count:
                connection.drain_events(timeout=5)
                try:
                    while True:
                        connection.drain_events(timeout=0)
                except TimeoutError:
                    pass
                if tags:
                    channel.basic_ack(tags[-1], multiple=True)
                    done += len(tags)
                    tags.clear()
        finally:
            connection.close()

    def purge(self, queue: str) -> None:
        self._declare(queue)
        self.channel.queue_purge(queue)

    def close(self) -> None:
        for queue in self.declared:
            self.channel.queue_delete(queue)
        self.connection.close()


def targets(tmp: str) -> dict[str, Target]:
    """The ``amqp`` target: our transport and raw py-amqp on one RabbitMQ."""
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    return {"amqp": Target(url, {}, lambda: AMQPBaseline(url), url, {})}
