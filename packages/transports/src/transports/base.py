"""The contract every transport follows: :class:`Transport` and :class:`Consumer`.

A transport moves messages (body bytes, headers, properties) between
producers and consumers. The public methods here validate their arguments,
retry lost connections with bounded exponential backoff and keep the
bookkeeping every broker shares: prefetch accounting, settling deliveries
from any thread, dropping acks of a previous connection, lease renewal in a
native thread, broadcast subscriptions and the ``for delivery in consume()``
loop. A transport implements a few primitives:

On :class:`Transport`:
    ``_declare_queue``, ``_declare_exchange``, ``_bind``, ``_unbind``,
    ``_delete_queue``, ``_publish``, ``_settle``, ``_purge``, ``_size`` and
    ``_close``; lease-based brokers also ``_renew``.
On its :class:`Consumer` subclass (named by ``Transport.consumer_class``):
    ``_receive`` (wait for and claim deliveries), and optionally ``_wake``
    (interrupt a blocked ``_receive`` from another thread),
    ``_queues_changed`` and ``_shutdown``.

A third party publishes a subclass in the ``transports.backends`` entry point
group under its URL scheme; :func:`transports.connect` instantiates it with
the URL and the keyword options.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Literal, TypeVar

from . import _native
from ._url import check_name, check_seconds, mask_text, mask_url, to_float, to_int
from .errors import (
    TransportClosedError,
    TransportConnectionError,
    TransportError,
)

__all__ = [
    "EXCHANGE_KINDS",
    "Binding",
    "Capabilities",
    "Consumer",
    "Delivery",
    "ExchangeSpec",
    "Message",
    "Outcome",
    "QueueSpec",
    "RetryPolicy",
    "Subscription",
    "Transport",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: How a delivery was settled: acknowledged, returned to its queue (counted as
#: a delivery), released (returned unprocessed: not counted), or rejected
#: (dead-lettered where the queue has a dead-letter target, dropped otherwise).
Outcome = Literal["ack", "requeue", "release", "reject"]
#: The outcomes that put the message back in its queue.
RETURNED: frozenset[Outcome] = frozenset(("requeue", "release"))

#: The exchange types every transport understands.
EXCHANGE_KINDS = ("direct", "topic", "fanout")

#: Header a dead-lettered message carries: why it was moved.
DEATH_REASON = "x-death-reason"
#: Header a dead-lettered message carries: the queue it came from.
DEATH_QUEUE = "x-death-queue"
#: Header a dead-lettered message carries: how often it had been delivered.
DEATH_COUNT = "x-death-delivery-count"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a transport does natively; the conformance suite reads it.

    Attributes:
        priority_levels: Distinct priorities served highest first (0: none).
            ``properties["priority"]`` takes 0-9 as in Celery; a transport with
            fewer levels maps ranges of them to one level.
        delayed_delivery: ``publish(..., delay=...)`` parks the message broker-side.
        max_delay: The longest delay accepted, in seconds (``None``: no limit).
        fanout: Fanout exchanges (broadcast to every bound queue).
        topic: Topic exchanges with ``*`` and ``#`` binding patterns.
        dead_lettering: Rejected (and poison) messages move to a dead-letter queue.
        max_deliveries: A queue's ``max_deliveries`` dead-letters a message
            delivered that often without an ack.
        leases: Deliveries are leased: an unacked delivery returns after its
            lease unless renewed; :meth:`Delivery.extend` pushes it further.
        publisher_confirms: The broker confirms what it stored:
            :meth:`Transport.publish` returns only once it has, or (AMQP's
            streaming confirms) :meth:`Transport.flush` waits for every
            message published before.
        message_ttl: Per-message and per-queue expiration (``ttl``, ``message_ttl``).
        batch_publish: :meth:`Transport.publish_many` uses one round trip.
        delivery_count: ``Delivery.delivery_count`` is counted by the broker
            (otherwise it is 1, or 2 once the broker flags a redelivery).
        uncounted_release: :meth:`Delivery.release` takes the delivery off the
            count (otherwise a release counts as a requeue).
        quorum_queues: ``declare_queue(..., quorum=True)`` is honoured.
        multiprocess: Several processes can share the broker (not ``memory://``).
        persistent: Messages survive a restart of the broker.
        expiring_sets: :meth:`Transport.remember` keeps broker-side sets of
            expiring keys that every process reads with :meth:`Transport.recall`.
    """

    priority_levels: int = 0
    delayed_delivery: bool = False
    max_delay: float | None = None
    fanout: bool = False
    topic: bool = False
    dead_lettering: bool = False
    max_deliveries: bool = False
    leases: bool = False
    publisher_confirms: bool = False
    message_ttl: bool = False
    batch_publish: bool = False
    delivery_count: bool = False
    uncounted_release: bool = False
    quorum_queues: bool = False
    multiprocess: bool = True
    persistent: bool = True
    expiring_sets: bool = False


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """The arguments a queue is declared with; see :meth:`Transport.declare_queue`."""

    name: str
    durable: bool = True
    max_priority: int | None = None
    dead_letter: str | None = None
    max_deliveries: int | None = None
    message_ttl: float | None = None
    expires: float | None = None
    auto_delete: bool = False
    quorum: bool = False

    def arguments(self) -> dict[str, object]:
        """Return the arguments (everything but the name) as a dict."""
        return {
            "durable": self.durable,
            "max_priority": self.max_priority,
            "dead_letter": self.dead_letter,
            "max_deliveries": self.max_deliveries,
            "message_ttl": self.message_ttl,
            "expires": self.expires,
            "auto_delete": self.auto_delete,
            "quorum": self.quorum,
        }


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """An exchange: ``kind`` is ``"direct"``, ``"topic"`` or ``"fanout"``."""

    name: str
    kind: str = "direct"
    durable: bool = True

    def arguments(self) -> dict[str, object]:
        """Return the arguments (everything but the name) as a dict."""
        return {"kind": self.kind, "durable": self.durable}


@dataclass(frozen=True, slots=True)
class Binding:
    """Messages of *exchange* whose key matches *routing_key* reach *queue*."""

    queue: str
    exchange: str
    routing_key: str = ""


@dataclass(frozen=True, slots=True)
class Subscription:
    """A broadcast subscription for a consumer: a private queue bound to *exchange*.

    For a fanout exchange *routing_key* is ignored; for a topic exchange it is
    the binding pattern (``"worker.#"``).
    """

    exchange: str
    routing_key: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one publish retries a lost connection (Celery's ``retry_policy``).

    Attempt *n* (0 for the first retry) waits
    ``min(interval_start + n * interval_step, interval_max)`` seconds first.
    ``RetryPolicy(max_retries=0)`` fails at the first lost connection.

    Attributes:
        max_retries: Retries after the first attempt; ``None`` retries until
            the broker answers.
        interval_start: Seconds before the first retry.
        interval_step: Seconds added for each further retry.
        interval_max: The longest pause, in seconds.

    Raises:
        ValueError: A negative count or interval.
    """

    max_retries: int | None = 3
    interval_start: float = 0.0
    interval_step: float = 0.2
    interval_max: float = 0.2

    def __post_init__(self) -> None:
        count: object = self.max_retries
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 0
        ):
            raise ValueError(
                f"RetryPolicy.max_retries must be an int >= 0 or None, got "
                f"{self.max_retries!r}"
            )
        for name in ("interval_start", "interval_step", "interval_max"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"RetryPolicy.{name} must be a number of seconds >= 0, got "
                    f"{value!r}"
                )

    def pause(self, attempt: int) -> float:
        """Seconds to wait before retry number *attempt* (0-based)."""
        return min(
            self.interval_start + attempt * self.interval_step, self.interval_max
        )


@dataclass(slots=True)
class Message:
    """One message to publish with :meth:`Transport.publish_many`.

    Attributes:
        routing_key: The queue name when *exchange* is ``""`` (the default
            exchange); otherwise the key the exchange routes by.
        body: The payload, already serialized.
        exchange: The exchange; ``""`` delivers straight to the queue
            *routing_key*.
        headers: Application headers (JSON-compatible values).
        properties: Message properties: ``priority`` (0-9), ``content_type``,
            ``content_encoding``, ``correlation_id``, ``reply_to``,
            ``expiration`` (milliseconds as a string, AMQP's form), ...
        delay: Seconds before the message becomes deliverable.
        ttl: Seconds after which an undelivered message expires.
    """

    routing_key: str
    body: bytes
    exchange: str = ""
    headers: Mapping[str, Any] | None = None
    properties: Mapping[str, Any] | None = None
    delay: float | None = None
    ttl: float | None = None


@dataclass(slots=True)
class Outgoing:
    """A validated message as the ``_publish`` primitive receives it.

    ``priority`` is clamped to 0-9; ``ttl`` already combines the ``ttl``
    argument and ``properties["expiration"]``; ``visible_at`` and
    ``expires_at`` are wall-clock times (``time.time()``).
    """

    routing_key: str
    body: bytes
    exchange: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    priority: int
    delay: float | None
    ttl: float | None
    published_at: float = field(default_factory=time.time)

    @property
    def visible_at(self) -> float:
        """When the message may first be delivered."""
        return self.published_at + (self.delay or 0.0)

    @property
    def expires_at(self) -> float | None:
        """When the message expires undelivered, or ``None``."""
        return None if self.ttl is None else self.visible_at + self.ttl


class Delivery:
    """A message handed to a consumer, to be settled once.

    ``ack``, ``reject`` and ``extend`` may be called from any thread. A
    second settlement is ignored, and so is one for a delivery of a broker
    connection that has since been replaced (the broker redelivers those).

    Attributes:
        body: The payload bytes.
        headers: Application headers.
        properties: Message properties (``priority``, ``content_type``, ...).
        queue: The queue it was consumed from.
        exchange: The exchange it was published to (``""``: the default one).
        routing_key: The routing key it was published with.
        delivery_count: How many times it has been delivered, this time included.
        redelivered: It was delivered before.
        tag: The transport's handle for it (row id, delivery tag, ...).
    """

    __slots__ = (
        "__weakref__",
        "_consumer",
        "_generation",
        "_settled",
        "body",
        "delivery_count",
        "exchange",
        "extended_until",
        "headers",
        "properties",
        "queue",
        "redelivered",
        "routing_key",
        "tag",
    )

    def __init__(
        self,
        *,
        body: bytes,
        headers: dict[str, Any],
        properties: dict[str, Any],
        queue: str,
        exchange: str,
        routing_key: str,
        delivery_count: int,
        tag: Any,
        redelivered: bool | None = None,
    ) -> None:
        self.body = body
        self.headers = headers
        self.properties = properties
        self.queue = queue
        self.exchange = exchange
        self.routing_key = routing_key
        self.delivery_count = delivery_count
        self.redelivered = delivery_count > 1 if redelivered is None else redelivered
        self.tag = tag
        #: Wall-clock time up to which :meth:`extend` pushed the lease.
        self.extended_until = 0.0
        self._consumer: Consumer | None = None
        self._generation = 0
        self._settled: Outcome | None = None

    def __repr__(self) -> str:
        return (
            f"<Delivery queue={self.queue!r} tag={self.tag!r} "
            f"count={self.delivery_count} {self._settled or 'unsettled'}>"
        )

    @property
    def settled(self) -> Outcome | None:
        """How the delivery was settled, or ``None`` while it is not."""
        return self._settled

    @property
    def consumer(self) -> Consumer:
        """The consumer that received it.

        Raises:
            TransportError: The delivery was not received by a consumer.
        """
        if self._consumer is None:
            raise TransportError(f"{self!r} was not received by a consumer")
        return self._consumer

    def ack(self) -> None:
        """Acknowledge: the broker forgets the message.

        On brokers with leases an ack that cannot reach the broker is kept and
        sent by the consuming thread once it reconnected (the message comes
        back only if its lease ends first).

        Raises:
            TransportConnectionError: The broker stayed unreachable; the message
                will be delivered again.
        """
        self.consumer._settle([self], "ack")

    def reject(self, *, requeue: bool = False) -> None:
        """Give the message back (*requeue*) or reject it.

        A rejected message moves to the queue's dead-letter target, with the
        reason in its ``x-death-reason`` header, or is dropped without one.

        Raises:
            TransportConnectionError: The broker stayed unreachable.
        """
        self.consumer._settle([self], "requeue" if requeue else "reject")

    def release(self) -> None:
        """Give the message back unprocessed: this delivery is not counted.

        Unlike ``reject(requeue=True)``, the message's ``delivery_count`` (and
        so a queue's ``max_deliveries``) is as if this delivery never happened,
        where the broker counts deliveries (capability ``uncounted_release``;
        ``redelivered`` is then false again unless it was delivered before);
        elsewhere it is a requeue. Meant for messages a consumer fetched but
        never started on (a warm shutdown).

        Raises:
            TransportConnectionError: The broker stayed unreachable.
        """
        self.consumer._settle([self], "release")

    def extend(self, seconds: float) -> None:
        """Keep the message from being redelivered for *seconds* from now.

        Automatic lease renewal goes on as well; this only pushes the lease
        further. On brokers without leases it does nothing.

        Raises:
            ValueError: *seconds* is not a positive number.
            TransportConnectionError: The broker stayed unreachable.
        """
        value = check_seconds(
            "extend(seconds)", seconds, positive=True, allow_none=False
        )
        assert value is not None  # noqa: S101 - for mypy; check_seconds refused None
        self.consumer._extend(self, value)


class _LeaseKeeper:
    """Renews the leases of every live consumer of a transport, in a native thread.

    The thread sleeps with the unpatched ``time.sleep`` and keeps running
    while a task holds the interpreter, also under gevent and eventlet, so a
    busy worker never looks dead to the broker.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = weakref.ref(transport)
        self._consumers: weakref.WeakSet[Consumer] = weakref.WeakSet()
        self._lock = _native.allocate_lock()
        self._running = False
        self._stopped = False
        self.renewals = 0

    def add(self, consumer: Consumer) -> None:
        with self._lock:
            self._consumers.add(consumer)
            if not self._running:
                self._running = True
                self._stopped = False
                _native.start_thread(self._run)

    def discard(self, consumer: Consumer) -> None:
        with self._lock:
            self._consumers.discard(consumer)

    def stop(self) -> None:
        self._stopped = True

    def _sleep(self, seconds: float) -> bool:
        """Sleep in short slices; return False once stopped."""
        deadline = time.monotonic() + seconds
        while not self._stopped:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            _native.sleep(min(left, 0.5))
        return False

    def _run(self) -> None:
        try:
            transport = self._transport()
            if transport is None or transport.renew_interval is None:
                return
            interval = transport.renew_interval
            del transport
            while self._sleep(interval):
                transport = self._transport()
                if transport is None or transport.closed:
                    return
                self._renew(transport)
                del transport
        finally:
            with self._lock:
                self._running = False

    def _renew(self, transport: Transport) -> None:
        with self._lock:
            consumers = list(self._consumers)
        for consumer in consumers:
            try:
                consumer._renew_all()
            except TransportConnectionError as exc:
                # The outage was logged once already; the next round retries.
                logger.debug("renewing leases of %r failed: %s", consumer, exc)
            except Exception:
                logger.exception(
                    "%s transport %s: renewing leases failed; they are retried in "
                    "%.1f s",
                    transport.name,
                    transport.url,
                    transport.renew_interval,
                )
        try:
            transport._housekeeping()
        except TransportConnectionError as exc:
            logger.debug("%s transport: housekeeping failed: %s", transport.name, exc)
        except Exception:
            logger.exception("%s transport: housekeeping failed", transport.name)
        self.renewals += 1


class _Outage:
    """Logs each loss of the broker connection once, and its end once.

    A transport has several links to the broker (the connection commands
    use, a consumer's own connection, a pub/sub listener), and each notices
    an outage on its own, when it is next used. Each link calls :meth:`lost`
    on every failed attempt and :meth:`back` once it works again. The first
    loss logs a warning, the recovery of the last link an info line, the
    rest is debug. A loss noticed within :attr:`GRACE` seconds of a recovery
    by a link that was not down in that outage is the same outage, seen late
    by a link that was idle: it stays quiet unless it lasts longer than that,
    or a link that recovered from that outage fails again (a new outage).
    """

    #: Seconds after a recovery in which a new loss counts as the same outage.
    GRACE = 5.0

    def __init__(self, transport: Transport) -> None:
        self._transport = weakref.ref(transport)
        self._lock = threading.Lock()
        self._down: set[str] = set()
        self._seen: set[str] = set()
        self._since = 0.0
        self._loud = False
        self._recovered = -math.inf
        #: How many outages were logged (a warning each).
        self.count = 0

    @property
    def active(self) -> bool:
        """Some link lost its connection and has not reconnected yet."""
        return bool(self._down)

    def lost(self, link: str, exc: BaseException) -> None:
        """*link* failed with *exc* and is reconnecting."""
        now = time.monotonic()
        with self._lock:
            fresh = link not in self._down  # not a retry of a link already down
            if not self._down:
                self._since = now
                self._loud = False
            warn = False
            if not self._loud:
                warn = (
                    fresh
                    and (link in self._seen or now - self._recovered >= self.GRACE)
                ) or now - self._since >= self.GRACE
                if warn:
                    self._loud = True
                    self._seen = set(self._down)
            self._down.add(link)
            self._seen.add(link)
            if warn:
                self.count += 1
        transport = self._transport()
        if transport is None:
            return
        reason = transport._scrub(exc)
        if warn:
            logger.warning(
                "%s transport: lost the connection to %s: %s; reconnecting",
                transport.name,
                transport.url,
                reason.rstrip("."),
            )
        else:
            logger.debug(
                "%s transport %s: %s lost its connection (%s); reconnecting",
                transport.name,
                transport.url,
                link,
                reason,
            )

    def back(self, link: str) -> None:
        """*link* works again (cheap when it never failed)."""
        if link not in self._down:
            return
        now = time.monotonic()
        with self._lock:
            if link not in self._down:
                return
            self._down.discard(link)
            if self._down:
                return
            self._recovered = now
            loud, took = self._loud, now - self._since
        transport = self._transport()
        if transport is None:
            return
        if loud:
            logger.info(
                "%s transport: reconnected to %s after %.1f s",
                transport.name,
                transport.url,
                took,
            )
        else:
            logger.debug(
                "%s transport %s: %s reconnected", transport.name, transport.url, link
            )

    def forget(self, link: str) -> None:
        """*link* is gone (its consumer closed): stop waiting for it."""
        with self._lock:
            self._down.discard(link)


class Consumer(ABC):
    """One consume loop over several queues and broadcast subscriptions.

    Create it with :meth:`Transport.consumer`. At most ``prefetch``
    deliveries are unsettled at once; :meth:`fetch` returns the next ones,
    waiting without busy-polling. Queues and subscriptions can be added and
    cancelled while it runs. A subclass implements :meth:`_receive`.
    """

    #: The transport connection :meth:`_receive` uses, for the outage log
    #: (``None``: a consumer connection that reports its own losses).
    _receive_link: ClassVar[str | None] = "commands"

    def __init__(
        self,
        transport: Transport,
        queues: Sequence[str],
        *,
        subscriptions: Sequence[Subscription | str] = (),
        prefetch: int = 10,
    ) -> None:
        if not _is_int(prefetch, 1):
            raise ValueError(
                f"prefetch must be an int >= 1 (the most unacked deliveries at once), "
                f"got {prefetch!r}"
            )
        if isinstance(queues, str):
            raise TypeError(
                f"queues must be a sequence of queue names, got the str {queues!r}; "
                f"write [{queues!r}]"
            )
        self.transport = transport
        self._prefetch = prefetch
        #: A random identity, used as the lease owner on lease-based brokers.
        self.token = uuid.uuid4().hex
        self._queues: list[str] = []
        self._subscriptions: dict[Subscription, str] = {}
        self._cond = _native.condition()
        self._unsettled: dict[int, Delivery] = {}
        #: Deliveries settled here whose settlement the broker has not confirmed.
        self._settling = 0
        #: Which of the consumed queues the next claim starts with.
        self._rotation = 0
        self._buffer: deque[Delivery] = deque()
        self._generation = 0
        self._interrupted = False
        self._closed = False
        self._pending: list[tuple[list[Delivery], Outcome]] = []
        for name in queues:
            self._queues.append(check_name("a queue name", name))
        for sub in subscriptions:
            self._add_subscription(sub)
        if not self._queues:
            raise ValueError(
                "a consumer needs at least one queue or subscription to consume from"
            )
        transport._register(self)

    # -- public ----------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.transport.url} queues={self._queues!r} "
            f"unacked={len(self._unsettled)}/{self.prefetch}>"
        )

    def __enter__(self) -> Consumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def queues(self) -> tuple[str, ...]:
        """The queues consumed, subscription queues included."""
        with self._cond:
            return tuple(self._queues)

    @property
    def prefetch(self) -> int:
        """The most unacked deliveries at once; may be changed while consuming.

        A worker raises it while it holds messages it cannot run yet (ETA,
        rate limits), so that they do not block the others.
        """
        return self._prefetch

    @prefetch.setter
    def prefetch(self, value: int) -> None:
        if not _is_int(value, 1):
            raise ValueError(f"prefetch must be an int >= 1, got {value!r}")
        if value != self._prefetch:
            self._prefetch = value
            self._prefetch_changed()

    @property
    def unacked(self) -> int:
        """Deliveries received and not yet settled (at most ``prefetch``)."""
        with self._cond:
            return len(self._unsettled)

    @property
    def closed(self) -> bool:
        """The consumer was closed."""
        return self._closed

    def fetch(
        self, max_count: int | None = None, *, timeout: float | None = 0.0
    ) -> list[Delivery]:
        """Return up to *max_count* deliveries, waiting at most *timeout* seconds.

        The worker's hot path: one call claims a batch in one round trip where
        the broker allows. Returns ``[]`` when nothing arrived in time, when
        the prefetch window stays full, or after :meth:`interrupt`.

        Args:
            max_count: The most deliveries to return (default: as many as the
                prefetch window allows).
            timeout: The longest wait for the first delivery; ``None`` waits
                until one arrives (or :meth:`interrupt`), ``0`` does not wait.

        Raises:
            TransportClosedError: The consumer or its transport is closed.
            TransportConnectionError: The broker stayed unreachable.
        """
        if max_count is not None and not _is_int(max_count, 1):
            raise ValueError(
                f"max_count must be an int >= 1 or None, got {max_count!r}"
            )
        wait = check_seconds("timeout", timeout)
        deadline = math.inf if wait is None else time.monotonic() + wait
        while True:
            self._check_open()
            self._flush_pending()
            with self._cond:
                if self._buffer:
                    return self._take(max_count)
                if self._interrupted:
                    self._interrupted = False
                    return []
                room = self.prefetch - len(self._unsettled) - self._settling
                queues = tuple(self._queues)
                if room <= 0:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return []
                    self._cond.wait(min(remaining, 3600.0))
                    continue
            limit = room if max_count is None else min(room, max_count)
            remaining = max(0.0, deadline - time.monotonic())
            received = self.transport._retrying(
                "receive", self._receive, queues, limit, remaining,
                link=self._receive_link,
            )  # fmt: skip
            if received:
                with self._cond:
                    for delivery in received:
                        delivery._consumer = self
                        delivery._generation = self._generation
                        self._unsettled[id(delivery)] = delivery
                    self._buffer.extend(received)
                    return self._take(max_count)
            if time.monotonic() >= deadline:
                with self._cond:
                    self._interrupted = False
                return []

    def drain(self, timeout: float | None = 0.0) -> int:
        """Wait up to *timeout* for deliveries and buffer them; return how many wait.

        The wake-up primitive for an event loop: run it in a thread, then
        take the buffered deliveries with ``fetch(timeout=0)``.

        Raises:
            TransportClosedError: The consumer or its transport is closed.
            TransportConnectionError: The broker stayed unreachable.
        """
        got = self.fetch(timeout=timeout)
        with self._cond:
            self._buffer.extendleft(reversed(got))
            return len(self._buffer)

    def __iter__(self) -> Iterator[Delivery]:
        """Yield deliveries until the consumer is closed or interrupted."""
        while not self._closed:
            batch = self.fetch(timeout=None)
            if not batch:
                return
            yield from batch

    def interrupt(self) -> None:
        """Make a :meth:`fetch` blocked in another thread return ``[]`` now."""
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()
        self._wake()

    def add_queue(self, name: str) -> None:
        """Start consuming from *name* as well (no-op if already consumed).

        Raises:
            TransportClosedError: The consumer is closed.
        """
        check_name("a queue name", name)
        self._check_open()
        with self._cond:
            if name in self._queues:
                return
            self._queues.append(name)
        self._queues_changed()
        self._wake()

    def cancel_queue(self, name: str) -> None:
        """Stop consuming from *name*; deliveries already received stay valid."""
        with self._cond:
            if name not in self._queues:
                return
            self._queues.remove(name)
        self._queues_changed()

    def subscribe(self, exchange: str, routing_key: str = "") -> str:
        """Receive broadcasts from *exchange* (fanout, or topic with a pattern).

        Returns:
            The name of the private queue that receives them.

        Raises:
            TransportClosedError: The consumer is closed.
        """
        self._check_open()
        name = self._add_subscription(Subscription(exchange, routing_key))
        self._queues_changed()
        self._wake()
        return name

    def unsubscribe(self, exchange: str, routing_key: str = "") -> None:
        """Stop receiving broadcasts from *exchange* and remove the private queue."""
        sub = Subscription(exchange, routing_key)
        with self._cond:
            name = self._subscriptions.pop(sub, None)
            if name is None:
                return
            if name in self._queues:
                self._queues.remove(name)
        self._queues_changed()
        self.transport._unsubscribe(sub, name)

    def close(self, *, requeue: bool = True) -> None:
        """Stop consuming.

        Args:
            requeue: Return every unsettled delivery to its queue now (a warm
                shutdown), released (:meth:`Delivery.release`). With ``False``
                they stay with the broker, which delivers them again when
                their lease ends or the connection closes (a cold shutdown);
                settling them later is ignored.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            leftover = list(self._unsettled.values())
            self._buffer.clear()
            self._cond.notify_all()
        self._wake()
        if requeue and leftover and not self.transport.closed:
            try:
                self._settle(leftover, "release")
            except TransportError as exc:
                logger.warning(
                    "%s transport %s: could not return %d deliveries on close (%s); "
                    "the broker delivers them again",
                    self.transport.name,
                    self.transport.url,
                    len(leftover),
                    exc,
                )
        else:
            with self._cond:
                for delivery in leftover:
                    delivery._settled = delivery._settled or "requeue"
                self._unsettled.clear()
        self.transport._unregister(self)
        subscriptions = list(self._subscriptions.items())
        self._subscriptions.clear()
        for sub, name in subscriptions:
            if not self.transport.closed:
                self.transport._unsubscribe(sub, name)
        self._shutdown()

    # -- primitives a transport implements ---------------------------------------------

    @abstractmethod
    def _receive(
        self, queues: tuple[str, ...], limit: int, timeout: float
    ) -> list[Delivery]:
        """Claim up to *limit* deliveries from *queues*, waiting up to *timeout*.

        Returns as soon as at least one delivery is claimed, when *timeout*
        passes, or when :meth:`_wake` is called; never busy-polls. Called from
        the consuming thread only; connection errors of the transport's
        ``connection_errors`` are retried by the caller.
        """

    def _wake(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Interrupt a :meth:`_receive` blocked in another thread (optional)."""

    def _prefetch_changed(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Tell the broker the new :attr:`prefetch` (where it enforces one)."""

    def _queues_changed(self) -> None:  # noqa: B027 - optional hook, empty by default
        """React to :meth:`add_queue`/:meth:`cancel_queue` (e.g. basic.consume)."""

    def _shutdown(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release the consumer's own resources after :meth:`close`."""

    # -- machinery ---------------------------------------------------------------------

    def _add_subscription(self, sub: Subscription | str) -> str:
        if isinstance(sub, str):
            sub = Subscription(sub)
        if not isinstance(sub, Subscription):
            raise TypeError(
                f"a subscription must be an exchange name or a Subscription, got "
                f"{type(sub).__name__} {sub!r}"
            )
        check_name("an exchange name", sub.exchange)
        with self._cond:
            existing = self._subscriptions.get(sub)
        if existing is not None:
            return existing
        name = self.transport._subscribe(sub, self)
        with self._cond:
            self._subscriptions[sub] = name
            self._queues.append(name)
        return name

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError(f"{self!r} is closed; open a new consumer")
        self.transport._check_open()

    def _in_turn(self, queues: Sequence[_T]) -> list[_T]:
        """*queues* starting with the next one in turn, one step further per call.

        A transport claiming from several queues takes them in this order, so
        a backlog in one does not starve the others (as kombu rotates them).
        """
        ordered = list(queues)
        if len(ordered) > 1:
            start = self._rotation % len(ordered)
            ordered = ordered[start:] + ordered[:start]
            self._rotation += 1
        return ordered

    def _take(self, max_count: int | None) -> list[Delivery]:
        count = len(self._buffer) if max_count is None else max_count
        return [self._buffer.popleft() for _ in range(min(count, len(self._buffer)))]

    def _claim_settlement(
        self, deliveries: Iterable[Delivery], outcome: Outcome, *, in_flight: bool
    ) -> list[Delivery]:
        """Mark *deliveries* settled; return those the broker must be told about.

        With *in_flight* those stay counted against the prefetch window (as
        ``_settling``) until the caller has the broker settle them: a consumer
        killed meanwhile has them delivered again, so more than ``prefetch``
        would come back.
        """
        live = []
        with self._cond:
            for delivery in deliveries:
                if delivery._settled is not None:
                    logger.debug("ignoring %s of already settled %r", outcome, delivery)
                    continue
                delivery._settled = outcome
                self._unsettled.pop(id(delivery), None)
                if delivery._generation != self._generation:
                    logger.debug(
                        "dropping %s of %r: its broker connection was replaced and "
                        "the broker delivers it again",
                        outcome,
                        delivery,
                    )
                    continue
                live.append(delivery)
            if in_flight:
                self._settling += len(live)
            self._cond.notify_all()
        return live

    def _settle(self, deliveries: Iterable[Delivery], outcome: Outcome) -> None:
        in_io_thread = self.transport.settle_in_io_thread
        live = self._claim_settlement(deliveries, outcome, in_flight=not in_io_thread)
        if not live:
            return
        if in_io_thread:
            with self._cond:
                self._pending.append((live, outcome))
            self._wake()
            return
        try:
            self.transport._retrying(
                "settle", self.transport._settle, self, live, outcome
            )
        except TransportConnectionError:
            if not self.transport.capabilities.leases or self._closed:
                raise
            # A leased delivery outlives its connection: the consuming thread
            # sends the settlement once reconnected, instead of the message
            # coming back (and running again) when its lease ends.
            logger.debug("%s of %d deliveries kept for later", outcome, len(live))
            with self._cond:
                self._pending.append((live, outcome))
            self._wake()
        finally:
            with self._cond:
                self._settling -= len(live)
                self._cond.notify_all()

    def _flush_pending(self) -> None:
        """Send settlements handed over by other threads or kept over an outage."""
        if not self._pending:
            return
        with self._cond:
            pending, self._pending = self._pending, []
        for index, (deliveries, outcome) in enumerate(pending):
            live = [d for d in deliveries if d._generation == self._generation]
            if not live:
                continue
            try:
                self.transport._retrying(
                    "settle", self.transport._settle, self, live, outcome
                )
            except TransportConnectionError:
                with self._cond:
                    self._pending[:0] = pending[index:]
                raise

    def _extend(self, delivery: Delivery, seconds: float) -> None:
        if delivery._settled is not None or delivery._generation != self._generation:
            return
        delivery.extended_until = max(delivery.extended_until, time.time() + seconds)
        if self.transport.capabilities.leases:
            self.transport._retrying(
                "extend", self.transport._renew, self, [delivery], seconds
            )

    def _renew_all(self) -> None:
        """Renew the lease of every unsettled delivery (the lease keeper calls this)."""
        with self._cond:
            if self._closed:
                return
            deliveries = list(self._unsettled.values())
        if deliveries:
            self.transport._retrying(
                "renew", self.transport._renew, self, deliveries, self.transport.lease
            )

    def _connection_lost(self) -> int:
        """Forget every unsettled delivery after a reconnect; return how many.

        A transport whose deliveries die with their connection (AMQP delivery
        tags) calls this once it has reconnected: later settlements of those
        deliveries are dropped, since the broker delivers them again.
        """
        with self._cond:
            self._generation += 1
            dropped = len(self._unsettled)
            self._unsettled.clear()
            self._buffer.clear()
            self._cond.notify_all()
        if dropped:
            # Part of an outage the transport warned about already.
            logger.info(
                "%s transport %s: connection replaced; %d unacked deliveries will be "
                "delivered again",
                self.transport.name,
                self.transport.url,
                dropped,
            )
        return dropped


class Transport(ABC):
    """A connection to one broker: declare, publish, consume, settle.

    Thread-safe: one instance may be shared by the threads of a process
    (publishers, a consuming thread, pool result threads that ack).
    Open it with :func:`transports.connect`; use it as a context manager.

    Args:
        url: The broker URL; its scheme selected the class.
        lease: Seconds an unacked delivery stays with its consumer before the
            broker hands it to another one (lease-based brokers).
        renew_interval: Seconds between automatic lease renewals of a live
            consumer's deliveries; ``None`` turns renewal off.
        max_retries: Attempts after the first when the connection is lost.
        retry_backoff_max: The longest pause between two attempts, in seconds
            (the pause doubles from 0.05 s up to this).

    Raises:
        InvalidURLError: An option has the wrong form.
    """

    #: The transport's name in messages and logs, e.g. ``"sqlalchemy"``.
    name: ClassVar[str] = "transport"
    #: What the transport does natively (a subclass may refine it per instance).
    capabilities: Capabilities = Capabilities()
    #: The consumer class :meth:`consumer` instantiates.
    consumer_class: ClassVar[type[Consumer]]
    #: Driver exceptions that mean "the connection was lost; retrying is safe".
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    #: Modules a new process should import in advance to connect quickly
    #: (the SIGKILL harness preloads them in its fork server).
    driver_modules: tuple[str, ...] = ()
    #: Settlements must run on the consuming (I/O) thread: ``ack`` from another
    #: thread is queued, :meth:`Consumer._wake` is called, and the consuming
    #: thread sends it (py-amqp channels are not thread-safe).
    settle_in_io_thread: ClassVar[bool] = False

    def __init__(
        self,
        url: str,
        *,
        lease: float = 60.0,
        renew_interval: float | None = 20.0,
        max_retries: int = 5,
        retry_backoff_max: float = 2.0,
    ) -> None:
        self.url = mask_url(url)
        self._secrets: tuple[str, ...] = ()
        where = f"transport {self.url!r}"
        self.lease = to_float(where, "lease", lease) or 0.0
        if self.lease <= 0:
            raise to_float_error(where, "lease", lease)
        self.renew_interval = to_float(
            where, "renew_interval", renew_interval, allow_none=True
        )
        if self.renew_interval is not None and not (
            0 < self.renew_interval < self.lease
        ):
            from .errors import InvalidURLError

            raise InvalidURLError(
                f"option renew_interval={renew_interval!r} of {where} must be "
                f"positive and shorter than the lease ({self.lease:g} s), or None "
                "to turn automatic renewal off"
            )
        self.max_retries = to_int(where, "max_retries", max_retries)
        self.retry_backoff_max = to_float(where, "retry_backoff_max", retry_backoff_max)
        self._closed = False
        self._consumers: weakref.WeakSet[Consumer] = weakref.WeakSet()
        self._consumers_lock = threading.Lock()
        self._keeper: _LeaseKeeper | None = None
        self._outage = _Outage(self)

    # -- context management -----------------------------------------------------------

    def __enter__(self) -> Transport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} {self.url}{state}>"

    @property
    def closed(self) -> bool:
        """The transport was closed."""
        return self._closed

    # -- declarations ------------------------------------------------------------------

    def declare_queue(
        self,
        name: str,
        *,
        durable: bool = True,
        max_priority: int | None = None,
        dead_letter: str | None = None,
        max_deliveries: int | None = None,
        message_ttl: float | None = None,
        expires: float | None = None,
        auto_delete: bool = False,
        quorum: bool = False,
    ) -> QueueSpec:
        """Create queue *name* if it does not exist; idempotent.

        Args:
            name: The queue.
            durable: Survive a broker restart (where the broker distinguishes).
            max_priority: Highest priority honoured (AMQP ``x-max-priority``);
                ``None`` keeps the transport's default.
            dead_letter: Queue that receives rejected, expired and poison
                messages (with an ``x-death-reason`` header).
            max_deliveries: Deliveries without an ack after which a message is
                dead-lettered instead of delivered again.
            message_ttl: Seconds a message may wait in this queue.
            expires: Delete the queue after this many seconds without a consumer.
            auto_delete: Delete the queue when its last consumer goes away.
            quorum: A RabbitMQ quorum queue (AMQP only).

        Returns:
            The declared specification.

        Raises:
            DeclarationMismatchError: The queue exists with other arguments.
            TransportConnectionError: The broker stayed unreachable.
        """
        check_name("a queue name", name)
        if dead_letter is not None:
            check_name("dead_letter", dead_letter)
            if dead_letter == name:
                raise ValueError(
                    f"queue {name!r} cannot be its own dead-letter target; name "
                    "another queue, e.g. dead_letter='{name}.dead'"
                )
        if max_priority is not None and not _is_int(max_priority, 0, 255):
            raise ValueError(f"max_priority must be an int 0-255, got {max_priority!r}")
        if max_deliveries is not None and not _is_int(max_deliveries, 1):
            raise ValueError(
                f"max_deliveries must be an int >= 1 or None, got {max_deliveries!r}"
            )
        if quorum and not self.capabilities.quorum_queues:
            raise ValueError(
                f"quorum queues are a RabbitMQ feature; the {self.name} transport "
                f"cannot declare {name!r} with quorum=True"
            )
        spec = QueueSpec(
            name=name,
            durable=bool(durable),
            max_priority=max_priority,
            dead_letter=dead_letter,
            max_deliveries=max_deliveries,
            message_ttl=check_seconds("message_ttl", message_ttl, positive=True),
            expires=check_seconds("expires", expires, positive=True),
            auto_delete=bool(auto_delete),
            quorum=bool(quorum),
        )
        self._check_open()
        self._retrying("declare_queue", self._declare_queue, spec)
        return spec

    def declare_exchange(
        self, name: str, kind: str = "direct", *, durable: bool = True
    ) -> ExchangeSpec:
        """Create exchange *name* of *kind* (``direct``, ``topic``, ``fanout``).

        Raises:
            ValueError: *kind* is unknown, or the transport lacks it.
            DeclarationMismatchError: The exchange exists with another kind.
            TransportConnectionError: The broker stayed unreachable.
        """
        check_name("an exchange name", name)
        if kind not in EXCHANGE_KINDS:
            raise ValueError(
                f"unknown exchange kind {kind!r}; use one of "
                f"{', '.join(EXCHANGE_KINDS)}"
            )
        caps = self.capabilities
        if (kind == "topic" and not caps.topic) or (
            kind == "fanout" and not caps.fanout
        ):
            raise ValueError(f"the {self.name} transport has no {kind} exchanges")
        spec = ExchangeSpec(name, kind, bool(durable))
        self._check_open()
        self._retrying("declare_exchange", self._declare_exchange, spec)
        return spec

    def bind(self, queue: str, exchange: str, routing_key: str = "") -> Binding:
        """Route messages of *exchange* matching *routing_key* to *queue*; idempotent.

        Raises:
            TransportConnectionError: The broker stayed unreachable.
        """
        binding = Binding(
            check_name("a queue name", queue),
            check_name("an exchange name", exchange),
            check_name("a routing key", routing_key, allow_empty=True),
        )
        self._check_open()
        self._retrying("bind", self._bind, binding)
        return binding

    def unbind(self, queue: str, exchange: str, routing_key: str = "") -> None:
        """Remove a binding made with :meth:`bind` (no-op if absent).

        Raises:
            TransportConnectionError: The broker stayed unreachable.
        """
        self._check_open()
        self._retrying("unbind", self._unbind, Binding(queue, exchange, routing_key))

    def delete_queue(self, name: str) -> None:
        """Delete queue *name*, its messages and its bindings (no-op if absent).

        Raises:
            TransportConnectionError: The broker stayed unreachable.
        """
        check_name("a queue name", name)
        self._check_open()
        self._retrying("delete_queue", self._delete_queue, name)

    # -- publishing --------------------------------------------------------------------

    def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        exchange: str = "",
        headers: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        delay: float | None = None,
        ttl: float | None = None,
        mandatory: bool = False,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Publish one message.

        ``publish("tasks", body)`` delivers to queue ``tasks`` (the default
        exchange); with *exchange* the exchange routes by *routing_key*.

        Args:
            routing_key: The queue, or the key *exchange* routes by.
            body: The serialized payload.
            exchange: The exchange, ``""`` for the default one.
            headers: Application headers (JSON-compatible values).
            properties: ``priority`` (0-9, higher first), ``content_type``, ...
            delay: Seconds before it may be delivered.
            ttl: Seconds it may wait undelivered before it expires.
            mandatory: Raise :class:`~transports.UnroutableError` when no queue
                receives it, instead of dropping it.
            retry: How a lost connection is retried for this call; ``None``:
                the transport's own ``max_retries`` and exponential backoff.

        Raises:
            TypeError: *body* is not bytes, or headers/properties not mappings.
            ValueError: A negative or too long *delay*, a bad priority, ...
            UnroutableError: *mandatory* and no queue matched.
            TransportConnectionError: The broker stayed unreachable.
        """
        message = Message(routing_key, body, exchange, headers, properties, delay, ttl)
        outgoing = [self._prepare(message)]
        self._check_open()
        self._retrying("publish", self._publish, outgoing, mandatory, policy=retry)

    def publish_many(
        self,
        messages: Iterable[Message],
        *,
        mandatory: bool = False,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Publish *messages* in one round trip where the broker allows.

        *mandatory* and *retry* are as for :meth:`publish`.

        Raises:
            TypeError: An item is not a :class:`Message`, or has a bad field.
            ValueError: An item has a bad delay, ttl or priority.
            UnroutableError: *mandatory* and some message reached no queue
                (the others are published).
            TransportConnectionError: The broker stayed unreachable.
        """
        outgoing = []
        for message in messages:
            if not isinstance(message, Message):
                raise TypeError(
                    "publish_many takes transports.Message items, got "
                    f"{type(message).__name__} {message!r}"
                )
            outgoing.append(self._prepare(message))
        if not outgoing:
            return
        self._check_open()
        self._retrying("publish_many", self._publish, outgoing, mandatory, policy=retry)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the broker confirmed every message published so far.

        Only a transport whose :meth:`publish` returns before the broker's
        confirm (AMQP with ``confirm_publish="stream"``, its default) has
        anything to wait for; on the others every publish waited already and
        this returns at once. Call it where a publish must be safe before
        going on (a worker does before it acknowledges the message whose
        task published); :meth:`close` and interpreter exit call it too.

        Args:
            timeout: The longest wait for the confirms, in seconds (default:
                the transport's own).

        Raises:
            TypeError: *timeout* is not a number.
            ValueError: *timeout* is negative, NaN or infinite.
            TransportError: The broker refused some of the messages.
            TransportConnectionError: The broker stayed unreachable.
        """
        check_seconds("flush timeout", timeout)
        self._check_open()

    @property
    def unconfirmed(self) -> int:
        """Messages published that the broker has not confirmed yet (see
        :meth:`flush`); 0 where :meth:`publish` waits for the broker."""
        return 0

    def _prepare(self, message: Message) -> Outgoing:
        if (
            message.exchange == ""
            and type(message.routing_key) is str
            and 0 < len(message.routing_key) <= 255
            and type(message.body) is bytes
            and message.headers is None
            and message.properties is None
            and message.delay is None
            and message.ttl is None
        ):
            return Outgoing(
                message.routing_key, message.body, "", {}, {}, 0, None, None
            )
        check_name(
            "a routing key", message.routing_key, allow_empty=bool(message.exchange)
        )
        check_name("an exchange name", message.exchange, allow_empty=True)
        body: object = message.body
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        if not isinstance(body, bytes):
            raise TypeError(
                f"a message body must be bytes, got {type(body).__name__}; serialize "
                "it first, e.g. msgwire.dumps(value).data"
            )
        headers = _plain_dict("headers", message.headers)
        properties = _plain_dict("properties", message.properties)
        priority = properties.get("priority", 0)
        if priority is None:
            priority = 0
        if not _is_int(priority, 0):
            raise ValueError(
                f"properties['priority'] must be an int 0-9 (higher is served first), "
                f"got {priority!r}"
            )
        delay = check_seconds("delay", message.delay)
        if delay == 0:
            delay = None
        caps = self.capabilities
        if delay is not None:
            if not caps.delayed_delivery:
                raise ValueError(
                    f"the {self.name} transport cannot delay messages; hold the "
                    "message until it is due, or choose a broker that can"
                )
            if caps.max_delay is not None and delay > caps.max_delay:
                raise ValueError(
                    f"delay={delay:g} s exceeds the {self.name} transport's limit of "
                    f"{caps.max_delay:g} s; hold the message until it is closer to due"
                )
        ttl = check_seconds("ttl", message.ttl, positive=True)
        expiration = properties.get("expiration")
        if expiration is not None:
            try:
                from_properties = float(expiration) / 1000.0
            except (TypeError, ValueError):
                raise ValueError(
                    "properties['expiration'] must be milliseconds as a string, "
                    f"e.g. '120000', got {expiration!r}"
                ) from None
            ttl = from_properties if ttl is None else min(ttl, from_properties)
        return Outgoing(
            routing_key=message.routing_key,
            body=bytes(body),
            exchange=message.exchange,
            headers=headers,
            properties=properties,
            priority=min(int(priority), 9),
            delay=delay,
            ttl=ttl,
        )

    # -- consuming ---------------------------------------------------------------------

    def consumer(
        self,
        queues: Sequence[str] = (),
        *,
        subscriptions: Sequence[Subscription | str] = (),
        prefetch: int = 10,
    ) -> Consumer:
        """Open a consumer of *queues* and broadcast *subscriptions*.

        Args:
            queues: Queue names to consume.
            subscriptions: Exchanges (or :class:`Subscription` with a topic
                pattern) to receive broadcasts from, through a private queue.
            prefetch: The most unsettled deliveries at once.

        Raises:
            ValueError: No queue and no subscription, or a bad *prefetch*.
            TransportClosedError: The transport is closed.
        """
        self._check_open()
        return self.consumer_class(
            self, queues, subscriptions=subscriptions, prefetch=prefetch
        )

    def consume(
        self,
        queues: Sequence[str] = (),
        *,
        subscriptions: Sequence[Subscription | str] = (),
        prefetch: int = 10,
        timeout: float | None = None,
    ) -> Iterator[Delivery]:
        """Yield deliveries from *queues* and *subscriptions* in one loop.

        The loop ends when nothing arrived for *timeout* seconds (``None``:
        never). Deliveries not settled when the loop ends go back to their
        queue.

        Raises:
            TransportClosedError: The transport is closed.
            TransportConnectionError: The broker stayed unreachable.
        """
        consumer = self.consumer(queues, subscriptions=subscriptions, prefetch=prefetch)
        try:
            while True:
                batch = consumer.fetch(timeout=timeout)
                if not batch:
                    return
                yield from batch
        finally:
            consumer.close(requeue=True)

    def ack_many(self, deliveries: Iterable[Delivery]) -> None:
        """Acknowledge *deliveries* in one round trip per consumer.

        Raises:
            TransportConnectionError: The broker stayed unreachable.
        """
        by_consumer: dict[int, tuple[Consumer, list[Delivery]]] = {}
        for delivery in deliveries:
            consumer = delivery.consumer
            if consumer.transport is not self:
                raise TransportError(
                    f"{delivery!r} was received through another transport, "
                    f"{consumer.transport!r}"
                )
            by_consumer.setdefault(id(consumer), (consumer, []))[1].append(delivery)
        for consumer, items in by_consumer.values():
            consumer._settle(items, "ack")

    # -- queue management --------------------------------------------------------------

    def purge(self, queue: str) -> int:
        """Remove the ready messages of *queue*; return how many.

        Delivered (unacked) messages are not touched.

        Raises:
            TransportConnectionError: The broker stayed unreachable.
        """
        check_name("a queue name", queue)
        self._check_open()
        return self._retrying("purge", self._purge, queue)

    def size(self, queue: str) -> int:
        """Return how many messages of *queue* are ready for delivery.

        Delivered but unacked messages and delayed ones are not counted.

        Raises:
            TransportConnectionError: The broker stayed unreachable.
        """
        check_name("a queue name", queue)
        self._check_open()
        return self._retrying("size", self._size, queue)

    def remember(
        self, name: str, keys: Iterable[str], ttl: float, *, limit: int = 10_000
    ) -> None:
        """Keep *keys* in the broker-side set *name* for *ttl* seconds.

        Every process of the broker reads the set with :meth:`recall` (a worker
        that starts later learns which tasks were revoked). The set is bounded:
        beyond *limit* keys the ones expiring first are dropped. Adding a key
        again moves its expiry.

        Raises:
            ValueError: A bad name, ttl or limit.
            TransportError: The transport keeps no sets (``expiring_sets``).
            TransportConnectionError: The broker stayed unreachable.
        """
        check_name("a set name", name)
        seconds = check_seconds("ttl", ttl, positive=True, allow_none=False)
        assert seconds is not None  # noqa: S101 - for mypy; refused None above
        if not _is_int(limit, 1):
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        items = [check_name("a set key", key) for key in keys]
        if not items:
            return
        self._check_sets()
        self._retrying(
            "remember", self._remember, name, items, time.time() + seconds, limit
        )

    def recall(self, name: str) -> dict[str, float]:
        """Return the unexpired keys of the set *name* with their expiry times.

        Expiry times are wall-clock (``time.time()``); an unknown set is empty.

        Raises:
            TransportError: The transport keeps no sets (``expiring_sets``).
            TransportConnectionError: The broker stayed unreachable.
        """
        check_name("a set name", name)
        self._check_sets()
        return self._retrying("recall", self._recall, name)

    def _check_sets(self) -> None:
        self._check_open()
        if not self.capabilities.expiring_sets:
            raise TransportError(
                f"the {self.name} transport keeps no broker-side sets "
                "(capabilities.expiring_sets is False)"
            )

    def close(self) -> None:
        """Close every consumer (returning unsettled deliveries), then disconnect."""
        if self._closed:
            return
        with self._consumers_lock:
            consumers = list(self._consumers)
        for consumer in consumers:
            try:
                consumer.close(requeue=True)
            except TransportError as exc:
                logger.warning("closing %r failed: %s", consumer, exc)
        self._closed = True
        if self._keeper is not None:
            self._keeper.stop()
        self._close()

    # -- primitives a transport implements ---------------------------------------------

    @abstractmethod
    def _declare_queue(self, spec: QueueSpec) -> None:
        """Create the queue; raise DeclarationMismatchError on other arguments."""

    @abstractmethod
    def _declare_exchange(self, spec: ExchangeSpec) -> None:
        """Create the exchange; raise DeclarationMismatchError on another kind."""

    @abstractmethod
    def _bind(self, binding: Binding) -> None:
        """Create the binding (idempotent)."""

    @abstractmethod
    def _unbind(self, binding: Binding) -> None:
        """Remove the binding (no-op if absent)."""

    @abstractmethod
    def _delete_queue(self, name: str) -> None:
        """Remove the queue, its messages and its bindings."""

    @abstractmethod
    def _publish(self, messages: list[Outgoing], mandatory: bool) -> None:
        """Store *messages* (one round trip where possible).

        Raise UnroutableError when *mandatory* and a message reached no queue.
        """

    @abstractmethod
    def _settle(
        self, consumer: Consumer, deliveries: list[Delivery], outcome: Outcome
    ) -> None:
        """Ack, requeue, release or reject *deliveries* of *consumer* in one round trip.

        ``release`` is a requeue that takes this delivery off the message's
        delivery count where the broker counts them.
        """

    @abstractmethod
    def _purge(self, queue: str) -> int:
        """Remove ready messages; return the count."""

    @abstractmethod
    def _size(self, queue: str) -> int:
        """Count ready messages."""

    @abstractmethod
    def _close(self) -> None:
        """Release connections and threads."""

    def _renew(  # noqa: B027 - only lease-based brokers override it
        self, consumer: Consumer, deliveries: list[Delivery], seconds: float
    ) -> None:
        """Push the leases of *deliveries* to at least *seconds* from now.

        Lease-based brokers override this; keep each delivery's
        ``extended_until`` if it is later.
        """

    def _remember(
        self, name: str, keys: list[str], expires_at: float, limit: int
    ) -> None:
        """Store *keys* in set *name* until *expires_at*; keep at most *limit*.

        Transports with ``expiring_sets`` override this and :meth:`_recall`.
        """
        raise TransportError(f"the {self.name} transport keeps no sets")

    def _recall(self, name: str) -> dict[str, float]:
        """The unexpired keys of set *name* and their expiry times."""
        raise TransportError(f"the {self.name} transport keeps no sets")

    def _housekeeping(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Periodic upkeep run by the lease keeper (e.g. removing expired queues)."""

    def _subscribe(self, sub: Subscription, consumer: Consumer) -> str:
        """Create the private queue of a broadcast subscription; return its name.

        The default declares an auto-delete queue bound to the exchange; a
        transport with native broadcast (Redis pub/sub) overrides this.
        """
        name = f"{sub.exchange}.sub.{uuid.uuid4().hex[:12]}"
        expires = None
        if self.renew_interval is not None:
            expires = max(60.0, 3 * self.renew_interval)
        self._retrying(
            "subscribe",
            self._declare_queue,
            QueueSpec(name, durable=False, auto_delete=True, expires=expires),
        )
        self._retrying(
            "subscribe", self._bind, Binding(name, sub.exchange, sub.routing_key)
        )
        return name

    def _unsubscribe(self, sub: Subscription, name: str) -> None:
        """Remove the private queue of a subscription."""
        try:
            self._retrying("unsubscribe", self._delete_queue, name)
        except TransportError as exc:
            logger.warning(
                "%s transport %s: could not remove subscription queue %r (%s); "
                "it expires on its own",
                self.name,
                self.url,
                name,
                exc,
            )

    # -- machinery ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError(f"{self!r} is closed; connect again")

    def _register(self, consumer: Consumer) -> None:
        with self._consumers_lock:
            self._consumers.add(consumer)
            if self.capabilities.leases and self.renew_interval is not None:
                if self._keeper is None:
                    self._keeper = _LeaseKeeper(self)
                self._keeper.add(consumer)

    def _unregister(self, consumer: Consumer) -> None:
        with self._consumers_lock:
            self._consumers.discard(consumer)
            if self._keeper is not None:
                self._keeper.discard(consumer)

    def _live_consumers(self) -> list[Consumer]:
        with self._consumers_lock:
            return [c for c in self._consumers if not c.closed]

    def _after_fork(self) -> None:
        """Forget threads and consumers inherited from the parent process."""
        self._keeper = None
        self._consumers = weakref.WeakSet()
        self._consumers_lock = threading.Lock()
        self._outage = _Outage(self)

    def _retrying(
        self,
        operation: str,
        func: Callable[..., _T],
        *args: Any,
        policy: RetryPolicy | None = None,
        link: str | None = "commands",
    ) -> _T:
        """Run *func*, retrying :attr:`connection_errors` with bounded backoff.

        *policy* replaces the transport's ``max_retries`` and backoff. *link*
        names the connection *func* uses, for the outage log (``None``: one
        that reports its own losses and recoveries).

        Raises:
            TransportConnectionError: Every attempt lost the connection.
        """
        limit = self.max_retries if policy is None else policy.max_retries
        attempt = 0
        while True:
            try:
                result = func(*args)
            except self._retryable() as exc:
                if self._closed:
                    raise TransportClosedError(f"{self!r} is closed") from exc
                if link is not None:
                    self._outage.lost(link, exc)
                if limit is not None and attempt >= limit:
                    raise TransportConnectionError(
                        f"{self.name} broker at {self.url} is unreachable: {operation} "
                        f"failed {attempt + 1} time(s), last with {self._scrub(exc)}; "
                        "check that the server is running and the URL is right"
                    ) from exc
                if policy is None:
                    pause = min(0.05 * 2**attempt, self.retry_backoff_max or 0.0)
                else:
                    pause = policy.pause(attempt)
                attempt += 1
                # One warning per outage comes from _outage; not one per retry.
                logger.debug(
                    "%s transport %s: %s lost the connection (%s); retry %d/%s "
                    "in %.2f s",
                    self.name,
                    self.url,
                    operation,
                    self._scrub(exc),
                    attempt,
                    "unlimited" if limit is None else limit,
                    pause,
                )
                self._on_connection_error(exc)
                time.sleep(pause)
            else:
                if link is not None:
                    self._outage.back(link)
                return result

    def _retryable(self) -> tuple[type[BaseException], ...]:
        """The exceptions :meth:`_retrying` retries (:attr:`connection_errors`)."""
        return self.connection_errors

    def _on_connection_error(self, exc: BaseException) -> None:  # noqa: B027 - hook
        """Drop broken connections before a retry (optional)."""

    def _scrub(self, exc: BaseException) -> str:
        """One line naming a driver error: masked, without SQL or parameters."""
        cause = getattr(exc, "orig", None) or exc
        lines = str(cause).strip().splitlines() or [""]
        text = mask_text(f"{type(cause).__name__}: {lines[0]}", self._secrets)
        return text if len(text) <= 300 else text[:297] + "..."


def keep_expiring(
    current: dict[str, float], limit: int, now: float | None = None
) -> dict[str, float]:
    """*current* without expired keys, cut to the *limit* expiring last."""
    now = time.time() if now is None else now
    alive = {key: at for key, at in current.items() if at > now}
    if len(alive) > limit:
        alive = dict(sorted(alive.items(), key=lambda item: item[1])[-limit:])
    return alive


def to_float_error(where: str, name: str, value: object) -> Exception:
    """Return the error for a duration option that must be positive."""
    from .errors import InvalidURLError

    return InvalidURLError(f"option {name}={value!r} of {where} must be positive")


def _plain_dict(what: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{what} must be a mapping, got {type(value).__name__} {value!r}"
        )
    for key in value:
        if not isinstance(key, str):
            raise TypeError(
                f"{what} keys must be str, got {type(key).__name__} {key!r}"
            )
    return dict(value)


def _is_int(value: object, minimum: int, maximum: int | None = None) -> bool:
    """Return whether *value* is an int (not a bool) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return value >= minimum and (maximum is None or value <= maximum)
