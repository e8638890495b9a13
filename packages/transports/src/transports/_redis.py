"""Broker on Redis in kombu's key layout: Celery producers and consumers share it.

URL forms:

- ``redis://[[user]:password@]host[:port][/db]`` and ``rediss://...`` (TLS;
  redis-py's ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``,
  ``ssl_keyfile``, ``ssl_check_hostname`` go in the query);
- ``redis+socket:///path/to/redis.sock?db=0`` (a Unix socket);
- ``sentinel://[:password@]host:26379[,host:26379...][/db]?master_name=NAME``
  (kombu's ``sentinel://h1:26379;sentinel://h2:26379`` also works). The
  password is the master's; ``sentinel_password``, ``sentinel_username`` and
  ``sentinel_ssl...`` query options are the sentinels' own, and ``ssl=true``
  plus ``ssl_...`` options make the master connections use TLS.

Redis Cluster is not supported (the scripts touch keys they compute).

Options (keyword-only, besides the common ones of
:class:`~transports.Transport`; ``global_keyprefix`` and ``master_name`` may
also be query options): ``global_keyprefix`` (kombu's: prepended to every
key and channel as is), ``master_name``, ``sentinel_kwargs``,
``socket_timeout`` (10 s), ``socket_connect_timeout`` (5 s), ``client_name``,
``max_connections``, ``poll_interval`` (1 s: the longest a waiting consumer
goes without claiming, which bounds the latency of messages that kombu
producers push without a wake-up), ``heartbeat_interval`` (1 s) and
``heartbeat_ttl`` (5 s), ``unowned_timeout`` (the lease: when unacked
entries of kombu consumers are restored), ``priority_steps`` ((0, 3, 6, 9)),
``sep`` (``"\\x06\\x16"``), ``fanout_prefix`` (true: ``/<db>.``; false: none;
or a string), ``fanout_patterns`` (true), ``min_replicas`` (0: a publish
waits until that many replicas have it, ``WAIT``), ``replica_timeout``
(1 s) and ``quarantine_queue`` (``"transports.malformed"``).

Layout (PROTOCOL.md section 2): a queue is up to four lists (``Q`` and
``Q\\x06\\x16<step>``) of kombu's JSON envelopes (body in base64); unacked
deliveries are in kombu's ``unacked`` hash (values ``[envelope, exchange,
routing_key]``) and ``unacked_index`` sorted set; bindings in
``_kombu.binding.<exchange>`` sets; fanout over PUB/SUB on ``/<db>.<exchange>``
channels. Our own bookkeeping lives in ``_qm.*`` keys kombu never reads (see
:mod:`transports._redis_lua`).

Capabilities: 4 priority levels (kombu's steps; higher numbers served
first), delayed delivery (a sorted set moved by every waiting consumer),
direct/topic/fanout exchanges, dead-lettering, ``max_deliveries``, leases
(renewed by re-scoring ``unacked_index``; a dead consumer's deliveries come
back once its heartbeat expires), per-message and per-queue TTL checked
when claimed, batch publish in one pipeline, exact delivery counts.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import msgwire

from . import _native, _redis_lua, _routing
from ._url import to_bool, to_float, to_int
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
    Subscription,
    Transport,
)
from .errors import (
    DeclarationMismatchError,
    InvalidURLError,
    MissingDriverError,
    UnroutableError,
)

try:
    import redis
    import redis.sentinel
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry
except ImportError as _import_error:  # pragma: no cover - depends on the extras
    raise MissingDriverError("redis", "redis") from _import_error

__all__ = [
    "EXPIRES_PROPERTY",
    "RedisConsumer",
    "RedisTransport",
    "decode_envelope",
    "encode_envelope",
    "parse_url",
    "step_of",
]

logger = logging.getLogger(__name__)

#: Seconds between two Redis clock ticks at the default ``hz 10``: a blocking
#: command's timeout ends on a tick, up to this much late.
_SERVER_TICK = 0.1

#: The envelope property holding a message's expiry (wall-clock seconds).
EXPIRES_PROPERTY = "x-qm-expires-at"
_JSON = msgwire.JsonCodec()
_OUR_QUERY = frozenset({"global_keyprefix", "master_name"})
_SSL_BOOLS = frozenset({"ssl", "ssl_check_hostname"})
_CHUNK = 500
_redis_parse_url: Callable[[str], dict[str, Any]] = redis.connection.parse_url
_SPEC_TTL = 5.0
_SEP = "\x06\x16"


class _Handle(NamedTuple):
    """What settling a delivery needs: kombu's tag, the envelope, its list."""

    tag: str
    raw: bytes
    list_key: bytes


class _Broadcast(NamedTuple):
    """A subscription served over PUB/SUB: its pseudo-queue and how it matches."""

    name: str
    exchange: str
    kind: str
    routing_key: str
    patterns: tuple[str, ...]


def step_of(priority: int, steps: Sequence[int]) -> int:
    """Return kombu's priority step for *priority*: the largest step <= it."""
    chosen = steps[0]
    for step in steps:
        if step <= priority:
            chosen = step
    return chosen


def _dumps(document: Any) -> bytes:
    try:
        return json.dumps(document).encode()
    except (TypeError, ValueError):
        return _JSON.dumps(document)


_decode = json.JSONDecoder().decode


def _loads(data: bytes) -> Any:
    if b"__type__" in data:
        return _JSON.loads(data)
    return _decode(data.decode("utf-8"))


# What json.dumps writes for a message without headers and properties.
_PLAIN = (
    b'{"body": "%s", "content-encoding": null, "content-type": null, "headers": {}, '
    b'"properties": {"delivery_tag": "%s", "delivery_info": {"exchange": %s, '
    b'"routing_key": %s}, "priority": %d, "body_encoding": "base64"}}'
)


@functools.lru_cache(maxsize=4096)
def _json_text(text: str) -> bytes:
    return json.dumps(text).encode()


def encode_envelope(
    message: Outgoing, tag: str, expires_at: float | None = None
) -> bytes:
    """Return kombu's JSON envelope for *message* with delivery tag *tag*.

    ``content_type`` and ``content_encoding`` become the envelope's
    ``content-type`` and ``content-encoding``; the body is base64; the
    priority is the 0-9 number as given (kombu picks the list by it).
    """
    if not message.properties and not message.headers and expires_at is None:
        return _PLAIN % (
            binascii.b2a_base64(message.body, newline=False),
            tag.encode(),
            _json_text(message.exchange),
            _json_text(message.routing_key),
            message.priority,
        )
    properties = dict(message.properties)
    content_type = properties.pop("content_type", None)
    content_encoding = properties.pop("content_encoding", None)
    properties["delivery_tag"] = tag
    properties["delivery_info"] = {
        "exchange": message.exchange,
        "routing_key": message.routing_key,
    }
    properties["priority"] = message.priority
    properties["body_encoding"] = "base64"
    if expires_at is not None:
        properties[EXPIRES_PROPERTY] = expires_at
    return _dumps(
        {
            "body": binascii.b2a_base64(message.body, newline=False).decode("ascii"),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": message.headers,
            "properties": properties,
        }
    )


class _Envelope(NamedTuple):
    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]
    exchange: str | None
    routing_key: str | None
    redelivered: bool
    expires_at: float | None
    priority: int
    tag: str


def decode_envelope(raw: bytes) -> _Envelope:
    """Read kombu's envelope *raw* (ours or a kombu producer's).

    Raises:
        ValueError: It is not such an envelope (the message is malformed).
    """
    try:
        document = _loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if type(document) is not dict:
        raise ValueError("the envelope is not a JSON object")
    stored = document.get("properties")
    if type(stored) is not dict:
        raise ValueError("the envelope has no 'properties' object")
    headers = document.get("headers") or {}
    if type(headers) is not dict:
        raise ValueError("the envelope's 'headers' is not an object")
    body_text = document.get("body")
    if type(body_text) is str:
        if stored.get("body_encoding") == "base64":
            try:
                body = binascii.a2b_base64(body_text)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"the body is not base64: {exc}") from None
        else:
            body = body_text.encode("utf-8", "surrogateescape")
    elif body_text is None:
        body = b""
    else:
        raise ValueError("the envelope's 'body' is not a string")
    properties = stored.copy()
    info = properties.pop("delivery_info", None)
    tag = properties.pop("delivery_tag", "")
    properties.pop("body_encoding", None)
    expires = properties.pop(EXPIRES_PROPERTY, None)
    content_type = document.get("content-type")
    if content_type is not None:
        properties["content_type"] = content_type
    content_encoding = document.get("content-encoding")
    if content_encoding is not None:
        properties["content_encoding"] = content_encoding
    if type(info) is not dict:
        info = {}
    exchange = info.get("exchange")
    routing_key = info.get("routing_key")
    priority = stored.get("priority")
    level = min(max(priority, 0), 9) if type(priority) is int else 0
    return _Envelope(
        body,
        headers,
        properties,
        exchange if type(exchange) is str else None,
        routing_key if type(routing_key) is str else None,
        bool(info.get("redelivered") or headers.get("redelivered")),
        float(expires) if type(expires) in (int, float) else None,
        level,
        tag if type(tag) is str else str(tag),
    )


def _split_query(url: str) -> tuple[str, dict[str, str], list[tuple[str, str]]]:
    """Return *url* without its query, our query options and the others."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OUR_QUERY:
            ours[key] = value
        else:
            theirs.append((key, value))
    return urlunsplit(parts._replace(query="")), ours, theirs


def _typed_query(pairs: list[tuple[str, str]], where: str) -> dict[str, Any]:
    """Convert query options the way redis-py does for its own URLs."""
    if not pairs:
        return {}
    try:
        parsed: dict[str, Any] = _redis_parse_url(
            "redis://localhost/?" + urlencode(pairs)
        )
    except ValueError as exc:
        raise InvalidURLError(f"invalid query option in {where}: {exc}") from None
    for key in ("host", "port"):
        parsed.pop(key, None)
    for key in _SSL_BOOLS:
        if key in parsed and isinstance(parsed[key], str):
            parsed[key] = to_bool(where, key, parsed[key])
    return parsed


def _sentinel_hosts(
    url: str,
) -> tuple[list[tuple[str, int]], str | None, str | None, int]:
    """Parse ``sentinel://[:pw@]h1:p1,h2:p2/db`` or kombu's ``;`` form."""
    hosts: list[tuple[str, int]] = []
    password = username = None
    db = 0
    for part in url.replace(";", ",").split(","):
        text = part.strip()
        if not text:
            continue
        if "://" not in text:
            text = "sentinel://" + text
        parts = urlsplit(text)
        try:
            port = parts.port or 26379
        except ValueError:
            raise InvalidURLError(
                f"invalid sentinel port in {parts.hostname or part!r}"
            ) from None
        hosts.append((parts.hostname or "127.0.0.1", port))
        if parts.password:
            password = unquote(parts.password)
        if parts.username:
            username = unquote(parts.username)
        path = parts.path.strip("/")
        if path:
            if not path.isdigit():
                raise InvalidURLError(
                    f"sentinel database {path!r} is not a number, e.g. /0"
                )
            db = int(path)
    return hosts, username, password, db


class ParsedURL(NamedTuple):
    """What :func:`parse_url` found in a transport URL."""

    scheme: str
    #: redis-py URL (``redis://``, ``rediss://``, ``unix://``) or ``""`` for sentinel.
    client_url: str
    #: Extra redis-py connection options (from the query).
    options: dict[str, Any]
    sentinels: list[tuple[str, int]]
    sentinel_options: dict[str, Any]
    username: str | None
    password: str | None
    db: int
    ours: dict[str, str]


def parse_url(url: str) -> ParsedURL:
    """Split a transport URL into what redis-py needs; connects to nothing.

    Raises:
        InvalidURLError: The URL is malformed.
    """
    bare, ours, theirs = _split_query(url)
    scheme = url.partition("://")[0].lower()
    where = f"transport URL {_mask_query(url)!r}"
    if scheme == "sentinel":
        hosts, username, password, db = _sentinel_hosts(
            url.partition("://")[2].partition("?")[0]
        )
        if not hosts:
            raise InvalidURLError(f"{where} names no sentinel host")
        master = [(k, v) for k, v in theirs if not k.startswith("sentinel_")]
        sentinel = [
            (k[len("sentinel_") :], v) for k, v in theirs if k.startswith("sentinel_")
        ]
        return ParsedURL(
            scheme,
            "",
            _typed_query(master, where),
            hosts,
            _typed_query(sentinel, where),
            username,
            password,
            db,
            ours,
        )
    if scheme == "redis+socket":
        path = urlsplit(url).path
        if not path:
            raise InvalidURLError(
                f"{where} names no socket path: redis+socket:///path/to/redis.sock"
            )
        client_url = "unix://" + path
    elif scheme in ("redis", "rediss"):
        client_url = bare
    else:
        raise InvalidURLError(
            f"{where}: the Redis transport takes redis://, rediss://, "
            "redis+socket:// and sentinel:// URLs"
        )
    try:
        kwargs = _redis_parse_url(
            client_url + ("?" + urlencode(theirs) if theirs else "")
        )
    except ValueError as exc:
        raise InvalidURLError(f"invalid {where}: {exc}") from None
    for key in _SSL_BOOLS:
        if key in kwargs and isinstance(kwargs[key], str):
            kwargs[key] = to_bool(where, key, kwargs[key])
    password = kwargs.pop("password", None)
    username = kwargs.pop("username", None)
    db = int(kwargs.pop("db", 0) or 0)
    return ParsedURL(scheme, client_url, kwargs, [], {}, username, password, db, ours)


def _mask_query(url: str) -> str:
    """Mask ``...password=`` query values (the userinfo is masked elsewhere)."""
    head, sep, query = url.partition("?")
    if not sep:
        return url
    masked = []
    for item in query.split("&"):
        key, eq, _ = item.partition("=")
        masked.append(f"{key}=***" if eq and key.endswith("password") else item)
    return head + sep + "&".join(masked)


def _kombu_pattern(kind: str, key: str) -> str:
    """The middle field of kombu's binding member: a regex for topic bindings."""
    if kind != "topic":
        return ""
    words = []
    for word in key.split("."):
        if word == "*":
            words.append(r".*?[^\.]")
        elif word == "#":
            words.append(r".*?")
        else:
            words.append("".join(c if c.isalnum() else "\\" + c for c in word))
    return "^" + r"\.".join(words) + "$"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisConsumer(Consumer):
    """Consumer of :class:`RedisTransport`: claims with a Lua script, waits on BLPOP.

    Between claims it blocks on the wake keys of its queues and a private
    interrupt key, at most ``poll_interval`` (and never past the next
    delayed message's due time). Broadcasts arrive over PUB/SUB in a
    listener thread, which wakes the waiting claim through the interrupt key.
    """

    transport: RedisTransport

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._broadcasts: dict[str, _Broadcast] = {}
        self._inbox: deque[Delivery] = deque()
        self._pubsub: Any = None
        self._listener: threading.Thread | None = None
        self._confirmed = 0
        self._pubsub_cond = threading.Condition()
        self._woken = False
        self._stopping = False
        #: The ``now`` of claims whose reply was lost with the connection.
        self._lost_claims: list[str] = []
        super().__init__(*args, **kwargs)

    # -- receiving ---------------------------------------------------------------------

    def _receive(
        self, queues: tuple[str, ...], limit: int, timeout: float
    ) -> list[Delivery]:
        transport = self.transport
        deadline = time.monotonic() + timeout
        real = [q for q in queues if q not in self._broadcasts]
        claimed: tuple[list[Delivery], float | None] | None = None
        while True:
            got = self._take_inbox(limit)
            if got:
                if claimed:
                    got += claimed[0]  # claimed already: never left behind
                return got
            if self._lost_claims:
                transport._recover_claims(self)
            due = None
            if claimed is not None:  # the claim that came with the last wait
                got, due = claimed
                claimed = None
                if got:
                    return got
            elif real:
                got, due = transport._claim(self, self._in_turn(real), limit)
                if got:
                    return got
            if self._woken:
                self._woken = False
                return []
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            wait = min(remaining, transport.poll_interval)
            if due is not None:
                wait = min(wait, max(0.0, due - time.time()) + 0.002)
            if wait < 0.005:
                continue
            if wait <= _SERVER_TICK:
                # Redis ends a blocking call's timeout on its clock ticks (every
                # 100 ms at the default hz 10), so a short wait would overrun by
                # up to a tick: the worker's timers (rate limits, ETA) need it
                # on time, so the last part of a wait is slept here.
                time.sleep(wait)
                continue
            keys = [transport._wake_key(q) for q in real]
            keys.append(transport._interrupt_key(self.token))
            if real:
                popped, claimed = transport._wait_then_claim(
                    self, self._in_turn(real), limit, keys, wait - _SERVER_TICK
                )
            else:
                popped = transport._client.blpop(keys, timeout=wait - _SERVER_TICK)
            if popped is not None and popped[0] == keys[-1]:
                self._woken = False
                if claimed and claimed[0]:
                    return claimed[0]
                if not self._inbox:
                    return []

    def _requeue_broadcasts(self, deliveries: Iterable[Delivery]) -> None:
        """Give requeued broadcasts back to the inbox (the broker keeps no copy)."""
        if self.closed:
            return
        fresh = [
            Delivery(
                body=d.body,
                headers=d.headers,
                properties=d.properties,
                queue=d.queue,
                exchange=d.exchange,
                routing_key=d.routing_key,
                delivery_count=d.delivery_count + 1,
                tag=None,
            )
            for d in deliveries
        ]
        with self._pubsub_cond:
            self._inbox.extendleft(reversed(fresh))

    def _take_inbox(self, limit: int) -> list[Delivery]:
        if not self._inbox:
            return []
        with self._pubsub_cond:
            count = min(limit, len(self._inbox))
            return [self._inbox.popleft() for _ in range(count)]

    def _wake(self) -> None:
        self._woken = True
        transport = self.transport
        with contextlib.suppress(Exception):
            key = transport._interrupt_key(self.token)
            pipe = transport._client.pipeline(transaction=False)
            pipe.lpush(key, b"1")
            pipe.ltrim(key, 0, 0)
            pipe.pexpire(key, 60_000)
            pipe.execute()

    def _shutdown(self) -> None:
        self._stopping = True
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            # The listener reads the pub/sub connection; closing it under the
            # listener would hand a connection that is still being read back to
            # the pool, where the next command waits for a reply it never gets.
            listener.join(timeout=2.0)
        self.transport._outage.forget(f"broadcasts of {self.token}")
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()
        transport = self.transport
        transport._forget_consumer(self)
        if transport.closed:
            return
        with contextlib.suppress(Exception):
            transport._client.delete(
                transport._interrupt_key(self.token),
                transport._heartbeat_key(self.token),
            )

    # -- broadcasts over PUB/SUB -------------------------------------------------------

    def _add_broadcast(self, broadcast: _Broadcast) -> None:
        with self._pubsub_cond:
            if self._pubsub is None:
                self._pubsub = self.transport._client.pubsub()
            self._broadcasts[broadcast.name] = broadcast
            wanted = self._confirmed + len(broadcast.patterns)
            self._pubsub.psubscribe(*broadcast.patterns)
            if self._listener is None:
                self._listener = threading.Thread(
                    target=self._listen, name="transports-redis-pubsub", daemon=True
                )
                self._listener.start()
            deadline = time.monotonic() + self.transport.socket_timeout
            while self._confirmed < wanted and time.monotonic() < deadline:
                self._pubsub_cond.wait(0.1)

    def _remove_broadcast(self, name: str) -> None:
        with self._pubsub_cond:
            broadcast = self._broadcasts.pop(name, None)
            if broadcast is None or self._pubsub is None:
                return
            still = {p for b in self._broadcasts.values() for p in b.patterns}
            gone = [p for p in broadcast.patterns if p not in still]
            if gone:
                with contextlib.suppress(Exception):
                    self._pubsub.punsubscribe(*gone)

    def _listen(self) -> None:
        """Read PUB/SUB messages into the inbox until the consumer stops."""
        attempt = 0
        outage = self.transport._outage
        link = f"broadcasts of {self.token}"
        while not self._finished():
            pubsub = self._pubsub
            if pubsub is None:
                return
            try:
                message = pubsub.get_message(timeout=0.25)
                attempt = 0
                outage.back(link)
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect and go on
                if self._finished():
                    return
                pause = min(0.05 * 2**attempt, 1.0)
                attempt += 1
                if isinstance(exc, self.transport.connection_errors):
                    # redis-py reconnects and subscribes again on the next read.
                    outage.lost(link, exc)
                else:
                    logger.warning(
                        "%s transport %s: reading broadcasts failed (%s); again in "
                        "%.2f s",
                        self.transport.name,
                        self.transport.url,
                        self.transport._scrub(exc),
                        pause,
                    )
                time.sleep(pause)
                continue
            if message is None:
                continue
            kind = message.get("type")
            if kind in ("psubscribe", b"psubscribe"):
                with self._pubsub_cond:
                    self._confirmed += 1
                    self._pubsub_cond.notify_all()
                continue
            if kind not in ("pmessage", b"pmessage"):
                continue
            pattern = message.get("pattern")
            if isinstance(pattern, bytes):
                pattern = pattern.decode("utf-8", "replace")
            self._deliver_broadcast(pattern, message.get("data"))

    def _finished(self) -> bool:
        return self._stopping or self.closed

    def _deliver_broadcast(self, pattern: Any, data: Any) -> None:
        if not isinstance(data, bytes):
            return
        try:
            envelope = decode_envelope(data)
        except ValueError as exc:
            logger.error(
                "%s transport %s: dropped a malformed broadcast: %s",
                self.transport.name,
                self.transport.url,
                exc,
            )
            return
        routing_key = envelope.routing_key or ""
        arrived = []
        with self._pubsub_cond:
            for broadcast in self._broadcasts.values():
                if pattern not in broadcast.patterns:
                    continue
                if broadcast.kind != "fanout" and not _routing.matches(
                    broadcast.kind, broadcast.routing_key, routing_key
                ):
                    continue
                arrived.append(
                    Delivery(
                        body=envelope.body,
                        headers=dict(envelope.headers),
                        properties=dict(envelope.properties),
                        queue=broadcast.name,
                        exchange=envelope.exchange or broadcast.exchange,
                        routing_key=routing_key,
                        delivery_count=1,
                        tag=None,
                    )
                )
            was_empty = not self._inbox
            self._inbox.extend(arrived)
        if arrived and was_empty:
            self._wake()


class RedisTransport(Transport):
    """Queues in Redis lists with kombu's keys, claimed atomically by Lua.

    Args:
        url: See the module documentation for the forms.
        global_keyprefix: Prepended to every key and channel (kombu's option).
        master_name: The sentinel master's name (``sentinel://`` only).
        sentinel_kwargs: Connection options for the sentinels themselves.
        socket_timeout: Seconds a command may take.
        socket_connect_timeout: Seconds a connection may take.
        client_name: ``CLIENT SETNAME`` for every connection.
        max_connections: Size cap of the connection pool.
        poll_interval: The longest a waiting consumer goes without claiming.
        heartbeat_interval: Seconds between a live consumer's heartbeats
            (and sweeps for lost deliveries).
        heartbeat_ttl: Seconds after its last heartbeat at which a consumer
            counts as dead and its deliveries are restored.
        unowned_timeout: Seconds after which an unacked delivery of a kombu
            consumer (which has no heartbeat) is restored (default: the lease).
        priority_steps: kombu's priority steps (each a list key).
        sep: kombu's separator of a queue name and its priority step.
        fanout_prefix: kombu's fanout channel prefix: ``True`` for
            ``/<db>.``, ``False`` for none, or a string.
        fanout_patterns: Append ``/<routing key>`` to fanout channels (kombu's).
        min_replicas: Replicas that must have a publish before it returns.
        replica_timeout: Seconds to wait for them.
        quarantine_queue: Where malformed messages of queues without a
            dead-letter target go.
        **options: The common options of :class:`~transports.Transport`.

    Raises:
        InvalidURLError: The URL or an option is malformed.
        MissingDriverError: redis-py is not installed.
    """

    name: ClassVar[str] = "redis"
    consumer_class = RedisConsumer
    connection_errors = (
        RedisConnectionError,
        RedisTimeoutError,
        ConnectionError,
        TimeoutError,
    )
    driver_modules = ("redis", "redis.sentinel")

    def __init__(
        self,
        url: str,
        *,
        global_keyprefix: str | None = None,
        master_name: str | None = None,
        sentinel_kwargs: Mapping[str, Any] | None = None,
        socket_timeout: float = 10.0,
        socket_connect_timeout: float = 5.0,
        client_name: str | None = None,
        max_connections: int | None = None,
        poll_interval: float = 1.0,
        heartbeat_interval: float = 1.0,
        heartbeat_ttl: float = 5.0,
        unowned_timeout: float | None = None,
        priority_steps: Sequence[int] = (0, 3, 6, 9),
        sep: str = _SEP,
        fanout_prefix: bool | str = True,
        fanout_patterns: bool = True,
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
        quarantine_queue: str = "transports.malformed",
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        self.url = _mask_query(self.url)
        where = f"transport {self.url!r}"
        parsed = parse_url(url)
        prefix = (
            global_keyprefix
            if global_keyprefix is not None
            else parsed.ours.get("global_keyprefix", "")
        )
        if not isinstance(prefix, str):
            raise InvalidURLError(f"global_keyprefix of {where} must be a str")
        self.global_keyprefix = prefix
        self._p = prefix.encode()
        self.socket_timeout = to_float(where, "socket_timeout", socket_timeout) or 10.0
        self.poll_interval = to_float(where, "poll_interval", poll_interval) or 1.0
        self.heartbeat_interval = (
            to_float(where, "heartbeat_interval", heartbeat_interval) or 1.0
        )
        self.heartbeat_ttl = to_float(where, "heartbeat_ttl", heartbeat_ttl) or 5.0
        if self.heartbeat_ttl < 2 * self.heartbeat_interval:
            raise InvalidURLError(
                f"option heartbeat_ttl={heartbeat_ttl!r} of {where} must be at least "
                f"twice heartbeat_interval ({self.heartbeat_interval:g} s)"
            )
        self.unowned_timeout = (
            to_float(where, "unowned_timeout", unowned_timeout)
            if unowned_timeout is not None
            else self.lease
        ) or self.lease
        steps = sorted({to_int(where, "priority_steps", s) for s in priority_steps})
        if not steps or steps[0] != 0 or steps[-1] > 9:
            raise InvalidURLError(
                f"option priority_steps={priority_steps!r} of {where} must start at "
                "0 and stay within 0-9, e.g. (0, 3, 6, 9)"
            )
        self.priority_steps = tuple(steps)
        self.sep = sep
        self.min_replicas = to_int(where, "min_replicas", min_replicas)
        self.replica_timeout = (
            to_float(where, "replica_timeout", replica_timeout) or 1.0
        )
        self.quarantine_queue = quarantine_queue
        self.capabilities = Capabilities(
            priority_levels=len(steps),
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
            multiprocess=True,
            persistent=False,
            expiring_sets=True,
        )
        common: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": to_float(
                where, "socket_connect_timeout", socket_connect_timeout
            ),
            # Retries belong to Transport._retrying: a claim whose reply was
            # lost must not be sent again blindly by the driver.
            "retry": Retry(NoBackoff(), 0),
            "protocol": 2,
        }
        if client_name:
            common["client_name"] = client_name
        if max_connections:
            common["max_connections"] = max_connections
        self.scheme = parsed.scheme
        self.db = parsed.db
        if parsed.scheme == "sentinel":
            name = master_name or parsed.ours.get("master_name")
            if not name:
                raise InvalidURLError(
                    f"sentinel URL {self.url!r} needs the master's name: add "
                    "?master_name=NAME or pass master_name="
                )
            self.master_name: str | None = name
            sentinel_options: dict[str, Any] = {"socket_timeout": self.socket_timeout}
            sentinel_options.update(parsed.sentinel_options)
            sentinel_options.update(sentinel_kwargs or {})
            secret = sentinel_options.get("password")
            self._sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
                parsed.sentinels,
                sentinel_kwargs=sentinel_options,
                socket_connect_timeout=common["socket_connect_timeout"],
            )
            master_options = {
                "db": parsed.db,
                "username": parsed.username,
                "password": parsed.password,
                **parsed.options,
                **common,
            }
            sentinels, connect_timeout = (
                parsed.sentinels,
                common["socket_connect_timeout"],
            )

            def make_client() -> Any:
                sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
                    sentinels,
                    sentinel_kwargs=sentinel_options,
                    socket_connect_timeout=connect_timeout,
                )
                return sentinel.master_for(name, **master_options)  # type: ignore[no-untyped-call]

            self._main_client: Any = self._sentinel.master_for(  # type: ignore[no-untyped-call]
                name, **master_options
            )
            self._secrets = tuple(str(s) for s in (parsed.password, secret) if s)
        else:
            self.master_name = None
            try:
                pool = redis.ConnectionPool.from_url(
                    parsed.client_url,
                    db=parsed.db,
                    username=parsed.username,
                    password=parsed.password,
                    **{**parsed.options, **common},
                )
            except (ValueError, TypeError) as exc:
                raise InvalidURLError(f"invalid {where}: {exc}") from None
            self._main_client = redis.Redis(connection_pool=pool)

            def make_client() -> Any:
                return redis.Redis(
                    connection_pool=type(pool)(
                        connection_class=pool.connection_class, **pool.connection_kwargs
                    )
                )

            self._secrets = (parsed.password,) if parsed.password else ()
        if fanout_prefix is True:
            channel_prefix = f"/{parsed.db}."
        elif fanout_prefix is False or fanout_prefix is None:
            channel_prefix = ""
        else:
            channel_prefix = str(fanout_prefix)
        self._channel_prefix = prefix + channel_prefix
        self.fanout_patterns = bool(fanout_patterns)
        # Under gevent or eventlet a connection belongs to the OS thread whose hub
        # made it: the native heartbeat and lease threads get clients of their own.
        self._make_client = make_client
        self._green = _native.patched() is not None
        self._thread_ident: Callable[[], int] = _native.original_get_ident()
        self._home_thread = self._thread_ident()
        self._thread_clients: dict[int, Any] = {}
        self._claim_script = self._client.register_script(_redis_lua.CLAIM)
        self._settle_script = self._client.register_script(_redis_lua.SETTLE)
        self._renew_script = self._client.register_script(_redis_lua.RENEW)
        self._sweep_script = self._client.register_script(_redis_lua.SWEEP)
        self._restore_script = self._client.register_script(_redis_lua.RESTORE)
        self._lost_script = self._client.register_script(_redis_lua.LOST)
        self._declare_script = self._client.register_script(_redis_lua.DECLARE)
        self._specs: dict[str, tuple[QueueSpec | None, float]] = {}
        self._kinds: dict[str, str] = {}
        self._keys: dict[str, tuple[bytes, ...]] = {}
        self._suffixes: dict[str, bytes] = {}
        self._broadcast_owners: dict[str, RedisConsumer] = {}
        self._plans: dict[
            tuple[str, ...], tuple[list[tuple[bytes, str]], list[Any]]
        ] = {}
        self._lease_text = repr(self.lease)
        self._step_index = [
            self.priority_steps.index(step_of(p, self.priority_steps))
            for p in range(10)
        ]
        self._ttl_ms = int(self.heartbeat_ttl * 1000)
        self._beat_lock = _native.allocate_lock()
        self._beating = False
        self.heartbeats = 0

    # -- keys --------------------------------------------------------------------------

    def _list_keys(self, queue: str) -> tuple[bytes, ...]:
        """The list keys of *queue*, one per priority step (ascending steps)."""
        found = self._keys.get(queue)
        if found is None:
            base = self._p + queue.encode()
            sep = self.sep.encode()
            found = tuple(
                base if step == 0 else base + sep + str(step).encode()
                for step in self.priority_steps
            )
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[queue] = found
        return found

    def _list_key(self, queue: str, priority: int) -> bytes:
        return self._list_keys(queue)[self._step_index[min(max(priority, 0), 9)]]

    def _wake_key(self, queue: str) -> bytes:
        return self._p + b"_qm.wake." + queue.encode()

    def _interrupt_key(self, token: str) -> bytes:
        return self._p + b"_qm.interrupt." + token.encode()

    def _heartbeat_key(self, token: str) -> bytes:
        return self._p + b"_qm.heartbeat." + token.encode()

    def _set_key(self, name: str) -> bytes:
        return self._p + b"_qm.set." + name.encode()

    def _spec_key(self, queue: str) -> bytes:
        return self._p + b"_qm.queue." + queue.encode()

    def _exchange_key(self, exchange: str) -> bytes:
        return self._p + b"_qm.exchange." + exchange.encode()

    def _binding_key(self, exchange: str) -> bytes:
        return self._p + b"_kombu.binding." + exchange.encode()

    def _fanout_key(self, exchange: str) -> bytes:
        return self._p + b"_qm.fanout." + exchange.encode()

    def _bound_key(self, queue: str) -> bytes:
        return self._p + b"_qm.bound." + queue.encode()

    def _channel(self, exchange: str, routing_key: str) -> str:
        if routing_key and self.fanout_patterns:
            return f"{self._channel_prefix}{exchange}/{routing_key}"
        return self._channel_prefix + exchange

    def _suffix(self, queue: str) -> bytes:
        """The tail of our ``unacked`` values: ``, "", "<queue>"]``."""
        found = self._suffixes.get(queue)
        if found is None:
            found = b', "", ' + json.dumps(queue).encode() + b"]"
            self._suffixes[queue] = found
        return found

    # -- declarations ------------------------------------------------------------------

    def _declare(self, key: bytes, value: bytes) -> bytes | None:
        existing: bytes | None = self._declare_script(
            keys=[key], args=[value], client=self._client
        )
        return existing

    def _declare_queue(self, spec: QueueSpec) -> None:
        existing = self._declare(self._spec_key(spec.name), _dumps(spec.arguments()))
        if existing is not None:
            found = self._parse_spec(spec.name, existing)
            if found != spec:
                raise DeclarationMismatchError(
                    spec.name, found.arguments(), spec.arguments()
                )
        self._specs[spec.name] = (spec, time.monotonic())

    @staticmethod
    def _parse_spec(name: str, data: bytes) -> QueueSpec:
        return QueueSpec(name=name, **_loads(data))

    def _spec(self, name: str, *, fresh: bool = False) -> QueueSpec | None:
        """The declared spec of queue *name* (cached a few seconds), or ``None``."""
        cached = self._specs.get(name)
        now = time.monotonic()
        if cached is not None and not fresh and now - cached[1] < _SPEC_TTL:
            return cached[0]
        data = self._client.get(self._spec_key(name))
        spec = None if data is None else self._parse_spec(name, data)
        self._specs[name] = (spec, now)
        return spec

    def _declare_exchange(self, spec: ExchangeSpec) -> None:
        existing = self._declare(
            self._exchange_key(spec.name), _dumps(spec.arguments())
        )
        if existing is not None:
            arguments = _loads(existing)
            found = ExchangeSpec(spec.name, arguments["kind"], arguments["durable"])
            if found != spec:
                raise DeclarationMismatchError(
                    spec.name, found.arguments(), spec.arguments()
                )
        self._kinds[spec.name] = spec.kind

    def _exchange_kind(self, exchange: str) -> str | None:
        """The declared kind of *exchange* (cached once known), or ``None``."""
        kind = self._kinds.get(exchange)
        if kind is None:
            data = self._client.get(self._exchange_key(exchange))
            if data is None:
                return None
            kind = str(_loads(data)["kind"])
            self._kinds[exchange] = kind
        return kind

    def _member(self, binding: Binding, kind: str) -> bytes:
        sep = self.sep
        return (
            binding.routing_key
            + sep
            + _kombu_pattern(kind, binding.routing_key)
            + sep
            + binding.queue
        ).encode()

    def _bind(self, binding: Binding) -> None:
        kind = self._exchange_kind(binding.exchange) or "direct"
        member = self._member(binding, kind)
        pipe = self._client.pipeline(transaction=True)
        pipe.sadd(self._binding_key(binding.exchange), member)
        pipe.sadd(
            self._bound_key(binding.queue), _dumps([binding.exchange, member.decode()])
        )
        if kind == "fanout":
            pipe.sadd(self._fanout_key(binding.exchange), binding.queue.encode())
        pipe.execute()

    def _unbind(self, binding: Binding) -> None:
        kind = self._exchange_kind(binding.exchange) or "direct"
        member = self._member(binding, kind)
        pipe = self._client.pipeline(transaction=True)
        pipe.srem(self._binding_key(binding.exchange), member)
        pipe.srem(
            self._bound_key(binding.queue), _dumps([binding.exchange, member.decode()])
        )
        if kind == "fanout":
            pipe.srem(self._fanout_key(binding.exchange), binding.queue.encode())
        pipe.execute()

    def _delete_queue(self, name: str) -> None:
        bound = self._client.smembers(self._bound_key(name))
        pipe = self._client.pipeline(transaction=True)
        for item in bound:
            exchange, member = _loads(item)
            pipe.srem(self._binding_key(exchange), member.encode())
            pipe.srem(self._fanout_key(exchange), name.encode())
        pipe.delete(
            *self._list_keys(name),
            self._spec_key(name),
            self._wake_key(name),
            self._bound_key(name),
        )
        pipe.execute()
        self._specs.pop(name, None)

    # -- publishing --------------------------------------------------------------------

    def _routes(self, names: set[str]) -> dict[str, tuple[str, list[str], list[str]]]:
        """Kind, kombu binding members and fanout queues of each exchange."""
        pipe = self._client.pipeline(transaction=False)
        ordered = sorted(names)
        for name in ordered:
            pipe.get(self._exchange_key(name))
            pipe.smembers(self._binding_key(name))
            pipe.smembers(self._fanout_key(name))
        replies = pipe.execute()
        routes = {}
        for number, name in enumerate(ordered):
            data, members, fanout = replies[3 * number : 3 * number + 3]
            kind = str(_loads(data)["kind"]) if data is not None else "direct"
            if data is not None:
                self._kinds[name] = kind
            routes[name] = (
                kind,
                [m.decode("utf-8", "replace") for m in members],
                [q.decode("utf-8", "replace") for q in fanout],
            )
        return routes

    def _targets(
        self, route: tuple[str, list[str], list[str]], routing_key: str
    ) -> list[str]:
        kind, members, fanout = route
        if kind == "fanout":
            return sorted(set(fanout))
        found: dict[str, None] = {}
        for member in members:
            parts = member.split(self.sep)
            if len(parts) != 3:
                continue
            key, _, queue = parts
            if _routing.matches(kind, key, routing_key):
                found[queue] = None
        return list(found)

    def _publish(self, messages: list[Outgoing], mandatory: bool) -> None:
        named = {m.exchange for m in messages if m.exchange}
        routes = self._routes(named) if named else {}
        pipe = self._client.pipeline(transaction=False)
        pushes: dict[bytes, list[bytes]] = {}
        wakes: set[bytes] = set()
        channels: list[tuple[int, Outgoing]] = []
        targeted: list[tuple[Outgoing, int]] = []
        delayed: dict[bytes, float] = {}
        places: dict[str, tuple[tuple[bytes, ...], bytes, float | None]] = {}
        steps = self._step_index
        for message in messages:
            if message.exchange:
                queues = self._targets(routes[message.exchange], message.routing_key)
            else:
                queues = [message.routing_key]
                if mandatory and self._spec(message.routing_key) is None:
                    queues = []
            targeted.append((message, len(queues)))
            for queue in queues:
                place = places.get(queue)
                if place is None:
                    spec = self._spec(queue)
                    place = places[queue] = (
                        self._list_keys(queue),
                        self._wake_key(queue),
                        None if spec is None else spec.message_ttl,
                    )
                keys, wake, queue_ttl = place
                expires_at = message.expires_at
                if queue_ttl is not None:
                    limit = message.visible_at + queue_ttl
                    expires_at = limit if expires_at is None else min(expires_at, limit)
                envelope = encode_envelope(message, str(uuid.uuid4()), expires_at)
                key = keys[steps[message.priority]]
                wakes.add(wake)
                if message.delay:
                    member = b"%d:%d:%s%s%s" % (
                        len(key),
                        len(wake),
                        key,
                        wake,
                        envelope,
                    )
                    delayed[member] = message.visible_at
                else:
                    pushes.setdefault(key, []).append(envelope)
            if message.exchange:
                envelope = encode_envelope(
                    message, str(uuid.uuid4()), message.expires_at
                )
                channels.append((len(channels), message))
                pipe.publish(
                    self._channel(message.exchange, message.routing_key), envelope
                )
        for key, envelopes in pushes.items():
            pipe.lpush(key, *envelopes)
        if delayed:
            pipe.zadd(self._p + b"_qm.delayed", delayed)
        for wake in wakes:
            pipe.lpush(wake, b"1")
            pipe.ltrim(wake, 0, 0)
        if self.min_replicas:
            pipe.wait(self.min_replicas, int(self.replica_timeout * 1000))
        replies = pipe.execute()
        if self.min_replicas and replies[-1] < self.min_replicas:
            raise RedisConnectionError(
                f"only {replies[-1]} of {self.min_replicas} replicas confirmed the "
                "publish; the master may be failing over"
            )
        receivers = {index: int(replies[index]) for index, _ in channels}
        unroutable = []
        published = 0
        for message, count in targeted:
            if message.exchange:
                count += receivers.get(published, 0)
                published += 1
            if count == 0:
                unroutable.append(message)
        if unroutable:
            if not mandatory:
                logger.debug(
                    "%s transport: %d message(s) matched no queue and were dropped",
                    self.name,
                    len(unroutable),
                )
                return
            first = unroutable[0]
            where = (
                f"exchange {first.exchange!r} with routing key {first.routing_key!r}"
                if first.exchange
                else f"queue {first.routing_key!r}, which was never declared"
            )
            raise UnroutableError(
                f"no queue receives messages published to {where} "
                f"({len(unroutable)} message(s) unroutable); declare and bind a "
                "queue first"
            )

    # -- consuming ---------------------------------------------------------------------

    def _claim_plan(
        self, consumer: Consumer, queues: list[str], limit: int
    ) -> tuple[list[tuple[bytes, str]], str, list[Any]]:
        """The lists a claim of *queues* reads, its stamp and the script's args."""
        plan = self._plans.get(tuple(queues))
        if plan is None:
            lists: list[tuple[bytes, str]] = []
            tail: list[Any] = []
            for position in range(len(self.priority_steps) - 1, -1, -1):
                for queue in queues:
                    key = self._list_keys(queue)[position]
                    lists.append((key, queue))
                    tail += (key, self._suffix(queue), self._wake_key(queue))
            if len(self._plans) > 1000:
                self._plans.clear()
            plan = self._plans[tuple(queues)] = (lists, [len(lists), *tail])
        lists, tail = plan
        stamp = repr(time.time())
        args = [self._p, consumer.token, stamp, limit, self._lease_text, self._ttl_ms]
        return lists, stamp, [*args, *tail]

    def _claim(
        self, consumer: Consumer, queues: list[str], limit: int
    ) -> tuple[list[Delivery], float | None]:
        """Claim up to *limit* messages of *queues* for *consumer*, atomically.

        Returns the deliveries and the due time of the next delayed message.
        """
        lists, stamp, args = self._claim_plan(consumer, queues, limit)
        try:
            reply = self._claim_script(client=self._client, args=args)
        except self.connection_errors:
            # The claim may have run and only its reply been lost: its messages
            # are ours, but unseen. The consumer returns them to their queues
            # once it is connected again, instead of leaving them to the lease.
            if isinstance(consumer, RedisConsumer):
                consumer._lost_claims.append(stamp)
            raise
        return self._claimed(consumer, lists, float(stamp), reply)

    def _wait_then_claim(
        self,
        consumer: RedisConsumer,
        queues: list[str],
        limit: int,
        keys: list[bytes],
        timeout: float,
    ) -> tuple[Any, tuple[list[Delivery], float | None] | None]:
        """BLPOP on *keys*, and the claim that follows, in one round trip.

        Redis runs a client's pipelined commands in order, the second once
        the blocking first returns: a wake-up (a publish) brings its messages
        back with it instead of after another round trip. Returns BLPOP's
        reply and the claim's deliveries and due time (``None`` when the
        script was not loaded: the caller claims the usual way).
        """
        lists, stamp, args = self._claim_plan(consumer, queues, limit)
        pipe = self._client.pipeline(transaction=False)
        pipe.blpop(keys, timeout=timeout)
        pipe.evalsha(self._claim_script.sha, 0, *args)
        try:
            popped, reply = pipe.execute(raise_on_error=False)
        except self.connection_errors:
            consumer._lost_claims.append(stamp)  # see _claim
            raise
        if isinstance(popped, Exception):
            raise popped
        if isinstance(reply, Exception):
            if isinstance(reply, NoScriptError):
                return popped, None
            raise reply
        return popped, self._claimed(consumer, lists, float(stamp), reply)

    def _claimed(
        self,
        consumer: Consumer,
        lists: list[tuple[bytes, str]],
        now: float,
        reply: list[Any],
    ) -> tuple[list[Delivery], float | None]:
        """The deliveries of a claim's *reply* (and the next delayed due time);
        dead-letters what is malformed, expired or past its delivery limit."""
        due = float(reply[0]) if reply[0] is not None else None
        deliveries: list[Delivery] = []
        bad: list[tuple[str, _Handle, int, str]] = []
        limits: dict[str, int | None] = {}
        for start in range(1, len(reply), 3):
            key, queue = lists[reply[start]]
            raw: bytes = reply[start + 1]
            count: int = reply[start + 2]
            if count < 0:
                self._retrying("move aside", self._quarantine, queue, raw, "unreadable")
                continue
            try:
                envelope = decode_envelope(raw)
            except ValueError as exc:
                handle = _Handle(_tag_of(raw), raw, key)
                bad.append((queue, handle, count, f"malformed: {exc}"))
                continue
            handle = _Handle(envelope.tag, raw, key)
            if envelope.expires_at is not None and envelope.expires_at <= now:
                bad.append((queue, handle, count, "expired"))
                continue
            if queue in limits:
                most = limits[queue]
            else:
                spec = self._spec(queue)
                most = limits[queue] = None if spec is None else spec.max_deliveries
            if most is not None and count > most:
                reason = f"delivered {count - 1} times without an ack"
                bad.append((queue, handle, count, reason))
                continue
            redelivered = count > 1 or envelope.redelivered
            exchange = envelope.exchange
            routing_key = envelope.routing_key
            deliveries.append(
                Delivery(
                    body=envelope.body,
                    headers=envelope.headers,
                    properties=envelope.properties,
                    queue=queue,
                    exchange="" if exchange is None else exchange,
                    routing_key=queue if routing_key is None else routing_key,
                    delivery_count=max(count, 2) if redelivered else count,
                    tag=handle,
                    redelivered=redelivered,
                )
            )
        if bad:
            self._retrying("dead-letter", self._dead_letter, consumer, bad)
        return deliveries, due

    def _death_envelope(
        self, queue: str, handle: _Handle, count: int, reason: str
    ) -> tuple[bytes, int] | None:
        """The envelope a dead-lettered message gets, and its priority."""
        try:
            document = _loads(handle.raw)
            properties = document["properties"]
            headers = dict(document.get("headers") or {})
        except (ValueError, KeyError, TypeError):
            return None
        headers.update(
            {
                DEATH_REASON: reason,
                DEATH_QUEUE: queue,
                DEATH_COUNT: max(count - 1, 0)
                if reason == "expired" or reason.startswith("delivered")
                else count,
            }
        )
        document["headers"] = headers
        properties = dict(properties)
        properties["delivery_tag"] = str(uuid.uuid4())
        properties.pop(EXPIRES_PROPERTY, None)
        document["properties"] = properties
        priority = properties.get("priority", 0)
        try:
            level = min(max(int(priority), 0), 9)
        except (TypeError, ValueError):
            level = 0
        return _dumps(document), level

    def _dead_letter(
        self, consumer: Consumer, bad: list[tuple[str, _Handle, int, str]]
    ) -> None:
        """Move claimed deliveries to their queue's dead-letter target (or drop)."""
        args: list[Any] = [self._p, consumer.token, "move"]
        for queue, handle, count, reason in bad:
            spec = self._spec(queue)
            target = spec.dead_letter if spec is not None else None
            if reason.startswith("malformed"):
                target = target or self.quarantine_queue
                envelope: tuple[bytes, int] | None = self._wrap_malformed(
                    queue, handle.raw, reason
                )
            else:
                envelope = self._death_envelope(queue, handle, count, reason)
            if target is None or envelope is None:
                args += (handle.tag, b"", b"", b"")
                logger.error(
                    "%s transport %s: dropped message %s of queue %r (%s); declare the "
                    "queue with dead_letter=... to keep such messages",
                    self.name,
                    self.url,
                    handle.tag,
                    queue,
                    reason,
                )
                continue
            args += (
                handle.tag,
                self._list_key(target, envelope[1]),
                envelope[0],
                self._wake_key(target),
            )
            logger.warning(
                "%s transport %s: moved message %s of queue %r to %r (%s)",
                self.name,
                self.url,
                handle.tag,
                queue,
                target,
                reason,
            )
        self._settle_script(args=args, client=self._client)

    def _wrap_malformed(self, queue: str, raw: bytes, reason: str) -> tuple[bytes, int]:
        headers = {
            DEATH_REASON: f"malformed message: {reason}",
            DEATH_QUEUE: queue,
            DEATH_COUNT: 1,
        }
        message = Outgoing(queue, raw, "", headers, {}, 0, None, None)
        return encode_envelope(message, str(uuid.uuid4())), 0

    def _quarantine(self, queue: str, raw: bytes, reason: str) -> None:
        """Move an envelope the claim set aside to the dead-letter target."""
        spec = self._spec(queue)
        target = (
            spec.dead_letter if spec is not None else None
        ) or self.quarantine_queue
        envelope, priority = self._wrap_malformed(
            queue, raw, f"{reason}: not kombu's JSON envelope"
        )
        pipe = self._client.pipeline(transaction=True)
        pipe.lpush(self._list_key(target, priority), envelope)
        pipe.lrem(self._p + b"_qm.malformed", 1, raw)
        pipe.lpush(self._wake_key(target), b"1")
        pipe.ltrim(self._wake_key(target), 0, 0)
        pipe.execute()
        logger.error(
            "%s transport %s: moved a malformed message of queue %r to %r: %r...",
            self.name,
            self.url,
            queue,
            target,
            raw[:80],
        )

    # -- settling and leases -----------------------------------------------------------

    def _settle(
        self, consumer: Consumer, deliveries: list[Delivery], outcome: Outcome
    ) -> None:
        broadcast = [d for d in deliveries if d.tag is None]
        if broadcast:
            returned = outcome in RETURNED
            if returned and isinstance(consumer, RedisConsumer):
                consumer._requeue_broadcasts(broadcast)
            deliveries = [d for d in deliveries if d.tag is not None]
        for start in range(0, len(deliveries), _CHUNK):
            chunk = deliveries[start : start + _CHUNK]
            if outcome == "ack":
                self._settle_script(
                    client=self._client,
                    args=[self._p, consumer.token, "ack", *(d.tag.tag for d in chunk)],
                )
            elif outcome in RETURNED:
                args: list[Any] = [self._p, consumer.token, outcome]
                for d in chunk:
                    args += (
                        d.tag.tag,
                        d.tag.list_key,
                        d.tag.raw,
                        self._wake_key(d.queue),
                    )
                self._settle_script(args=args, client=self._client)
            else:
                self._dead_letter(
                    consumer,
                    [(d.queue, d.tag, d.delivery_count, "rejected") for d in chunk],
                )

    def _renew(
        self, consumer: Consumer, deliveries: list[Delivery], seconds: float
    ) -> None:
        now = time.time()
        args: list[Any] = [
            self._p,
            consumer.token,
            repr(self.lease),
            int(self.heartbeat_ttl * 1000),
        ]
        for delivery in deliveries:
            if delivery.tag is None:
                continue
            until = max(now + seconds, delivery.extended_until)
            args += (delivery.tag.tag, repr(until - self.lease))
        self._renew_script(args=args, client=self._client)

    # -- heartbeats and the sweep ------------------------------------------------------

    def _register(self, consumer: Consumer) -> None:
        super()._register(consumer)
        with self._beat_lock:
            if not self._beating:
                self._beating = True
                _native.start_thread(self._beat)

    def _beat(self) -> None:
        """Native thread: heartbeats of live consumers, and the sweep, each interval."""
        try:
            while not self._is_closed():
                consumers = self._live_consumers()
                if not consumers:
                    return
                try:
                    pipe = self._client.pipeline(transaction=False)
                    for consumer in consumers:
                        pipe.set(
                            self._heartbeat_key(consumer.token),
                            repr(self.lease),
                            px=int(self.heartbeat_ttl * 1000),
                        )
                    pipe.execute()
                    self._outage.back("commands")
                    self.sweep()
                    self.heartbeats += 1
                except self.connection_errors as exc:
                    if self._is_closed():
                        return
                    self._outage.lost("commands", exc)
                except Exception as exc:  # noqa: BLE001 - keep beating through outages
                    if self._is_closed():
                        return
                    logger.warning(
                        "%s transport %s: heartbeat failed (%s); trying again in "
                        "%.1f s",
                        self.name,
                        self.url,
                        self._scrub(exc),
                        self.heartbeat_interval,
                    )
                deadline = time.monotonic() + self.heartbeat_interval
                while not self._is_closed() and time.monotonic() < deadline:
                    _native.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        finally:
            with self._beat_lock:
                self._beating = False

    def _is_closed(self) -> bool:
        return self._closed

    def sweep(self, limit: int = 200) -> int:
        """Restore lost unacked deliveries now; return how many.

        Restores the deliveries of consumers whose heartbeat expired, those
        whose lease ended, and kombu consumers' ones older than
        ``unowned_timeout``. Safe to run from several processes at once.
        Consumers run it every ``heartbeat_interval``.
        """
        now = time.time()
        bound = now - min(self.lease, self.unowned_timeout)
        found = self._sweep_script(
            client=self._client,
            args=[self._p, repr(now), repr(self.unowned_timeout), repr(bound), limit],
        )
        restored = self._restore_found(found)
        if restored:
            logger.info(
                "%s transport %s: restored %d unacked deliveries of dead or expired "
                "consumers",
                self.name,
                self.url,
                restored,
            )
        return restored

    def _recover_claims(self, consumer: RedisConsumer) -> None:
        """Return the messages of claims whose reply was lost to their queues."""
        lost = list(consumer._lost_claims)
        found = self._lost_script(
            client=self._client, args=[self._p, consumer.token, *lost]
        )
        restored = self._restore_found(found)
        del consumer._lost_claims[: len(lost)]
        if restored:
            logger.info(
                "%s transport %s: returned %d messages to their queues: the lost "
                "connection took the reply of the claim that took them",
                self.name,
                self.url,
                restored,
            )

    def _restore_found(self, found: list[Any]) -> int:
        """Restore entries in :data:`SWEEP`'s format to their queues; count them."""
        if not found:
            return 0
        args: list[Any] = [self._p]
        names: set[str] = set()
        entries = []
        for start in range(0, len(found), 4):
            tag, value, score, owner = found[start : start + 4]
            try:
                envelope, exchange, routing_key = _loads(value)
                if exchange:
                    names.add(exchange)
            except (ValueError, TypeError):
                envelope = exchange = routing_key = None
            entries.append((tag, value, score, owner, envelope, exchange, routing_key))
        routes = self._routes(names) if names else {}
        for tag, value, score, owner, envelope, exchange, routing_key in entries:
            head = (tag, value, score, owner)
            if not isinstance(envelope, dict) or not isinstance(routing_key, str):
                args += (*head, self._p + b"_qm.malformed", value, b"")
                continue
            queues = (
                self._targets(routes[exchange], routing_key)
                if exchange
                else [routing_key]
            )
            headers = envelope.get("headers")
            if isinstance(headers, dict):
                headers["redelivered"] = True
            properties = envelope.get("properties")
            priority = 0
            if isinstance(properties, dict):
                info = properties.get("delivery_info")
                if isinstance(info, dict):
                    info["redelivered"] = True
                with contextlib.suppress(TypeError, ValueError):
                    priority = min(max(int(properties.get("priority") or 0), 0), 9)
            data = _dumps(envelope)
            if not queues:
                args += (*head, b"", b"", b"")
            for queue in queues:
                args += (
                    *head,
                    self._list_key(queue, priority),
                    data,
                    self._wake_key(queue),
                )
        return int(self._restore_script(args=args, client=self._client))

    # -- broadcasts --------------------------------------------------------------------

    def _subscribe(self, sub: Subscription, consumer: Consumer) -> str:
        if not isinstance(consumer, RedisConsumer):  # pragma: no cover - our class
            return super()._subscribe(sub, consumer)
        name = f"{sub.exchange}.sub.{uuid.uuid4().hex[:12]}"
        kind = (
            self._retrying("subscribe", self._exchange_kind, sub.exchange) or "fanout"
        )
        base = _glob_escape(self._channel_prefix + sub.exchange)
        key = sub.routing_key
        if kind == "fanout" and not key:
            patterns: tuple[str, ...] = (base, base + "/*")
        elif kind == "topic":
            patterns = (base + "/" + _glob_escape(key).replace("#", "*"),)
            if key in ("#", ""):
                patterns = (base, base + "/*")
        elif key:
            patterns = (base + "/" + _glob_escape(key),)
        else:
            patterns = (base,)
        if not self.fanout_patterns:
            patterns = (base,)
        consumer._add_broadcast(_Broadcast(name, sub.exchange, kind, key, patterns))
        self._broadcast_owners[name] = consumer
        return name

    def _unsubscribe(self, sub: Subscription, name: str) -> None:
        consumer = self._broadcast_owners.pop(name, None)
        if consumer is not None:
            consumer._remove_broadcast(name)

    def _forget_consumer(self, consumer: RedisConsumer) -> None:
        for name in list(consumer._broadcasts):
            self._broadcast_owners.pop(name, None)

    # -- queue management --------------------------------------------------------------

    def _remember(
        self, name: str, keys: list[str], expires_at: float, limit: int
    ) -> None:
        # A sorted set scored by expiry: drop the expired, then the ones
        # expiring first beyond the limit; the key itself ends with its members.
        key = self._set_key(name)
        pipe = self._client.pipeline(transaction=True)
        pipe.zadd(key, dict.fromkeys(keys, expires_at))
        pipe.zremrangebyscore(key, "-inf", time.time())
        pipe.zremrangebyrank(key, 0, -limit - 1)
        pipe.zrange(key, -1, -1, withscores=True)
        last = pipe.execute()[-1]
        if last:
            self._client.expireat(key, math.ceil(float(last[0][1])) + 1)

    def _recall(self, name: str) -> dict[str, float]:
        found = self._client.zrangebyscore(
            self._set_key(name), time.time(), "+inf", withscores=True
        )
        return {member.decode(): float(score) for member, score in found}

    def _purge(self, queue: str) -> int:
        keys = self._list_keys(queue)
        pipe = self._client.pipeline(transaction=True)
        for key in keys:
            pipe.llen(key)
        pipe.delete(*keys)
        replies = pipe.execute()
        return sum(int(n) for n in replies[: len(keys)])

    def _size(self, queue: str) -> int:
        pipe = self._client.pipeline(transaction=False)
        for key in self._list_keys(queue):
            pipe.llen(key)
        return sum(int(n) for n in pipe.execute())

    @property
    def _client(self) -> Any:
        """The client of this OS thread (one shared client unless green-patched)."""
        if not self._green:
            return self._main_client
        ident = self._thread_ident()
        if ident == self._home_thread:
            return self._main_client
        client = self._thread_clients.get(ident)
        if client is None:
            client = self._thread_clients[ident] = self._make_client()
        return client

    def _close(self) -> None:
        for client in [self._main_client, *self._thread_clients.values()]:
            with contextlib.suppress(Exception):
                client.close()
            pool = getattr(client, "connection_pool", None)
            if pool is not None:
                with contextlib.suppress(Exception):
                    pool.disconnect()

    def _on_connection_error(self, exc: BaseException) -> None:
        logger.debug("%s transport %s: reconnecting after %s", self.name, self.url, exc)

    def delete_keys(self) -> int:
        """Delete every key under ``global_keyprefix`` (for tests and tear-down).

        Uses ``SCAN MATCH <prefix>*``, never ``FLUSHDB``; refuses an empty prefix.

        Raises:
            ValueError: ``global_keyprefix`` is empty (that would be every key).
        """
        if not self.global_keyprefix:
            raise ValueError(
                "delete_keys() needs a global_keyprefix; it would delete every key"
            )
        pattern = _glob_escape(self.global_keyprefix).encode() + b"*"
        deleted = 0
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(self._client.delete(*batch))
                batch = []
        if batch:
            deleted += int(self._client.delete(*batch))
        return deleted


def _tag_of(raw: bytes) -> str:
    """kombu's delivery tag of an envelope the claim script accepted."""
    try:
        return str(json.loads(raw)["properties"]["delivery_tag"])
    except (ValueError, KeyError, TypeError):
        return ""
