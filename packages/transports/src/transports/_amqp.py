"""Broker on RabbitMQ (AMQP 0-9-1) through py-amqp.

URL forms:

- ``amqp://user:password@host:5672/vhost``: ``//`` (or no path) is the vhost
  ``/``; other vhosts are percent-encoded (``/%2Fstaging`` is ``/staging``).
- ``amqps://user:password@host:5671/vhost``: TLS; options ``tls_ca_file``,
  ``tls_cert_file``, ``tls_key_file``, ``tls_verify`` (default true) and
  ``tls_server_hostname``, or ``ssl_options`` (a dict for py-amqp's ``ssl``).
- Several URLs separated by ``;`` (``amqp://h1//;amqp://h2//``): tried in
  order; a connection that fails moves on to the next one.

Options (keyword-only, or in the query string of the URL, besides the
common ones of :class:`~transports.Transport`):

- ``heartbeat``: seconds between AMQP heartbeats (default 60; 0 turns them
  off). Every connection's heartbeats are serviced by a native thread, also
  while the consuming thread runs a long task.
- ``connect_timeout``: seconds to wait for a connection (default 5).
- ``confirm_publish``: ``"stream"`` (default): streaming publisher confirms:
  ``publish`` returns once the message is written; it is kept until RabbitMQ
  confirms it and published again on a new connection or channel if the old
  one ended first; :meth:`AMQPTransport.flush` (and ``close``, and the end of
  the interpreter) waits for the confirms. ``true``: ``publish`` returns once
  RabbitMQ stored the message; ``publish_many`` waits once for the whole
  batch. ``false``: nothing waits. A ``mandatory`` publish, and one through an
  exchange this transport did not declare, always waits.
- ``confirm_timeout``: the longest wait for confirms (default 30 s); then the
  connection is replaced and the unconfirmed messages published again.
- ``queue_type``: ``"classic"`` (default) or ``"quorum"``: the type of the
  queues declared without ``quorum=True`` (see below).
- ``connection_name``: prefix of the ``connection_name`` client property
  (default ``"transports"``); each connection adds its role and a unique
  token (``transport.token``), so operators see whose connection it is.

Queue types: ``declare_queue(quorum=True)`` declares a quorum queue
(``x-queue-type: quorum``), which counts deliveries (``x-delivery-count``).
``max_deliveries`` needs that count, so a queue declared with it is a quorum
queue too (``x-delivery-limit`` = ``max_deliveries - 1``: RabbitMQ counts the
returns); classic queues only flag ``redelivered``. Quorum queues (RabbitMQ
3.x) take no ``max_priority``, ``durable=False`` or ``auto_delete``; with
``queue_type="quorum"`` such queues stay classic.

Capabilities: 10 priority levels (``x-max-priority``, ours 0-9 unchanged),
delayed delivery through 28 binary TTL levels (``qm.delay.<n>`` queues with
``x-message-ttl`` 2^n s, dead-lettering into the next lower level and finally
to the target queue; a message enters at the highest level it waits in;
whole seconds, at most 2^28 - 1 s; only to a queue, i.e. the default
exchange), direct/topic/fanout exchanges, dead-lettering
(``x-dead-letter-exchange``), ``max_deliveries`` (quorum queues), publisher
confirms, per-message and per-queue TTL, batch publish, broker-counted
delivery counts with ``queue_type="quorum"``. No leases: an unacked delivery
stays with its consumer until the consumer's connection closes.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import logging
import math
import os
import select
import socket
import ssl as ssl_module
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from . import _native
from ._amqp_wire import DeliverHandler, FrameSplitter, WireError, encode_publish
from ._url import check_seconds, mask_url, to_bool, to_float
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
from .errors import (
    DeclarationMismatchError,
    InvalidURLError,
    MissingDriverError,
    TransportConnectionError,
    TransportError,
    UnroutableError,
)

try:
    import amqp
    from amqp import exceptions as amqp_errors
except ImportError as _import_error:  # pragma: no cover - depends on the extras
    raise MissingDriverError("amqp", "amqp") from _import_error

__all__ = [
    "DELAY_EXCHANGE",
    "DELAY_LEVELS",
    "MAX_DELAY",
    "AMQPConsumer",
    "AMQPTransport",
    "Endpoint",
    "delay_routing_key",
    "parse_url",
    "queue_arguments",
]

logger = logging.getLogger(__name__)

#: Number of binary delay levels: ``qm.delay.0`` (1 s) .. ``qm.delay.27`` (2^27 s).
DELAY_LEVELS = 28
#: The longest delay, in whole seconds (about 8.5 years).
MAX_DELAY: int = 2**DELAY_LEVELS - 1
#: Prefix of the streams that keep expiring sets (``Transport.remember``).
SET_PREFIX = "qm.set."
#: How those streams are declared: retention by age and size, in small
#: segments so that retention can drop old entries early.
SET_STREAM_ARGUMENTS = {
    "x-queue-type": "stream",
    "x-max-age": "1D",
    "x-max-length-bytes": 20_000_000,
    "x-stream-max-segment-size-bytes": 1_000_000,
}
#: Prefix of the delay levels' queues and exchanges.
DELAY_PREFIX = "qm.delay."
#: The topic exchange the last level dead-letters into; target queues bind to it.
DELAY_EXCHANGE = "qm.delay.deliver"
#: Header carrying the expiry (epoch seconds) of a delayed message with a ttl.
EXPIRES_HEADER = "x-qm-expires-at"
#: A streaming publisher holds its caller once RabbitMQ has not confirmed
#: this many messages (or bytes of bodies), until half of them are confirmed.
STREAM_WINDOW = 10_000
STREAM_WINDOW_BYTES = 64 << 20
#: A streaming publisher reads the confirms that arrived every this many messages.
STREAM_READ_EVERY = 256
#: Channel errors in a row (nothing confirmed between) after which a streaming
#: publisher drops its unconfirmed messages instead of publishing them again.
STREAM_RESETS = 3

_BASIC_PROPERTIES = frozenset(
    {
        "content_type",
        "content_encoding",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "user_id",
        "app_id",
    }
)
_OPTIONS = {
    "heartbeat",
    "connect_timeout",
    "confirm_publish",
    "confirm_timeout",
    "queue_type",
    "connection_name",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_verify",
    "tls_server_hostname",
    "delay_prefix",
}


# -- URLs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One broker address of an ``amqp://`` URL."""

    host: str
    port: int
    userid: str
    password: str
    vhost: str
    tls: bool

    @property
    def address(self) -> str:
        """``host:port`` as py-amqp takes it (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __repr__(self) -> str:
        scheme = "amqps" if self.tls else "amqp"
        return (
            f"<Endpoint {scheme}://{self.userid}@{self.address} vhost={self.vhost!r}>"
        )


def parse_url(url: str) -> tuple[list[Endpoint], dict[str, str]]:
    """Split an ``amqp://`` URL (``;``-separated for failover) into endpoints.

    Returns:
        The endpoints in order and the query-string options of all parts.

    Raises:
        InvalidURLError: A part is not an ``amqp://`` or ``amqps://`` URL, or
            has a bad port or an unknown option.
    """
    endpoints: list[Endpoint] = []
    options: dict[str, str] = {}
    for raw in url.split(";"):
        part = raw.strip()
        if not part:
            continue
        parts = urlsplit(part)
        scheme = parts.scheme.lower()
        if scheme not in ("amqp", "amqps"):
            raise InvalidURLError(
                f"invalid AMQP URL {mask_url(part)!r}: expected amqp://user:password@"
                "host:port/vhost or amqps://...; separate failover URLs with ';'"
            )
        tls = scheme == "amqps"
        try:
            port = parts.port or (5671 if tls else 5672)
        except ValueError:
            raise InvalidURLError(
                f"invalid port in AMQP URL {mask_url(part)!r}"
            ) from None
        path = parts.path
        vhost = unquote(path[1:]) if len(path) > 1 else "/"
        endpoints.append(
            Endpoint(
                host=parts.hostname or "localhost",
                port=port,
                userid=unquote(parts.username) if parts.username else "guest",
                password=unquote(parts.password) if parts.password else "guest",
                vhost=vhost or "/",
                tls=tls,
            )
        )
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in _OPTIONS:
                raise InvalidURLError(
                    f"unknown option {key!r} in AMQP URL {mask_url(part)!r}; known: "
                    f"{', '.join(sorted(_OPTIONS))}"
                )
            options.setdefault(key, value)
    if not endpoints:
        raise InvalidURLError(f"AMQP URL {mask_url(url)!r} names no broker")
    return endpoints, options


# -- argument mapping ------------------------------------------------------------------


def is_quorum(spec: QueueSpec, default_quorum: bool = False) -> bool:
    """Return whether *spec* becomes a quorum queue.

    Raises:
        ValueError: A quorum queue is needed (``quorum`` or ``max_deliveries``)
            but an argument only classic queues take was given.
    """
    classic_only = [
        text
        for text, present in (
            (f"max_priority={spec.max_priority}", spec.max_priority is not None),
            ("durable=False", not spec.durable),
            ("auto_delete=True", spec.auto_delete),
        )
        if present
    ]
    needed = spec.quorum or spec.max_deliveries is not None
    if needed and classic_only:
        why = "quorum=True" if spec.quorum else f"max_deliveries={spec.max_deliveries}"
        raise ValueError(
            f"queue {spec.name!r}: {why} needs a RabbitMQ quorum queue (classic "
            f"queues do not count deliveries), which cannot have "
            f"{', '.join(classic_only)}; drop one of them"
        )
    return needed or (default_quorum and not classic_only)


def queue_arguments(spec: QueueSpec, quorum: bool) -> dict[str, Any]:
    """Return the ``x-`` arguments RabbitMQ receives for *spec*."""
    args: dict[str, Any] = {}
    if quorum:
        args["x-queue-type"] = "quorum"
    if spec.max_priority is not None:
        args["x-max-priority"] = spec.max_priority
    if spec.dead_letter is not None:
        args["x-dead-letter-exchange"] = ""
        args["x-dead-letter-routing-key"] = spec.dead_letter
    if spec.max_deliveries is not None:
        args["x-delivery-limit"] = spec.max_deliveries - 1
    if spec.message_ttl is not None:
        args["x-message-ttl"] = max(0, round(spec.message_ttl * 1000))
    if spec.expires is not None:
        args["x-expires"] = max(1, round(spec.expires * 1000))
    return args


def delay_seconds(delay: float) -> int:
    """Return *delay* rounded to the whole seconds the levels can wait (>= 1)."""
    return max(1, min(MAX_DELAY, round(delay)))


def delay_routing_key(delay: float, routing_key: str) -> str:
    """Return the routing key that parks a message *delay* seconds.

    One word per level, highest first (``1`` waits in that level, ``0`` skips
    it), then the target queue: ``0.0. ... .1.1.tasks`` waits 3 s.
    """
    bits = format(delay_seconds(delay), f"0{DELAY_LEVELS}b")
    return ".".join(bits) + "." + routing_key


def delay_levels(delay: float) -> list[int]:
    """Return the levels (``n`` of ``qm.delay.<n>``) a *delay* passes through."""
    whole = delay_seconds(delay)
    return [n for n in range(DELAY_LEVELS) if whole >> n & 1]


def _delay_name(level: int, prefix: str = DELAY_PREFIX) -> str:
    return f"{prefix}{level}"


_PERSISTENT: Mapping[str, Any] = {"delivery_mode": 2}


def _message(
    message: Outgoing, delay_prefix: str = DELAY_PREFIX
) -> tuple[Mapping[str, Any], str, str]:
    """Return the basic properties, exchange and routing key for *message*."""
    if (
        not message.headers
        and not message.properties
        and message.ttl is None
        and message.delay is None
    ):
        return _PERSISTENT, message.exchange, message.routing_key
    props = {k: v for k, v in message.properties.items() if k in _BASIC_PROPERTIES}
    props.setdefault("delivery_mode", 2)
    if message.priority or "priority" in props:
        props["priority"] = message.priority
    props.pop("expiration", None)
    headers = dict(message.headers)
    exchange, routing_key = message.exchange, message.routing_key
    if message.delay is not None:
        if exchange:
            raise ValueError(
                f"the amqp transport delays messages to queues only (the default "
                f"exchange), not through exchange {exchange!r}; publish the delayed "
                "message to the queue itself"
            )
        if message.expires_at is not None:
            # A per-message TTL would end the wait inside a delay level: the
            # consumer drops the message once this time has passed instead.
            headers[EXPIRES_HEADER] = message.expires_at
        # Enter at the highest level the delay waits in: the levels above
        # would only pass it down, one topic match per level, before the
        # publish is confirmed.
        level = delay_seconds(message.delay).bit_length() - 1
        exchange = _delay_name(level, delay_prefix)
        routing_key = delay_routing_key(message.delay, routing_key)
    elif message.ttl is not None:
        props["expiration"] = str(max(0, math.floor(message.ttl * 1000)))
    if headers:
        props["application_headers"] = headers
    return props, exchange, routing_key


def _death_headers(
    headers: dict[str, Any],
    limits: Mapping[str, QueueSpec],
    delay_prefix: str = DELAY_PREFIX,
) -> dict[str, Any]:
    """Add our ``x-death-*`` headers from RabbitMQ's ``x-death``; drop delay hops."""
    deaths = headers.get("x-death")
    if not isinstance(deaths, list):
        return headers
    kept = [
        entry
        for entry in deaths
        if not (
            isinstance(entry, dict)
            and str(entry.get("queue", "")).startswith(delay_prefix)
        )
    ]
    if len(kept) != len(deaths):
        headers = dict(headers)
        if kept:
            headers["x-death"] = kept
        else:
            del headers["x-death"]
        if str(headers.get("x-first-death-queue", "")).startswith(delay_prefix):
            for key in (
                "x-first-death-queue",
                "x-first-death-reason",
                "x-first-death-exchange",
            ):
                headers.pop(key, None)
    if not kept or DEATH_REASON in headers:
        return headers
    latest = kept[0]
    reason = str(latest.get("reason", "rejected"))
    queue = str(latest.get("queue", ""))
    spec = limits.get(queue)
    count: int | None = None
    if reason == "delivery_limit":
        if spec is not None and spec.max_deliveries is not None:
            count = spec.max_deliveries
            reason = f"delivered {count} times without an ack"
        else:
            reason = "delivered more often than its delivery limit without an ack"
    elif reason == "maxlen":
        reason = "queue length limit reached"
    headers = dict(headers)
    headers[DEATH_REASON] = reason
    headers[DEATH_QUEUE] = queue
    if count is not None:
        headers[DEATH_COUNT] = count
    return headers


# -- connections -----------------------------------------------------------------------

#: Streaming transports of this process: their unconfirmed messages are
#: waited for at interpreter exit.
_STREAMING: weakref.WeakSet[AMQPTransport] = weakref.WeakSet()


def _flush_at_exit() -> None:
    for transport in list(_STREAMING):
        transport._flush_before_leaving("at exit")


atexit.register(_flush_at_exit)


#: A message a streaming publisher keeps: what it published and how it was
#: encoded (basic properties, exchange, routing key), to publish it again.
_Kept = tuple[Outgoing, tuple[Mapping[str, Any], str, str]]


class _Ledger:
    """What a streaming publisher (``confirm_publish="stream"``) keeps.

    ``kept`` maps the channel's publish sequence numbers to the messages
    RabbitMQ has not confirmed yet, in publish order; a new channel (after a
    lost connection or a channel error) publishes them again. ``refused``
    counts the messages RabbitMQ nacked since the last :meth:`flush
    <AMQPTransport.flush>`.
    """

    __slots__ = ("kept", "refused", "resets", "size")

    def __init__(self) -> None:
        self.kept: dict[int, _Kept] = {}
        self.refused = 0
        #: Channel errors since RabbitMQ last confirmed anything.
        self.resets = 0
        #: Bytes of the kept messages' bodies.
        self.size = 0

    def keep(
        self,
        first: int,
        messages: list[Outgoing],
        built: list[tuple[Mapping[str, Any], str, str]],
    ) -> None:
        """Keep *messages*, published with sequence numbers from *first* on."""
        kept = self.kept
        size = 0
        for seq, message, encoded in zip(
            range(first, first + len(messages)), messages, built, strict=True
        ):
            kept[seq] = (message, encoded)
            size += len(message.body)
        self.size += size

    def drop(self, first: int, last: int) -> None:
        """Forget the messages with sequence numbers *first* to *last*."""
        pop = self.kept.pop
        size = 0
        for seq in range(first, last + 1):
            item = pop(seq, None)
            if item is not None:
                size += len(item[0].body)
        self.size -= size

    def take(self) -> list[_Kept]:
        """Remove and return every kept message, in publish order."""
        kept = list(self.kept.values())
        self.kept.clear()
        self.size = 0
        return kept

    def restore(self, kept: list[_Kept]) -> None:
        """Keep *kept* again (from :meth:`take`) for the next channel."""
        self.keep(-len(kept), [m for m, _ in kept], [b for _, b in kept])


class _Link:
    """One AMQP connection and its channel (with publisher confirms on).

    With a *ledger* the link keeps every message it publishes until RabbitMQ
    confirms it, and opening a channel publishes the ledger's messages left
    unconfirmed by the previous one.
    """

    def __init__(
        self,
        connection: amqp.Connection,
        *,
        confirms: bool,
        on_deliver: DeliverHandler | None = None,
        ledger: _Ledger | None = None,
    ) -> None:
        self.connection = connection
        self.confirms = confirms
        self.ledger = ledger
        #: ``published`` at which a streaming publish next reads its confirms.
        self.next_read = 0
        self.channel: Any = None
        self.recv: _BufferedRecv | None = None
        self.splitter: FrameSplitter | None = None
        transport = connection.transport
        if not isinstance(transport.sock, ssl_module.SSLSocket):
            self.recv = transport._quick_recv = _BufferedRecv(transport.sock)
            if on_deliver is not None:
                self.splitter = FrameSplitter(on_deliver, connection.on_inbound_frame)
        self.open_channel()

    def open_channel(self) -> None:
        connection = self.connection
        channel = connection.Channel(connection, None, auto_decode=False)
        channel.open()
        self.published = 0
        self.floor = 0
        self.singles: set[int] = set()
        self.nacked = 0
        self.returned: list[tuple[str, str, str]] = []
        if self.confirms:
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self.channel = channel
        ledger = self.ledger
        if ledger is not None and ledger.kept and ledger.resets >= STREAM_RESETS:
            # RabbitMQ closed every channel they were sent on (a permission,
            # an exchange deleted since): sending them again would loop.
            dropped = ledger.take()
            ledger.refused += len(dropped)
            logger.error(
                "amqp: RabbitMQ closed %d channels in a row that carried the same "
                "%d unconfirmed message(s) (to exchanges %s); they are dropped, "
                "not published again",
                ledger.resets,
                len(dropped),
                ", ".join(sorted({repr(m.exchange) for m, _ in dropped})),
            )
        if ledger is not None and ledger.kept:
            # Their fate on the old channel is unknown: publish them again
            # (at least once; a consumer may see a message twice).
            kept = ledger.take()
            logger.info(  # part of the outage its transport warned about
                "amqp: publishing %d message(s) again that RabbitMQ had not "
                "confirmed when the previous channel ended",
                len(kept),
            )
            try:
                self.write([m for m, _ in kept], [b for _, b in kept], False)
            except BaseException:
                ledger.restore(kept)  # still unconfirmed: the next channel tries
                raise

    def reset_channel(self) -> None:
        """Replace the channel after a channel error (RabbitMQ closed it)."""
        old, self.channel = self.channel, None
        with contextlib.suppress(Exception):
            old.close()
        if self.ledger is not None and self.ledger.kept:
            self.ledger.resets += 1
        self.open_channel()

    def _on_ack(self, tag: int, multiple: bool) -> None:
        ledger = self.ledger
        if ledger is not None:
            ledger.resets = 0
        if multiple:
            if ledger is not None:
                ledger.drop(self.floor + 1, tag)
            self.floor = max(self.floor, tag)
            self.singles = {t for t in self.singles if t > tag}
        else:
            if ledger is not None:
                ledger.drop(tag, tag)
            self.singles.add(tag)
        while self.floor + 1 in self.singles:
            self.floor += 1
            self.singles.discard(self.floor)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        count = tag - self.floor if multiple else 1
        self.nacked += count
        if self.ledger is not None:
            self.ledger.refused += count
            logger.error(
                "amqp: RabbitMQ refused %d published message(s) (basic.nack, an "
                "internal error of the broker or a full queue with overflow "
                "reject-publish); they are not published again",
                count,
            )
        self._on_ack(tag, multiple)

    def _on_return(
        self, exc: Exception, exchange: str, routing_key: str, message: Any
    ) -> None:
        self.returned.append((exchange, routing_key, str(getattr(exc, "message", exc))))

    def wait_confirms(self, timeout: float) -> None:
        """Read until RabbitMQ confirmed everything published on this channel."""
        self.read_until(lambda: self.published <= self.floor, timeout)

    def read_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Read frames (confirms) until *done()*; TimeoutError after *timeout* s."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"RabbitMQ did not confirm within {timeout:g} s "
                    f"({self.published - self.floor} of the channel's publishes "
                    "outstanding)"
                )
            self.connection.drain_events(timeout=remaining)

    def write(
        self,
        messages: list[Outgoing],
        built: list[tuple[Mapping[str, Any], str, str]],
        mandatory: bool,
        *,
        keep: bool = True,
    ) -> None:
        """Send the ``basic.publish`` frames of *messages*, about 1 MiB per write.

        Every message is encoded before the first byte is sent: a header AMQP
        cannot carry fails the whole call with nothing published. A streaming
        link keeps the messages in its ledger (unless not *keep*: the caller
        waits for their confirms); if the write fails they are taken out
        again (the caller publishes them again, on a new channel).
        """
        connection = self.connection
        number, frame_max = self.channel.channel_id, connection.frame_max
        frames: list[bytes] = []
        try:
            for message, (props, exchange, key) in zip(messages, built, strict=True):
                encode_publish(
                    frames, number, frame_max, exchange, key, mandatory,
                    message.body, props,
                )  # fmt: skip
        except WireError as exc:
            raise ValueError(
                f"cannot publish to exchange {message.exchange!r} routing key "
                f"{message.routing_key!r}: {exc}; nothing of this call was sent"
            ) from None
        first = self.published + 1
        self.published += len(messages)
        ledger = self.ledger if keep else None
        if ledger is not None:
            ledger.keep(first, messages, built)
        try:
            write = connection.transport.write
            pending: list[bytes] = []
            size = 0
            for frame in frames:
                pending.append(frame)
                size += len(frame)
                if size >= 1 << 20:
                    write(b"".join(pending))
                    pending, size = [], 0
            if pending:
                write(b"".join(pending))
        except BaseException:
            if ledger is not None:
                ledger.drop(first, self.published)
            raise
        connection.bytes_sent += len(messages)  # traffic, for heartbeat_tick

    def drain_ready(self) -> None:
        """Handle the frames already received, without blocking.

        One non-blocking section for the whole burst: ``drain_events(timeout=0)``
        would switch the socket's timeout twice per frame. A consumer's link
        splits what it reads itself (:class:`FrameSplitter`: deliveries decoded
        here, other frames to py-amqp).
        """
        connection = self.connection
        transport = connection.transport
        splitter, recv = self.splitter, self.recv
        if splitter is None or recv is None:
            handle = connection.on_inbound_frame
            read = transport.read_frame
            with contextlib.suppress(socket.timeout), transport.having_timeout(0):
                while True:
                    handle(read())
            return
        pending = recv.buffer
        if transport._read_buffer:  # py-amqp kept a frame's start after a timeout
            pending = bytes(transport._read_buffer) + pending
            transport._read_buffer = type(transport._read_buffer)()
        recv.buffer = b""
        try:
            with transport.having_timeout(0) as sock:
                while True:
                    if pending:
                        splitter.split(pending)
                        pending = pending[splitter.handled :]
                        splitter.handled = 0
                    try:
                        data = sock.recv(max(65536, splitter.needed - len(pending)))
                    except (BlockingIOError, InterruptedError):
                        break
                    if not data:
                        raise amqp_errors.RecoverableConnectionError(
                            "RabbitMQ closed the connection"
                        )
                    pending = pending + data if pending else data
        except WireError as exc:
            raise amqp_errors.UnexpectedFrame(f"malformed frames: {exc}") from None
        finally:
            recv.buffer = pending[splitter.handled :]
            splitter.handled = 0
            recv.stalled = bool(recv.buffer)  # part of a frame: wait for the socket
            connection.bytes_recv += splitter.frames
            splitter.frames = 0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
        with contextlib.suppress(Exception):
            self.connection.collect()


class _BufferedRecv:
    """``recv`` for py-amqp that reads up to 64 KiB at once and serves from that.

    py-amqp asks for each frame's header, payload and end byte separately:
    three ``recv`` calls per frame, nine per message. Errors of the socket
    (timeouts, EAGAIN) reach py-amqp unchanged when the buffer is empty.
    """

    __slots__ = ("buffer", "sock", "stalled")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        #: The buffer holds only the start of a frame (no use reading it yet).
        self.stalled = False

    def __call__(self, size: int) -> bytes:
        self.stalled = False
        buffer = self.buffer
        if not buffer:
            buffer = self.sock.recv(max(size, 65536))
            if len(buffer) <= size:
                return buffer
        self.buffer = buffer[size:]
        return buffer[:size]


def _queue_exists(connection: amqp.Connection, queue: str) -> bool:
    """Return whether *queue* exists, asking on a channel of its own."""
    channel = connection.Channel(connection, None, auto_decode=False)
    channel.open()
    try:
        channel.queue_declare(queue, passive=True)
    except amqp_errors.NotFound:
        return False
    with contextlib.suppress(amqp_errors.ChannelError):
        channel.close()
    return True


def _readable(connection: amqp.Connection, wake: socket.socket, wait: float) -> bool:
    """Wait up to *wait* for frames on *connection* or a byte on *wake*."""
    sock = connection.transport.sock
    if isinstance(sock, ssl_module.SSLSocket) and sock.pending():
        return True
    if connection.transport._read_buffer:
        return True
    recv = connection.transport._quick_recv
    if getattr(recv, "buffer", None) and not recv.stalled:
        return True
    ready, _, _ = select.select([sock, wake], [], [], max(0.0, wait))
    if wake in ready:
        with contextlib.suppress(BlockingIOError):
            wake.recv(4096)
    return sock in ready


# -- consumer --------------------------------------------------------------------------


class AMQPConsumer(Consumer):
    """Consumer of :class:`AMQPTransport`: its own connection, owned by an I/O thread.

    The I/O thread (a native OS thread) reads deliveries into a buffer,
    services heartbeats while the consuming thread runs tasks, and sends the
    acks and rejects handed to it from any thread. After a lost connection it
    reconnects with bounded exponential backoff; deliveries of the old
    connection are forgotten and their late settlements dropped.
    """

    transport: AMQPTransport
    # _receive only reads the inbox; the I/O thread reports its connection.
    _receive_link = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._inbox: deque[Delivery] = deque()
        self._incoming: list[Delivery] = []
        self._inbox_cond = _native.condition()
        self._woken = False
        self._requests: deque[tuple[list[Delivery], Outcome]] = deque()
        self._stopping = False
        self._fatal: TransportError | None = None
        self._link: _Link | None = None
        self._link_generation = 0
        self._consuming: dict[str, str] = {}  # queue: consumer tag
        self._by_tag: dict[str, str] = {}  # consumer tag: queue
        self._missing: dict[str, float] = {}
        self._outstanding: set[int] = set()
        self._resync = True
        self._qos = 0
        # The prefetch applies to the whole channel, so that raising it while
        # the consumer runs takes effect (a per-consumer one is fixed when
        # consuming starts); RabbitMQ's unacked limit then covers every queue.
        self._global_qos = True
        self._synced = _native.event()
        self._poked = False
        self._stopped = _native.event()
        super().__init__(*args, **kwargs)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        _native.start_thread(self._run)

    # -- called from other threads ---------------------------------------------------

    def _receive(
        self, queues: tuple[str, ...], limit: int, timeout: float
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._inbox_cond:
            while True:
                if self._inbox:
                    inbox = self._inbox
                    return [inbox.popleft() for _ in range(min(limit, len(inbox)))]
                if self._fatal is not None:
                    raise self._fatal
                if self._woken:
                    self._woken = False
                    return []
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._inbox_cond.wait(remaining)

    def _wake(self) -> None:
        with self._inbox_cond:
            self._woken = True
            self._inbox_cond.notify_all()

    def _prefetch_changed(self) -> None:
        self._poke()  # the I/O thread sends basic.qos

    def _any_quorum(self) -> bool:
        """Whether a queue consumed is a quorum queue (they refuse a channel-wide
        prefetch, so the prefetch then stays as it was when consuming began)."""
        transport = self.transport
        default = transport.queue_type == "quorum"
        with self._cond:
            names = list(self._queues)
        return any(
            is_quorum(transport._queues.get(name, QueueSpec(name)), default)
            for name in names
        )

    def _queues_changed(self) -> None:
        self._synced.clear()
        self._resync = True
        self._poke()
        if self._link is not None and not self._synced.wait(5.0):
            logger.warning(
                "amqp transport %s: the consumer's I/O thread took over 5 s to "
                "change its queues",
                self.transport.url,
            )

    def _shutdown(self) -> None:
        self._stopping = True
        self._poke()
        if not self._stopped.wait(10.0):
            logger.warning(
                "amqp transport %s: the consumer's I/O thread did not stop in 10 s",
                self.transport.url,
            )
        with contextlib.suppress(OSError):
            self._wake_w.close()

    def _hand_over(self, deliveries: list[Delivery], outcome: Outcome) -> None:
        """Queue settlements for the I/O thread, which alone uses the channel."""
        self._requests.append((deliveries, outcome))
        self._poke()

    def _poke(self) -> None:
        if self._poked:
            return
        self._poked = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # -- the I/O thread --------------------------------------------------------------

    def _run(self) -> None:
        transport = self.transport
        attempt = 0
        try:
            while not self._stopping and not transport.closed:
                if self._link is None:
                    try:
                        self._open()
                    except (
                        *transport.connection_errors,
                        amqp_errors.ChannelError,
                    ) as exc:
                        attempt += 1
                        self._disconnected(exc, attempt)
                        pause = min(0.05 * 2 ** min(attempt, 20), self._backoff_max)
                        self._sleep(pause)
                        continue
                    attempt = 0
                    self._fatal = None
                try:
                    self._service()
                except transport.connection_errors as exc:
                    transport._outage.lost(self._outage_link, exc)
                    self._drop()
                except amqp_errors.ChannelError as exc:
                    logger.warning(
                        "amqp transport %s: consumer channel closed by RabbitMQ "
                        "(%s); reopening",
                        transport.url,
                        transport._scrub(exc),
                    )
                    self._drop()
        except TransportError as exc:  # refused login: retrying cannot help
            logger.error("amqp transport %s: %s", transport.url, exc)
            self._fatal = exc
            with self._inbox_cond:
                self._inbox_cond.notify_all()
        except Exception:
            logger.exception(
                "amqp transport %s: the consumer's I/O thread failed", transport.url
            )
            self._fatal = TransportError(
                f"the consumer's I/O thread of {transport.url} failed; see the log"
            )
            with self._inbox_cond:
                self._inbox_cond.notify_all()
        finally:
            self._finish()

    @property
    def _backoff_max(self) -> float:
        return self.transport.retry_backoff_max or 0.0

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            select.select([self._wake_r], [], [], min(remaining, 0.5))
            self._poked = False
            with contextlib.suppress(BlockingIOError, OSError):
                self._wake_r.recv(4096)

    @property
    def _outage_link(self) -> str:
        return f"consumer {self.token}"

    def _disconnected(self, exc: BaseException, attempt: int) -> None:
        transport = self.transport
        transport._outage.lost(self._outage_link, exc)
        logger.debug(
            "amqp transport %s: consumer cannot connect (%s); attempt %d",
            transport.url,
            transport._scrub(exc),
            attempt,
        )
        if attempt > transport.max_retries and self._fatal is None:
            self._fatal = TransportConnectionError(
                f"amqp broker at {transport.url} is unreachable: the consumer failed "
                f"to connect {attempt} times, last with {transport._scrub(exc)}; "
                "it keeps trying in the background; check that the server is "
                "running and the URL is right"
            )
            with self._inbox_cond:
                self._inbox_cond.notify_all()

    def _open(self) -> None:
        transport = self.transport
        connection = transport._connect("consumer")
        try:
            link = _Link(connection, confirms=False, on_deliver=self._on_deliver)
            self._qos = self.prefetch
            self._global_qos = not self._any_quorum()
            link.channel.basic_qos(0, self._qos, self._global_qos)
        except BaseException:
            with contextlib.suppress(Exception):
                connection.collect()
            raise
        self._link = link
        self._link_generation += 1
        self._consuming = {}
        self._by_tag = {}
        self._outstanding = set()
        self._resync = True
        if self._link_generation > 1:
            logger.debug("amqp transport %s: consumer reconnected", transport.url)
        for sub, name in list(self._subscriptions.items()):
            spec = transport._subscription_spec(name)
            link.channel.queue_declare(
                name,
                durable=False,
                auto_delete=True,
                arguments=queue_arguments(spec, False),
            )
            link.channel.queue_bind(name, sub.exchange, sub.routing_key)
        transport._outage.back(self._outage_link)

    def _drop(self) -> None:
        """Forget the connection and every delivery received through it."""
        link, self._link = self._link, None
        if link is not None:
            link.close()
        with self._inbox_cond:
            self._inbox.clear()
        self._incoming.clear()
        self._requests.clear()
        self._connection_lost()

    def _service(self) -> None:
        link = self._link
        assert link is not None  # noqa: S101 - for mypy; _run opened it
        if self._resync or self._missing:
            self._sync_queues(link)
        if self._qos != self.prefetch and self._global_qos:
            self._qos = self.prefetch
            link.channel.basic_qos(0, self._qos, True)
        if self._requests:
            self._send_settlements(link)
        heartbeat = link.connection.heartbeat or 0
        wait = min(1.0, heartbeat / 4) if heartbeat else 1.0
        if self._missing:
            wait = min(wait, 1.0)
        self._poked = False
        if self._requests:
            wait = 0.0
        if not self._incoming and _readable(link.connection, self._wake_r, wait):
            link.drain_ready()
        if self._incoming:
            # One hand-over per read burst (deliveries also arrive while a
            # method waits for its reply): the consuming thread wakes once and
            # takes a batch, as a raw drain-then-ack loop would.
            with self._inbox_cond:
                self._inbox.extend(self._incoming)
                self._inbox_cond.notify()
            self._incoming.clear()
        link.connection.heartbeat_tick()

    def _sync_queues(self, link: _Link) -> None:
        self._resync = False
        with self._cond:
            wanted = list(self._queues)
        channel = link.channel
        for queue in list(self._consuming):
            if queue not in wanted:
                consumer_tag = self._consuming.pop(queue)
                self._by_tag.pop(consumer_tag, None)
                channel.basic_cancel(consumer_tag)
        for queue in list(self._missing):
            if queue not in wanted:
                del self._missing[queue]
        now = time.monotonic()
        for queue in wanted:
            if queue in self._consuming or self._missing.get(queue, 0.0) > now:
                continue
            # A basic.consume of a missing queue would close the channel and
            # return every unacked delivery: look on a throwaway channel first.
            if not _queue_exists(link.connection, queue):
                if queue not in self._missing:
                    logger.warning(
                        "amqp transport %s: queue %r does not exist; consuming it "
                        "once it is declared",
                        self.transport.url,
                        queue,
                    )
                self._missing[queue] = now + 2.0
                continue
            self._missing.pop(queue, None)
            consumer_tag = channel.basic_consume(
                queue,
                callback=functools.partial(self._on_message, queue),
                on_cancel=functools.partial(self._on_cancel, queue),
            )
            self._consuming[queue] = consumer_tag
            self._by_tag[consumer_tag] = queue
        self._synced.set()

    def _on_cancel(self, queue: str, consumer_tag: str) -> None:
        if self._closed or self._stopping:
            return  # our own close deleted a subscription queue
        logger.warning(
            "amqp transport %s: RabbitMQ cancelled the consumer of queue %r (deleted?)",
            self.transport.url,
            queue,
        )
        self._consuming.pop(queue, None)
        self._by_tag.pop(consumer_tag, None)
        self._missing[queue] = time.monotonic() + 2.0

    def _on_message(self, queue: str, message: Any) -> None:
        """A delivery py-amqp decoded (one read while a method awaited its reply)."""
        info = message.delivery_info
        self._accept(
            queue,
            info["delivery_tag"],
            info["redelivered"],
            info["exchange"],
            info["routing_key"],
            dict(message.properties),
            message.body or b"",  # py-amqp's empty body is the str ""
        )

    def _on_deliver(
        self,
        channel: int,
        consumer_tag: str,
        delivery_tag: int,
        redelivered: bool,
        exchange: str,
        routing_key: str,
        properties: dict[str, Any] | WireError,
        body: bytes,
    ) -> None:
        """A delivery :class:`FrameSplitter` decoded."""
        link = self._link
        assert link is not None  # noqa: S101 - for mypy; only while it reads
        queue = self._by_tag.get(consumer_tag)
        if queue is None or channel != link.channel.channel_id:
            # A consumer cancelled since (py-amqp does the same).
            link.connection.channels[channel].basic_reject(delivery_tag, True)
            return
        if isinstance(properties, WireError):
            logger.error(
                "amqp transport %s: rejected (dead-lettered) a message of queue %r "
                "whose properties cannot be decoded: %s",
                self.transport.url,
                queue,
                properties,
            )
            link.channel.basic_reject(delivery_tag, False)
            return
        self._accept(
            queue, delivery_tag, redelivered, exchange, routing_key, properties, body
        )

    def _accept(
        self,
        queue: str,
        tag: int,
        redelivered: bool,
        exchange: str,
        routing_key: str,
        properties: dict[str, Any],
        body: bytes,
    ) -> None:
        headers = properties.pop("application_headers", None) or {}
        expires_at = headers.get(EXPIRES_HEADER)
        if isinstance(expires_at, (int, float)) and expires_at < time.time():
            logger.info(
                "amqp transport %s: dropped a delayed message of queue %r that "
                "expired while it waited",
                self.transport.url,
                queue,
            )
            assert self._link is not None  # noqa: S101 - for mypy; it reads
            self._link.channel.basic_ack(tag)
            return
        delivery = self.transport._delivery(
            queue,
            (self._link_generation, tag),
            redelivered,
            exchange,
            routing_key,
            properties,
            headers,
            body,
        )
        self._outstanding.add(tag)
        self._incoming.append(delivery)

    def _send_settlements(self, link: _Link) -> None:
        generation = self._link_generation
        acks: list[int] = []
        others: list[tuple[int, bool]] = []
        requests = self._requests
        while requests:
            deliveries, outcome = requests.popleft()
            for delivery in deliveries:
                tag_generation, tag = delivery.tag
                if tag_generation != generation or tag not in self._outstanding:
                    continue
                self._outstanding.discard(tag)
                if outcome == "ack":
                    acks.append(tag)
                else:
                    others.append((tag, outcome in RETURNED))
        channel = link.channel
        if acks:
            acks.sort()
            highest = acks[-1]
            if not any(t < highest for t in self._outstanding):
                channel.basic_ack(highest, multiple=True)
            else:
                for tag in acks:
                    channel.basic_ack(tag)
        for tag, requeue in others:
            channel.basic_reject(tag, requeue)

    def _finish(self) -> None:
        self.transport._outage.forget(self._outage_link)
        link, self._link = self._link, None
        if link is not None:
            with contextlib.suppress(Exception):
                if self._requests:
                    self._send_settlements(link)
            link.close()
        with contextlib.suppress(OSError):
            self._wake_r.close()
        self._stopped.set()
        with self._inbox_cond:
            self._inbox_cond.notify_all()


# -- transport -------------------------------------------------------------------------


class AMQPTransport(Transport):
    """RabbitMQ through py-amqp: one publishing connection, one per consumer.

    Publishing and declarations share one connection and channel under a
    lock (safe from any thread); a native thread services its heartbeats and
    reads late confirms while it is idle. Each consumer owns a connection
    run by its I/O thread.

    Args:
        url: See the module documentation for the forms.
        heartbeat: Seconds between heartbeats (0: off).
        connect_timeout: Seconds to wait for a connection.
        confirm_publish: ``"stream"`` (keep messages until confirmed, see
            :meth:`flush`), ``True`` (every publish waits) or ``False``.
        confirm_timeout: The longest wait for confirms.
        queue_type: ``"classic"`` or ``"quorum"`` for queues declared
            without ``quorum=True``.
        connection_name: Prefix of the ``connection_name`` client property.
        tls_ca_file: CA bundle for ``amqps://``.
        tls_cert_file: Client certificate for ``amqps://``.
        tls_key_file: Its key.
        tls_verify: Verify the server's certificate and host name.
        tls_server_hostname: The name to verify (default: the URL's host).
        ssl_options: A dict passed to py-amqp as ``ssl`` as is (overrides the
            ``tls_*`` options).
        **options: The common options of :class:`~transports.Transport`.

    Raises:
        InvalidURLError: The URL or an option is malformed.
        MissingDriverError: py-amqp is not installed (``transports[amqp]``).
        TransportConnectionError: No broker of the URL answered.
    """

    name: ClassVar[str] = "amqp"
    consumer_class = AMQPConsumer
    connection_errors = (amqp_errors.ConnectionError, OSError)
    driver_modules = ("amqp",)
    # The consumer's I/O thread sends settlements: _settle only hands them
    # over, so the calling thread never touches a py-amqp channel.
    settle_in_io_thread: ClassVar[bool] = False

    def __init__(
        self,
        url: str,
        *,
        heartbeat: float | str = 60.0,
        connect_timeout: float | str = 5.0,
        confirm_publish: bool | str = "stream",
        confirm_timeout: float | str = 30.0,
        queue_type: str = "classic",
        connection_name: str = "transports",
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        tls_verify: bool | str = True,
        tls_server_hostname: str | None = None,
        ssl_options: Mapping[str, Any] | None = None,
        delay_prefix: str = DELAY_PREFIX,
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        self._endpoints, query = parse_url(url)
        # guest's well-known password is not worth masking in every message.
        self._secrets = tuple({e.password for e in self._endpoints} - {"", "guest"})
        where = f"transport {self.url!r}"
        given = {
            "heartbeat": heartbeat,
            "connect_timeout": connect_timeout,
            "confirm_publish": confirm_publish,
            "confirm_timeout": confirm_timeout,
            "queue_type": queue_type,
            "connection_name": connection_name,
            "tls_ca_file": tls_ca_file,
            "tls_cert_file": tls_cert_file,
            "tls_key_file": tls_key_file,
            "tls_verify": tls_verify,
            "tls_server_hostname": tls_server_hostname,
            "delay_prefix": delay_prefix,
        }
        # Keyword options win over the URL's query string.
        defaults = AMQPTransport.__init__.__kwdefaults__ or {}
        merged = {
            key: (query[key] if key in query and value == defaults.get(key) else value)
            for key, value in given.items()
        }
        self.heartbeat = to_float(where, "heartbeat", merged["heartbeat"]) or 0.0
        self.connect_timeout = (
            to_float(where, "connect_timeout", merged["connect_timeout"]) or 5.0
        )
        mode = merged["confirm_publish"]
        stream = isinstance(mode, str) and mode.strip().lower() == "stream"
        #: ``publish`` waits for RabbitMQ's confirm (``confirm_publish=true``).
        self.confirm_publish = (
            False if stream else to_bool(where, "confirm_publish", mode, "or 'stream'")
        )
        #: Unconfirmed messages kept for ``flush`` (``confirm_publish="stream"``).
        self._ledger = _Ledger() if stream else None
        self._pid = os.getpid()
        if stream:
            _STREAMING.add(self)
        self.confirm_timeout = (
            to_float(where, "confirm_timeout", merged["confirm_timeout"]) or 30.0
        )
        kind = str(merged["queue_type"]).lower()
        if kind not in ("classic", "quorum"):
            raise InvalidURLError(
                f"option queue_type={merged['queue_type']!r} of {where} must be "
                "'classic' or 'quorum'"
            )
        self.queue_type = kind
        prefix = str(merged["delay_prefix"])
        if not prefix or len(prefix.encode()) > 200:
            raise InvalidURLError(
                f"option delay_prefix={prefix!r} of {where} must be 1-200 bytes "
                f"(the delay levels are named prefix + 0..27; default {DELAY_PREFIX!r})"
            )
        #: Prefix of this transport's delay levels (``<prefix>0`` .. ``<prefix>27``).
        self.delay_prefix = prefix
        #: The topic exchange the last level dead-letters into.
        self.delay_exchange = f"{prefix}deliver"  # DELAY_EXCHANGE by default
        #: A unique token in every connection's ``connection_name`` property.
        self.token = uuid.uuid4().hex[:16]
        self.connection_name = str(merged["connection_name"])
        self._ssl = self._ssl_options(merged, ssl_options)
        self.capabilities = Capabilities(
            priority_levels=10,
            delayed_delivery=True,
            max_delay=float(MAX_DELAY),
            fanout=True,
            topic=True,
            dead_lettering=True,
            max_deliveries=True,
            leases=False,
            publisher_confirms=self.confirm_publish or stream,
            message_ttl=True,
            batch_publish=True,
            delivery_count=kind == "quorum",
            quorum_queues=True,
            multiprocess=True,
            persistent=True,
            expiring_sets=True,
        )
        self._lock = _native.rlock()
        self._link: _Link | None = None
        self._current = 0
        self._queues: dict[str, QueueSpec] = {}
        self._exchanges: dict[str, ExchangeSpec] = {}
        self._delays_ready = False
        self._heart_running = False
        self._retrying("connect", self._producer)

    def _ssl_options(
        self, merged: dict[str, Any], ssl_options: Mapping[str, Any] | None
    ) -> Any:
        if ssl_options is not None:
            return dict(ssl_options)
        if not any(e.tls for e in self._endpoints):
            return False
        verify = to_bool(f"transport {self.url!r}", "tls_verify", merged["tls_verify"])
        opts: dict[str, Any] = {
            "cert_reqs": ssl_module.CERT_REQUIRED if verify else ssl_module.CERT_NONE
        }
        for key, target in (
            ("tls_ca_file", "ca_certs"),
            ("tls_cert_file", "certfile"),
            ("tls_key_file", "keyfile"),
            ("tls_server_hostname", "server_hostname"),
        ):
            if merged[key]:
                opts[target] = str(merged[key])
        return opts

    # -- connections -----------------------------------------------------------------

    def _connect(self, role: str) -> amqp.Connection:
        """Open a connection to the first endpoint that answers, from the current one.

        Raises:
            OSError or amqp.ConnectionError: No endpoint answered (the last error).
            TransportError: The broker refused the login or the vhost.
        """
        count = len(self._endpoints)
        last: BaseException | None = None
        for step in range(count):
            index = (self._current + step) % count
            endpoint = self._endpoints[index]
            connection = amqp.Connection(
                host=endpoint.address,
                userid=endpoint.userid,
                password=endpoint.password,
                virtual_host=endpoint.vhost,
                heartbeat=self.heartbeat,
                connect_timeout=self.connect_timeout,
                ssl=(self._ssl or True) if endpoint.tls else False,
                client_properties={
                    "connection_name": (
                        f"{self.connection_name} {role} {self.token} pid={os.getpid()}"
                    )
                },
            )
            try:
                connection.connect()
            except (amqp_errors.AccessRefused, amqp_errors.NotAllowed) as exc:
                with contextlib.suppress(Exception):
                    connection.collect()
                # Retrying cannot help: say which setting to fix.
                raise TransportError(
                    f"RabbitMQ at {endpoint.address} refused user "
                    f"{endpoint.userid!r} on virtual host {endpoint.vhost!r} "
                    f"({self._scrub(exc)}); check the user name, password and "
                    "vhost in the broker URL, and the user's permissions "
                    "(rabbitmqctl list_permissions -p VHOST)"
                ) from None
            except self.connection_errors as exc:
                last = exc
                with contextlib.suppress(Exception):
                    connection.collect()
                if count > 1:
                    logger.warning(
                        "amqp transport %s: %r did not answer (%s); trying the next",
                        self.url,
                        endpoint,
                        self._scrub(exc),
                    )
                continue
            if index != self._current:
                logger.info(
                    "amqp transport %s: now connected to %r", self.url, endpoint
                )
            self._current = index
            return connection
        assert last is not None  # noqa: S101 - for mypy; the loop ran at least once
        raise last

    def _producer(self) -> _Link:
        """Return the publishing link, connecting first if needed (hold the lock)."""
        with self._lock:
            link = self._link
            if link is None:
                link = _Link(
                    self._connect("producer"), confirms=True, ledger=self._ledger
                )
                self._link = link
                if self.heartbeat and not self._heart_running:
                    self._heart_running = True
                    _native.start_thread(self._heart)
            return link

    def _heart(self) -> None:
        """Service the publishing connection's heartbeats and late confirms."""
        tick = min(1.0, self.heartbeat / 4)
        try:
            while not self._closed:
                _native.sleep(tick)
                if not self._lock.acquire(blocking=False):
                    continue  # a publish is using the connection: that is traffic
                try:
                    link = self._link
                    if link is None or self._closed:
                        if link is None:
                            self._reconnect_producer()
                        continue
                    self._recovering(link, self._tick, link)
                finally:
                    self._lock.release()
        finally:
            self._heart_running = False

    def _reconnect_producer(self) -> None:
        """Reconnect now, not when next used (the heart thread, holding the lock).

        An idle worker is then ready to publish, and its outage ends (and
        says so) without waiting for traffic.
        """
        if self._closed:
            return
        try:
            self._producer()
        except self.connection_errors as exc:
            self._outage.lost("commands", exc)
        else:
            self._outage.back("commands")

    def _drop_producer(self) -> None:
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            link.close()

    def _on_connection_error(self, exc: BaseException) -> None:
        self._drop_producer()

    @contextlib.contextmanager
    def _channel(self, *, settled: bool = False) -> Iterator[Any]:
        """Hold the lock and yield the publishing channel; recover channel errors.

        *settled*: first wait until RabbitMQ confirmed the messages streamed
        so far, so that what follows sees them in their queues (a queue's
        size, a purge).
        """
        with self._lock:
            link = self._producer()
            if settled and self._ledger is not None and self._ledger.kept:
                link.wait_confirms(self.confirm_timeout)
            try:
                yield link.channel
            except amqp_errors.ChannelError:
                link.reset_channel()
                raise

    def close(self) -> None:
        """Wait for the confirms of the messages published so far (see
        :meth:`flush`), then close as :meth:`Transport.close
        <transports.Transport.close>` does."""
        self._flush_before_leaving("closing")
        super().close()

    def _flush_before_leaving(self, when: str) -> None:
        """Flush what is unconfirmed (closing, or at exit); log what cannot be.

        A forked child never touches its parent's connection.
        """
        if self.closed or not self.unconfirmed or self._pid != os.getpid():
            return
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - reported; the caller leaves anyway
            logger.error(
                "amqp transport %s: %s, %d published message(s) stayed unconfirmed "
                "by RabbitMQ (%s); they may be lost",
                self.url,
                when,
                self.unconfirmed,
                self._scrub(exc),
            )

    def _close(self) -> None:
        self._drop_producer()

    # -- declarations ----------------------------------------------------------------

    def _declare_queue(self, spec: QueueSpec) -> None:
        quorum = is_quorum(spec, self.queue_type == "quorum")
        arguments = queue_arguments(spec, quorum)
        if spec.dead_letter is not None:
            self._ensure_queue(spec.dead_letter)
        try:
            with self._channel() as channel:
                channel.queue_declare(
                    spec.name,
                    durable=spec.durable,
                    auto_delete=spec.auto_delete,
                    arguments=arguments,
                )
        except amqp_errors.PreconditionFailed as exc:
            known = self._queues.get(spec.name)
            existing: dict[str, object] = (
                known.arguments()
                if known is not None and known != spec
                else {"reported by RabbitMQ": str(exc.reply_text)}
            )
            raise DeclarationMismatchError(
                spec.name, existing, spec.arguments()
            ) from None
        self._queues[spec.name] = spec

    def _ensure_queue(self, name: str) -> None:
        """Declare *name* as a plain durable queue unless it exists."""
        if name in self._queues:
            return
        try:
            with self._channel() as channel:
                channel.queue_declare(name, passive=True)
        except amqp_errors.NotFound:
            with self._channel() as channel:
                channel.queue_declare(name, durable=True, auto_delete=False)

    def _subscription_spec(self, name: str) -> QueueSpec:
        spec = self._queues.get(name)
        if spec is not None:
            return spec
        expires = None
        if self.renew_interval is not None:
            expires = max(60.0, 3 * self.renew_interval)
        return QueueSpec(name, durable=False, auto_delete=True, expires=expires)

    def _declare_exchange(self, spec: ExchangeSpec) -> None:
        try:
            with self._channel() as channel:
                channel.exchange_declare(
                    spec.name, spec.kind, durable=spec.durable, auto_delete=False
                )
        except amqp_errors.PreconditionFailed as exc:
            known = self._exchanges.get(spec.name)
            existing: dict[str, object] = (
                known.arguments()
                if known is not None and known != spec
                else {"reported by RabbitMQ": str(exc.reply_text)}
            )
            raise DeclarationMismatchError(
                spec.name, existing, spec.arguments()
            ) from None
        self._exchanges[spec.name] = spec

    def _bind(self, binding: Binding) -> None:
        try:
            with self._channel() as channel:
                channel.queue_bind(binding.queue, binding.exchange, binding.routing_key)
        except amqp_errors.NotFound as exc:
            raise TransportError(
                f"cannot bind queue {binding.queue!r} to exchange "
                f"{binding.exchange!r}: {exc.reply_text}; declare both first"
            ) from None

    def _unbind(self, binding: Binding) -> None:
        with contextlib.suppress(amqp_errors.NotFound), self._channel() as channel:
            channel.queue_unbind(binding.queue, binding.exchange, binding.routing_key)

    def _delete_queue(self, name: str) -> None:
        with self._channel() as channel:
            channel.queue_delete(name)
        self._queues.pop(name, None)

    def _purge(self, queue: str) -> int:
        try:
            with self._channel(settled=True) as channel:
                return int(channel.queue_purge(queue) or 0)
        except amqp_errors.NotFound:
            return 0

    def _size(self, queue: str) -> int:
        try:
            with self._channel(settled=True) as channel:
                _, count, _ = channel.queue_declare(queue, passive=True)
                return int(count)
        except amqp_errors.NotFound:
            return 0

    # -- expiring sets ---------------------------------------------------------------

    @contextlib.contextmanager
    def _set_channel(self, name: str) -> Iterator[Any]:
        """A channel of a short-lived connection, on which the stream of set
        *name* exists (sets are rare, so they keep off the publishing link)."""
        connection = self._connect("sets")
        try:
            channel = connection.Channel(connection, None, auto_decode=False)
            channel.open()
            channel.queue_declare(
                SET_PREFIX + name, durable=True, auto_delete=False,
                arguments=SET_STREAM_ARGUMENTS,
            )  # fmt: skip
            channel.confirm_select()
            yield channel
        finally:
            with contextlib.suppress(Exception):
                connection.close()
            with contextlib.suppress(Exception):
                connection.collect()

    def _remember(
        self, name: str, keys: list[str], expires_at: float, limit: int
    ) -> None:
        # A stream keeps what was appended for every reader; its retention
        # (age and size) bounds it, and readers drop the expired entries.
        body = json.dumps({"keys": keys, "expires_at": expires_at, "limit": limit})
        with self._set_channel(name) as channel:
            channel.basic_publish_confirm(
                amqp.Message(body.encode(), content_type="application/json"),
                exchange="", routing_key=SET_PREFIX + name,
            )  # fmt: skip

    def _recall(self, name: str) -> dict[str, float]:
        # Append a marker, then read the stream from its start up to it.
        marker = uuid.uuid4().hex
        found: dict[str, float] = {}
        limit = 2**31
        seen = False

        def on_message(message: Any) -> None:
            nonlocal seen, limit
            message.channel.basic_ack(message.delivery_tag)
            try:
                entry = json.loads(message.body)
            except ValueError:
                return
            if not isinstance(entry, dict):
                return
            if entry.get("marker") == marker:
                seen = True
                return
            at, keys = entry.get("expires_at"), entry.get("keys")
            if isinstance(at, int | float) and isinstance(keys, list):
                found.update(dict.fromkeys(map(str, keys), float(at)))
                if isinstance(entry.get("limit"), int):
                    limit = entry["limit"]

        with self._set_channel(name) as channel:
            channel.basic_publish(
                amqp.Message(json.dumps({"marker": marker}).encode()),
                exchange="", routing_key=SET_PREFIX + name,
            )  # fmt: skip
            channel.basic_qos(0, 1000, False)
            channel.basic_consume(
                SET_PREFIX + name, callback=on_message,
                arguments={"x-stream-offset": "first"},
            )  # fmt: skip
            deadline = time.monotonic() + self.connect_timeout * 2
            while not seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TransportError(
                        f"amqp transport {self.url}: reading the set {name!r} did "
                        f"not reach its end within {self.connect_timeout * 2:g} s"
                    )
                with contextlib.suppress(socket.timeout):
                    channel.connection.drain_events(timeout=remaining)
        return keep_expiring(found, limit)

    # -- delayed delivery ------------------------------------------------------------

    def _declare_delay_levels(self, channel: Any) -> None:
        """Declare the TTL levels (idempotent); done once per transport.

        Every declaration is sent ``nowait``: a ``queue.declare-ok`` carries the
        queue's message count, which RabbitMQ asks the queue itself for, and a
        level busy dead-lettering a burst of expired messages answers only
        when done (a first delayed publish was seen to wait 12 s). The closing
        declaration waits, so an error of any of them surfaces here.
        """
        exchange_kind = {"durable": True, "auto_delete": False}
        # The last level's target first: level 0 binds to it.
        channel.exchange_declare(
            self.delay_exchange, "topic", nowait=True, **exchange_kind
        )
        for level in range(DELAY_LEVELS):
            name = _delay_name(level, self.delay_prefix)
            below = (
                _delay_name(level - 1, self.delay_prefix)
                if level
                else self.delay_exchange
            )
            channel.exchange_declare(name, "topic", nowait=True, **exchange_kind)
            channel.queue_declare(
                name,
                durable=True,
                auto_delete=False,
                nowait=True,
                arguments={
                    "x-message-ttl": 1000 * 2**level,
                    "x-dead-letter-exchange": below,
                },
            )
            prefix = "*." * (DELAY_LEVELS - 1 - level)
            channel.queue_bind(name, name, prefix + "1.#", nowait=True)
            channel.exchange_bind(below, name, prefix + "0.#", nowait=True)
        # Waits: RabbitMQ answers in order, so every declaration above is done.
        channel.exchange_declare(self.delay_exchange, "topic", **exchange_kind)
        self._delays_ready = True

    def _prepare_delays(self, messages: list[Outgoing], mandatory: bool) -> None:
        targets = {m.routing_key for m in messages if m.delay is not None}
        if not targets:
            return
        try:
            with self._channel() as channel:
                if not self._delays_ready:
                    self._declare_delay_levels(channel)
        except amqp_errors.PreconditionFailed as exc:
            raise TransportError(
                f"RabbitMQ refused the delay levels {self.delay_prefix}0.."
                f"{DELAY_LEVELS - 1}: {exc.reply_text}; they exist with other "
                "arguments: delete them or choose another delay_prefix"
            ) from None
        for queue in sorted(targets):
            try:
                with self._channel() as channel:
                    channel.queue_bind(
                        queue, self.delay_exchange, "*." * DELAY_LEVELS + queue
                    )
            except amqp_errors.NotFound:
                if mandatory:
                    raise UnroutableError(
                        f"a delayed message for queue {queue!r} reached no queue: "
                        "it does not exist; declare it first"
                    ) from None
                logger.warning(
                    "amqp transport %s: dropped delayed messages for queue %r, "
                    "which does not exist",
                    self.url,
                    queue,
                )

    def delete_delay_levels(self) -> int:
        """Delete this transport's delay levels and every message waiting in them.

        The levels are shared by every queue (and every application) using
        the same ``delay_prefix`` on the virtual host: call this only when
        nothing else still waits in them, e.g. when retiring a prefix or at
        the end of a test that used its own. Returns the number of messages
        dropped; levels already gone count zero.
        """
        dropped = 0
        with self._channel() as channel:
            for level in range(DELAY_LEVELS):
                name = _delay_name(level, self.delay_prefix)
                dropped += channel.queue_delete(name) or 0
                channel.exchange_delete(name)
            channel.exchange_delete(self.delay_exchange)
            self._delays_ready = False
        return dropped

    # -- publishing ------------------------------------------------------------------

    def _publish(self, messages: list[Outgoing], mandatory: bool) -> None:
        built = [_message(m, self.delay_prefix) for m in messages]
        if any(m.delay is not None for m in messages):
            self._prepare_delays(messages, mandatory)
        ledger = self._ledger
        # Streamed: to the default exchange or one this transport declared
        # (a missing exchange would close the channel after the call).
        stream = (
            ledger is not None
            and not mandatory
            and all(m.exchange == "" or m.exchange in self._exchanges for m in messages)
        )
        waits = self.confirm_publish or mandatory or (ledger is not None and not stream)
        try:
            with self._channel():
                link = self._link
                assert link is not None  # noqa: S101 - for mypy; _channel connected
                link.returned.clear()
                nacked = link.nacked
                link.write(messages, built, mandatory, keep=stream)
                if waits:
                    link.wait_confirms(self.confirm_timeout)
                elif stream:
                    self._read_confirms(link)
                returned = list(link.returned)
                refused = link.nacked - nacked
                if ledger is not None:
                    ledger.refused -= min(refused, ledger.refused)  # reported here
        except amqp_errors.NotFound as exc:
            raise TransportError(
                f"RabbitMQ refused a publish: {exc.reply_text}; declare the exchange "
                "first"
            ) from None
        if refused:
            raise TransportError(
                f"RabbitMQ refused {refused} of {len(built)} messages (basic.nack, an "
                "internal error of the broker); publish them again"
            )
        if mandatory and returned:
            exchange, routing_key, text = returned[0]
            raise UnroutableError(
                f"{len(returned)} message(s) reached no queue: exchange {exchange!r} "
                f"routing key {routing_key!r} ({text}); declare and bind a queue, "
                "or publish without mandatory=True to drop such messages"
            )

    def _read_confirms(self, link: _Link) -> None:
        """After a streamed write (holding the lock): take the confirms that
        arrived, now and then; wait while the window is full.

        The messages are written and kept, so a connection or channel error
        found here is not this call's failure: the link is replaced (or its
        channel) and publishes them again.
        """
        ledger = link.ledger
        assert ledger is not None  # noqa: S101 - for mypy; a streaming link
        if len(ledger.kept) > STREAM_WINDOW or ledger.size > STREAM_WINDOW_BYTES:
            self._recovering(link, self._wait_for_window, link, ledger)
        elif link.published >= link.next_read:
            self._recovering(link, link.drain_ready)
            link.next_read = link.published + STREAM_READ_EVERY

    @staticmethod
    def _tick(link: _Link) -> None:
        link.drain_ready()
        link.connection.heartbeat_tick()

    def _recovering(self, link: _Link, read: Callable[..., None], *args: Any) -> None:
        """Run *read* on the publishing link (holding the lock); recover what
        it finds broken instead of raising: a lost connection drops the link
        (the next use reconnects), a closed channel is replaced. Either way
        the unconfirmed messages are published again on the new one."""
        try:
            read(*args)
        except self.connection_errors as exc:
            self._outage.lost("commands", exc)
            self._drop_producer()
        except amqp_errors.ChannelError as exc:
            logger.warning(
                "amqp transport %s: RabbitMQ closed the publishing channel (%s); "
                "opening a new one",
                self.url,
                self._scrub(exc),
            )
            try:
                link.reset_channel()
            except self.connection_errors as lost:
                self._outage.lost("commands", lost)
                self._drop_producer()

    def _wait_for_window(self, link: _Link, ledger: _Ledger) -> None:
        """Hold a streaming publisher until RabbitMQ confirmed its backlog down
        to half the window (hold the lock)."""
        link.read_until(
            lambda: (
                len(ledger.kept) <= STREAM_WINDOW // 2
                and ledger.size <= STREAM_WINDOW_BYTES // 2
            ),
            self.confirm_timeout,
        )

    def flush(self, timeout: float | None = None) -> None:
        """Wait until RabbitMQ confirmed every message published so far.

        With ``confirm_publish="stream"`` (the default) :meth:`publish`
        returns once the message is written to the connection; this waits
        for the confirms of all of them (after a lost connection, for those
        published again on the new one). With ``confirm_publish=true`` every
        publish waited already and this returns at once.

        Args:
            timeout: The longest wait for the confirms (default
                ``confirm_timeout``); then the connection is replaced and
                the unconfirmed messages published again, up to the
                transport's ``max_retries``.

        Raises:
            TransportError: RabbitMQ refused (nacked) messages since the
                previous flush; they are not published again.
            TransportConnectionError: RabbitMQ stayed unreachable: the
                unconfirmed messages are still kept for the next attempt.
        """
        ledger = self._ledger
        if ledger is None or not (ledger.kept or ledger.refused):
            super().flush(timeout)
            return
        wait = check_seconds("flush timeout", timeout)
        self._check_open()
        self._retrying(
            "flush", self._flush, self.confirm_timeout if wait is None else wait
        )

    def _flush(self, timeout: float) -> None:
        ledger = self._ledger
        assert ledger is not None  # noqa: S101 - for mypy; flush checked
        with self._lock:
            if ledger.kept:
                link = self._producer()  # a new link publishes them again first
                link.wait_confirms(timeout)
            refused, ledger.refused = ledger.refused, 0
        if refused:
            raise TransportError(
                f"RabbitMQ refused {refused} published message(s) (basic.nack: an "
                "internal error of the broker, or a full queue with overflow "
                "reject-publish); they were not stored: publish them again"
            )

    @property
    def unconfirmed(self) -> int:
        """Messages published that RabbitMQ has not confirmed yet (streaming)."""
        return len(self._ledger.kept) if self._ledger is not None else 0

    # -- consuming -------------------------------------------------------------------

    def _delivery(
        self,
        queue: str,
        tag: tuple[int, int],
        redelivered: bool,
        exchange: str,
        routing_key: str,
        properties: dict[str, Any],
        headers: dict[str, Any],
        body: bytes,
    ) -> Delivery:
        """A :class:`Delivery` of a received message (*properties* without its
        ``application_headers``, which are *headers*)."""
        count = headers.get("x-delivery-count")
        if isinstance(count, int) and not isinstance(count, bool):
            delivery_count = count + 1
            redelivered = redelivered or count > 0
        else:
            delivery_count = 2 if redelivered else 1
        if "x-death" in headers:
            headers = _death_headers(headers, self._queues, self.delay_prefix)
        if exchange == self.delay_exchange:
            exchange, routing_key = "", routing_key.split(".", DELAY_LEVELS)[-1]
        return Delivery(
            body=body,
            headers=headers,
            properties=properties,
            queue=queue,
            exchange=exchange,
            routing_key=routing_key,
            delivery_count=delivery_count,
            tag=tag,
            redelivered=redelivered,
        )

    def _settle(
        self, consumer: Consumer, deliveries: list[Delivery], outcome: Outcome
    ) -> None:
        assert isinstance(consumer, AMQPConsumer)  # noqa: S101 - for mypy
        consumer._hand_over(deliveries, outcome)
