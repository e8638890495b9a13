"""In-process broker for tests and single-process tools.

URL form: ``memory://`` or ``memory://<name>``. Transports opened with the
same name in one process share their queues (a producer and a consumer in
one test see each other); different names are separate brokers.

Options: the common ones of :class:`~transports.Transport` (``lease``,
``renew_interval``, ``max_retries``, ``retry_backoff_max``).

Capabilities: 10 priority levels (0-9, higher first, FIFO within one),
delayed delivery without limit, direct, topic and fanout exchanges,
dead-lettering (rejected, expired and past ``max_deliveries``), leases with
automatic renewal and :meth:`~transports.Delivery.extend`, per-message and
per-queue TTL, exact delivery counts. Nothing is persistent and nothing is
shared with other processes. A waiting consumer sleeps on a condition
variable, woken by each publish and at the next delayed or leased message's
due time, so it never polls.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from . import _routing
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
    keep_expiring,
)
from .errors import DeclarationMismatchError, UnroutableError

__all__ = ["MemoryConsumer", "MemoryTransport"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Stored:
    seq: int
    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]
    exchange: str
    routing_key: str
    priority: int
    visible_at: float
    expires_at: float | None
    delivery_count: int = 0
    owner: str | None = None


@dataclass
class _Queue:
    spec: QueueSpec
    messages: dict[int, _Stored] = field(default_factory=dict)
    ready: list[tuple[int, int]] = field(default_factory=list)
    pending: list[tuple[float, int]] = field(default_factory=list)

    def promote(self, now: float) -> None:
        """Move due delayed and lease-expired messages to the ready heap."""
        while self.pending and self.pending[0][0] <= now:
            due, seq = heapq.heappop(self.pending)
            stored = self.messages.get(seq)
            if stored is None or stored.visible_at != due:
                continue  # acked meanwhile, or a renewal pushed it further
            stored.owner = None
            stored.visible_at = 0.0
            heapq.heappush(self.ready, (-stored.priority, seq))

    def park(self, stored: _Stored) -> None:
        heapq.heappush(self.pending, (stored.visible_at, stored.seq))

    def head(self) -> tuple[int, int] | None:
        while self.ready:
            key = self.ready[0]
            stored = self.messages.get(key[1])
            if stored is not None and stored.owner is None and stored.visible_at <= 0:
                return key
            heapq.heappop(self.ready)
        return None

    def next_due(self) -> float | None:
        while self.pending:
            due, seq = self.pending[0]
            stored = self.messages.get(seq)
            if stored is not None and stored.visible_at == due:
                return due
            heapq.heappop(self.pending)
        return None


class _Broker:
    """The queues, exchanges and bindings of one memory:// name."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queues: dict[str, _Queue] = {}
        self.exchanges: dict[str, ExchangeSpec] = {}
        self.bindings: dict[str, list[tuple[str, str]]] = {}
        self.sets: dict[str, dict[str, float]] = {}
        self.seq = itertools.count(1)

    def queue(self, name: str) -> _Queue:
        found = self.queues.get(name)
        if found is None:
            found = self.queues[name] = _Queue(QueueSpec(name))
        return found

    def store(self, name: str, stored: _Stored) -> None:
        queue = self.queue(name)
        ttl = queue.spec.message_ttl
        if ttl is not None:
            limit = max(stored.visible_at, time.time()) + ttl
            stored.expires_at = (
                limit if stored.expires_at is None else min(stored.expires_at, limit)
            )
        queue.messages[stored.seq] = stored
        if stored.visible_at > time.time():
            queue.park(stored)
        else:
            stored.visible_at = 0.0
            heapq.heappush(queue.ready, (-stored.priority, stored.seq))

    def dead_letter(self, queue: _Queue, stored: _Stored, reason: str) -> None:
        queue.messages.pop(stored.seq, None)
        target = queue.spec.dead_letter
        if target is None:
            logger.error(
                "memory transport: dropped a message of queue %r (%s); declare the "
                "queue with dead_letter=... to keep such messages",
                queue.spec.name,
                reason,
            )
            return
        logger.warning(
            "memory transport: moved a message of queue %r to %r (%s)",
            queue.spec.name,
            target,
            reason,
        )
        headers = dict(stored.headers)
        headers.update(
            {
                DEATH_REASON: reason,
                DEATH_QUEUE: queue.spec.name,
                DEATH_COUNT: stored.delivery_count,
            }
        )
        moved = _Stored(
            seq=next(self.seq),
            body=stored.body,
            headers=headers,
            properties=dict(stored.properties),
            exchange=stored.exchange,
            routing_key=stored.routing_key,
            priority=stored.priority,
            visible_at=0.0,
            expires_at=None,
        )
        self.store(target, moved)


_brokers: dict[str, _Broker] = {}
_brokers_lock = threading.Lock()


def _broker(name: str) -> _Broker:
    with _brokers_lock:
        found = _brokers.get(name)
        if found is None:
            found = _brokers[name] = _Broker()
        return found


class MemoryConsumer(Consumer):
    """Consumer of :class:`MemoryTransport`: waits on the broker's condition."""

    transport: MemoryTransport

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._woken = False
        super().__init__(*args, **kwargs)

    def _receive(
        self, queues: tuple[str, ...], limit: int, timeout: float
    ) -> list[Delivery]:
        broker = self.transport._broker
        deadline = time.monotonic() + timeout
        with broker.cond:
            while True:
                got = self.transport._claim(self, queues, limit)
                if got:
                    return got
                if self._woken:
                    self._woken = False
                    return []
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                dues = [
                    due
                    for name in queues
                    if name in broker.queues
                    and (due := broker.queues[name].next_due()) is not None
                ]
                if dues:
                    remaining = min(
                        remaining, max(0.0, min(dues) - time.time()) + 0.001
                    )
                broker.cond.wait(remaining)

    def _wake(self) -> None:
        broker = self.transport._broker
        with broker.cond:
            self._woken = True
            broker.cond.notify_all()


class MemoryTransport(Transport):
    """A broker held in this process's memory, shared by transports of one name.

    Args:
        url: ``memory://`` or ``memory://<name>``.
        **options: The common options of :class:`~transports.Transport`.
    """

    name: ClassVar[str] = "memory"
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
        multiprocess=False,
        persistent=False,
        expiring_sets=True,
    )
    consumer_class = MemoryConsumer

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        super().__init__(url, **options)
        parts = urlsplit(url)
        self.broker_name = (parts.netloc + parts.path).strip("/")
        self._broker = _broker(self.broker_name)

    # -- declarations ------------------------------------------------------------------

    def _declare_queue(self, spec: QueueSpec) -> None:
        with self._broker.cond:
            existing = self._broker.queues.get(spec.name)
            if existing is None:
                self._broker.queues[spec.name] = _Queue(spec)
                return
            if existing.spec == QueueSpec(spec.name) and not existing.messages:
                existing.spec = spec  # created implicitly by a publish, never declared
                return
            if existing.spec != spec:
                raise DeclarationMismatchError(
                    spec.name, existing.spec.arguments(), spec.arguments()
                )

    def _declare_exchange(self, spec: ExchangeSpec) -> None:
        with self._broker.cond:
            existing = self._broker.exchanges.setdefault(spec.name, spec)
            if existing != spec:
                raise DeclarationMismatchError(
                    spec.name, existing.arguments(), spec.arguments()
                )

    def _bind(self, binding: Binding) -> None:
        with self._broker.cond:
            self._broker.queue(binding.queue)
            entries = self._broker.bindings.setdefault(binding.exchange, [])
            entry = (binding.queue, binding.routing_key)
            if entry not in entries:
                entries.append(entry)

    def _unbind(self, binding: Binding) -> None:
        with self._broker.cond:
            entries = self._broker.bindings.get(binding.exchange, [])
            entry = (binding.queue, binding.routing_key)
            if entry in entries:
                entries.remove(entry)

    def _delete_queue(self, name: str) -> None:
        with self._broker.cond:
            self._broker.queues.pop(name, None)
            for entries in self._broker.bindings.values():
                entries[:] = [entry for entry in entries if entry[0] != name]

    # -- publishing --------------------------------------------------------------------

    def _targets(self, message: Outgoing) -> list[str]:
        broker = self._broker
        if not message.exchange:
            if message.routing_key in broker.queues:
                return [message.routing_key]
            return []
        spec = broker.exchanges.get(message.exchange)
        kind = spec.kind if spec is not None else "direct"
        return _routing.route(
            kind, broker.bindings.get(message.exchange, ()), message.routing_key
        )

    def _publish(self, messages: list[Outgoing], mandatory: bool) -> None:
        broker = self._broker
        unroutable = []
        with broker.cond:
            for message in messages:
                targets = self._targets(message)
                if not targets:
                    if not message.exchange and not mandatory:
                        targets = [message.routing_key]
                    else:
                        unroutable.append(message)
                        continue
                for name in targets:
                    broker.store(
                        name,
                        _Stored(
                            seq=next(broker.seq),
                            body=message.body,
                            headers=dict(message.headers),
                            properties=dict(message.properties),
                            exchange=message.exchange,
                            routing_key=message.routing_key,
                            priority=message.priority,
                            visible_at=message.visible_at,
                            expires_at=message.expires_at,
                        ),
                    )
            broker.cond.notify_all()
        if unroutable and mandatory:
            first = unroutable[0]
            raise UnroutableError(
                f"no queue is bound to exchange {first.exchange!r} with routing key "
                f"{first.routing_key!r} ({len(unroutable)} message(s) unroutable); "
                "declare and bind a queue first"
            )

    # -- consuming ---------------------------------------------------------------------

    def _claim(
        self, consumer: MemoryConsumer, queues: tuple[str, ...], limit: int
    ) -> list[Delivery]:
        """Claim up to *limit* messages (lock held).

        The highest priority first; within one, the queues take turns: each
        claim starts with the next queue (and takes its oldest first), so a
        backlog in one queue does not starve the others.
        """
        broker = self._broker
        now = time.time()
        live = consumer._in_turn(
            [broker.queues[name] for name in queues if name in broker.queues]
        )
        for queue in live:
            queue.promote(now)
        got: list[Delivery] = []
        while len(got) < limit:
            best: tuple[tuple[int, int], _Queue] | None = None
            for queue in live:
                key = queue.head()
                if key is not None and (best is None or key[0] < best[0][0]):
                    best = (key, queue)
            if best is None:
                break
            key, queue = best
            heapq.heappop(queue.ready)
            stored = queue.messages[key[1]]
            if stored.expires_at is not None and stored.expires_at <= now:
                broker.dead_letter(queue, stored, "expired")
                continue
            limit_count = queue.spec.max_deliveries
            if limit_count is not None and stored.delivery_count >= limit_count:
                broker.dead_letter(
                    queue, stored, f"delivered {stored.delivery_count} times unacked"
                )
                continue
            stored.delivery_count += 1
            stored.owner = consumer.token
            stored.visible_at = now + self.lease
            queue.park(stored)
            got.append(
                Delivery(
                    body=stored.body,
                    headers=dict(stored.headers),
                    properties=dict(stored.properties),
                    queue=queue.spec.name,
                    exchange=stored.exchange,
                    routing_key=stored.routing_key,
                    delivery_count=stored.delivery_count,
                    tag=(stored.seq, stored.delivery_count),
                )
            )
        return got

    def _owned(
        self, consumer: Consumer, delivery: Delivery
    ) -> tuple[_Queue, _Stored] | None:
        queue = self._broker.queues.get(delivery.queue)
        if queue is None:
            return None
        seq, count = delivery.tag
        stored = queue.messages.get(seq)
        if stored is None or stored.owner != consumer.token:
            return None
        if stored.delivery_count != count:
            return None
        return queue, stored

    def _settle(
        self, consumer: Consumer, deliveries: list[Delivery], outcome: Outcome
    ) -> None:
        broker = self._broker
        with broker.cond:
            for delivery in deliveries:
                found = self._owned(consumer, delivery)
                if found is None:
                    continue  # the lease ran out and another consumer has it
                queue, stored = found
                if outcome == "ack":
                    queue.messages.pop(stored.seq, None)
                elif outcome in RETURNED:
                    if outcome == "release":
                        stored.delivery_count = max(0, stored.delivery_count - 1)
                    stored.owner = None
                    stored.visible_at = 0.0
                    heapq.heappush(queue.ready, (-stored.priority, stored.seq))
                else:
                    broker.dead_letter(queue, stored, "rejected")
            broker.cond.notify_all()

    def _renew(
        self, consumer: Consumer, deliveries: list[Delivery], seconds: float
    ) -> None:
        now = time.time()
        with self._broker.cond:
            for delivery in deliveries:
                found = self._owned(consumer, delivery)
                if found is None:
                    continue
                queue, stored = found
                until = max(now + seconds, delivery.extended_until)
                if until > stored.visible_at:
                    stored.visible_at = until
                    queue.park(stored)

    # -- queue management --------------------------------------------------------------

    def _purge(self, queue: str) -> int:
        with self._broker.cond:
            found = self._broker.queues.get(queue)
            if found is None:
                return 0
            found.promote(time.time())
            ready = [
                seq
                for seq, stored in found.messages.items()
                if stored.owner is None and stored.visible_at <= 0
            ]
            for seq in ready:
                del found.messages[seq]
            return len(ready)

    def _size(self, queue: str) -> int:
        with self._broker.cond:
            found = self._broker.queues.get(queue)
            if found is None:
                return 0
            now = time.time()
            found.promote(now)
            return sum(
                1
                for stored in found.messages.values()
                if stored.owner is None
                and stored.visible_at <= 0
                and (stored.expires_at is None or stored.expires_at > now)
            )

    def _remember(
        self, name: str, keys: list[str], expires_at: float, limit: int
    ) -> None:
        with self._broker.cond:
            found = self._broker.sets.setdefault(name, {})
            found.update(dict.fromkeys(keys, expires_at))
            self._broker.sets[name] = keep_expiring(found, limit)

    def _recall(self, name: str) -> dict[str, float]:
        with self._broker.cond:
            return keep_expiring(self._broker.sets.get(name, {}), 2**31)

    def _close(self) -> None:
        """Nothing to release: the broker lives as long as the process."""


def reset() -> None:
    """Forget every memory:// broker of this process (for test isolation)."""
    with _brokers_lock:
        _brokers.clear()
