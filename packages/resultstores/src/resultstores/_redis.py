"""Result store on Redis, in Celery's layout: Celery clients read what we write.

URL forms:

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS;
  redis-py's ``ssl_cert_reqs`` and friends go in the query), and
  ``unix:///path/to/redis.sock?db=0``
- ``sentinel://[:password@]host1:26379,host2:26379/db?master_name=mymaster``,
  or kombu's ``sentinel://h1:26379;sentinel://h2:26379``. The password is the
  master's; sentinels that need their own go in ``sentinel_kwargs``.

Query options of ours: ``global_keyprefix`` and ``master_name``; the rest of
the query goes to redis-py.

Options (keyword-only, besides the common ones): ``global_keyprefix``
(Celery's ``result_backend_transport_options['global_keyprefix']``: a ``_``
is added unless it ends in ``: _ - .``), ``master_name`` (sentinel),
``sentinel_kwargs``, ``socket_timeout`` (10 s), ``socket_connect_timeout``
(5 s), ``client_name``, ``max_connections``, ``health_check_interval`` (how
long the pub/sub connection may stay silent before it is pinged, 30 s).

Layout (PROTOCOL.md section 3): results at ``celery-task-meta-<id>``, the
raw serialized document (JSON by default) in Celery's field order, written
with ``SETEX`` and ``PUBLISH``ed on a channel named like the key. A stored
SUCCESS is never overwritten: the check and the write run in one Lua script
(JSON and msgpack) or a ``WATCH`` transaction (other serializers). Groups at
``celery-taskset-meta-<gid>``; chords with Celery's ``.j`` sorted set, ``.t``
and ``.s`` keys.

Capabilities: native expiry; chords; ``wait`` is pushed: one pub/sub
connection per process and server serves every wait, subscribes before
reading the key, and after a reconnect resubscribes and reads again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from . import states
from .base import Capabilities, ResultStore
from .errors import InvalidURLError, MissingDriverError, ResultStoreConnectionError
from .kv import CHORD_PREFIX, GROUP_PREFIX, TASK_PREFIX, celery_keyprefix

try:
    import redis
    import redis.sentinel
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError, WatchError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry
except ImportError as _import_error:  # pragma: no cover - depends on the extras
    raise MissingDriverError("redis", "redis") from _import_error

__all__ = ["RedisResultStore"]

logger = logging.getLogger(__name__)

# Keep a stored SUCCESS; otherwise SETEX (or SET) and PUBLISH, atomically.
_SET_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc
  if ARGV[3] == 'msgpack' then
    ok, doc = pcall(cmsgpack.unpack, current)
  else
    ok, doc = pcall(cjson.decode, current)
  end
  if ok and type(doc) == 'table' and doc['status'] == 'SUCCESS' then
    return 0
  end
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SETEX', KEYS[1], ttl, ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""

_OUR_QUERY = frozenset({"global_keyprefix", "master_name"})


def _split_query(url: str) -> tuple[str, dict[str, str]]:
    """Return *url* without our query options, and those options."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OUR_QUERY:
            ours[key] = value
        else:
            theirs.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(theirs))), ours


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
            raise InvalidURLError(f"invalid sentinel port in {part!r}") from None
        hosts.append((parts.hostname or "127.0.0.1", port))
        if parts.password:
            password = unquote(parts.password)
        if parts.username:
            username = unquote(parts.username)
        path = parts.path.strip("/")
        if path:
            if not path.isdigit():
                raise InvalidURLError(f"sentinel database {path!r} is not a number")
            db = int(path)
    return hosts, username, password, db


class _Waiter:
    """One blocked :meth:`wait`: messages for its channel, or a reconnect notice."""

    __slots__ = ("error", "event", "messages", "reconnected")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.messages: deque[bytes] = deque()
        self.reconnected = False
        self.error: BaseException | None = None


#: Stale subscriptions (see ``_Listener._stale``) are dropped at this many,
#: or after the reader was idle this many seconds.
_STALE_MAX = 64
_STALE_WAIT = 0.05


class _Listener:
    """The process's pub/sub connection to one Redis server, shared by all waits.

    Callers send SUBSCRIBE/UNSUBSCRIBE under a lock; a daemon thread reads
    every reply and message. A caller's subscription counts only once Redis
    confirmed it, so a result published after that is never missed. On a
    lost connection the thread reconnects with bounded backoff, resubscribes
    every channel and tells every waiter to read its key again.
    """

    def __init__(self, store: RedisResultStore, key: tuple[Any, ...]) -> None:
        self.key = key
        self.url = store.url
        self._pool = store._client.connection_pool
        self._idle = store.health_check_interval
        self._max_retries = store.max_retries
        self._backoff_max = store.retry_backoff_max
        self._connect_timeout = store.socket_connect_timeout or 5.0
        self._lock = threading.Lock()
        self._channels: dict[bytes, set[_Waiter]] = {}
        self._pending: dict[bytes, deque[threading.Event]] = {}
        #: Channels still subscribed that nobody waits on any more: their
        #: UNSUBSCRIBE goes out with the next SUBSCRIBE (one write, not two
        #: per wait), when the reader is idle, or once there are _STALE_MAX.
        self._stale: set[bytes] = set()
        self._conn: Any = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.users = 0
        #: Reconnections so far (tests and logs).
        self.reconnects = 0

    def _new_connection(self) -> Any:
        kwargs = dict(self._pool.connection_kwargs)
        # redis-py would read a health-check PONG itself; only our thread reads.
        kwargs["health_check_interval"] = 0
        kwargs["retry"] = Retry(NoBackoff(), 0)
        kwargs["protocol"] = 2
        conn = self._pool.connection_class(**kwargs)
        conn.connect()
        return conn

    def _ensure_running(self) -> None:
        """Connect and start the reader thread (called with the lock held)."""
        if self._conn is None:
            self._conn = self._new_connection()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run,
                name=f"resultstores-redis-listener-{id(self):x}",
                daemon=True,
            )
            self._thread.start()

    def watch(self, channel: bytes, waiter: _Waiter, deadline: float | None) -> None:
        """Add *waiter* to *channel*; return once Redis confirmed the subscription.

        Raises:
            ResultStoreConnectionError: The subscription was not confirmed.
        """
        confirmed = threading.Event()
        with self._lock:
            self._ensure_running()
            waiters = self._channels.setdefault(channel, set())
            waiters.add(waiter)
            if len(waiters) == 1 and channel in self._stale:
                self._stale.discard(channel)  # never unsubscribed
                confirmed.set()
            elif len(waiters) == 1:
                self._pending.setdefault(channel, deque()).append(confirmed)
                commands: list[tuple[Any, ...]] = [("SUBSCRIBE", channel)]
                if self._stale:
                    commands.insert(0, ("UNSUBSCRIBE", *self._stale))
                    self._stale.clear()
                self._conn.send_packed_command(self._conn.pack_commands(commands))
            else:
                queued = self._pending.get(channel)
                if queued:
                    confirmed = queued[-1]
                else:
                    confirmed.set()
        limit = self._connect_timeout * (self._max_retries + 2)
        if deadline is not None:
            limit = min(
                limit, max(deadline - time.monotonic(), 0.05) + self._connect_timeout
            )
        while not confirmed.wait(0.05):
            if waiter.error is not None:
                self.unwatch(channel, waiter)
                raise waiter.error
            if waiter.reconnected:
                return  # the reconnect resubscribed every channel already
            limit -= 0.05
            if limit <= 0:
                self.unwatch(channel, waiter)
                raise ResultStoreConnectionError(
                    f"redis result store at {self.url}: SUBSCRIBE was not confirmed"
                )

    def unwatch(self, channel: bytes, waiter: _Waiter) -> None:
        """Remove *waiter*; unsubscribe when it was the channel's last."""
        with self._lock:
            waiters = self._channels.get(channel)
            if waiters is None:
                return
            waiters.discard(waiter)
            if waiters:
                return
            del self._channels[channel]
            if self._conn is not None:
                self._stale.add(channel)
                if len(self._stale) >= _STALE_MAX:
                    self._unsubscribe_stale()

    def _unsubscribe_stale(self) -> None:
        """Send the UNSUBSCRIBE of the stale channels (hold the lock)."""
        stale, self._stale = self._stale, set()
        if stale and self._conn is not None:
            # On failure the reader thread reconnects without these channels.
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                self._conn.send_command("UNSUBSCRIBE", *stale)

    def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or not reply:
            return
        kind = reply[0]
        if kind == b"message" and len(reply) == 3:
            with self._lock:
                waiters = list(self._channels.get(reply[1], ()))
            for waiter in waiters:
                waiter.messages.append(reply[2])
                waiter.event.set()
        elif kind == b"subscribe":
            with self._lock:
                queued = self._pending.get(reply[1])
                if queued:
                    queued.popleft().set()
                    if not queued:
                        del self._pending[reply[1]]

    def _run(self) -> None:
        while not self._closed:
            conn = self._conn
            try:
                if conn is None:
                    raise RedisConnectionError("not connected")
                if conn.can_read(timeout=_STALE_WAIT if self._stale else self._idle):
                    self._dispatch(conn.read_response())
                elif self._stale:
                    with self._lock:
                        self._unsubscribe_stale()
                else:
                    with self._lock:
                        conn.send_command("PING")
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if self.stopping():
                    return
                if not self._reconnect(exc):
                    return
            except Exception as exc:
                if self.stopping():
                    return  # close() pulled the socket from under the read
                logger.exception(
                    "redis result store %s: pub/sub reader failed", self.url
                )
                if not self._reconnect(exc):
                    return

    def _reconnect(self, error: BaseException) -> bool:
        attempt = 0
        while not self._closed:
            delay = min(0.05 * 2**attempt, self._backoff_max) if attempt else 0.0
            if delay:
                time.sleep(delay)
            with self._lock:
                old, self._conn = self._conn, None
                if old is not None:
                    old.disconnect()
                try:
                    conn = self._new_connection()
                    channels = list(self._channels)
                    self._pending.clear()
                    self._stale.clear()
                    if channels:
                        conn.send_command("SUBSCRIBE", *channels)
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    error = exc
                    attempt += 1
                    logger.warning(
                        "redis result store %s: pub/sub connection lost (%s); "
                        "reconnect %d/%d",
                        self.url,
                        type(exc).__name__,
                        attempt,
                        self._max_retries,
                    )
                    if attempt > self._max_retries:
                        self._fail(error)
                        return False
                    continue
                self._conn = conn
                self.reconnects += 1
                waiters = [w for group in self._channels.values() for w in group]
            logger.info("redis result store %s: pub/sub reconnected", self.url)
            for waiter in waiters:
                waiter.reconnected = True
                waiter.event.set()
            return True
        return False

    def _fail(self, error: BaseException) -> None:
        """Give every waiter the connection error (called with the lock held)."""
        failure = ResultStoreConnectionError(
            f"redis result store at {self.url}: lost the pub/sub connection and "
            f"could not reconnect after {self._max_retries} retries "
            f"({type(error).__name__}); check that the server is running"
        )
        for group in self._channels.values():
            for waiter in group:
                waiter.error = failure
                waiter.event.set()
        self._channels.clear()
        self._pending.clear()
        self._thread = None

    def stopping(self) -> bool:
        """Whether :meth:`close` was called (read again after blocking calls)."""
        return self._closed

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()


_listeners: dict[tuple[Any, ...], _Listener] = {}
_listeners_lock = threading.Lock()


class RedisResultStore(ResultStore):
    """Results in Redis with Celery's keys, values and notifications.

    Args:
        url: ``redis://``, ``rediss://``, ``unix://`` or ``sentinel://``.
        global_keyprefix: Prefix for every key and channel (Celery's rule).
        master_name: The sentinel master's name (``sentinel://`` only).
        sentinel_kwargs: Connection options for the sentinels themselves.
        socket_timeout: Seconds a command may take.
        socket_connect_timeout: Seconds a connection may take.
        client_name: ``CLIENT SETNAME`` for every connection.
        max_connections: Size cap of the connection pool.
        health_check_interval: Idle seconds before the pub/sub connection is pinged.
        **options: The common options of :class:`~resultstores.ResultStore`.

    Raises:
        InvalidURLError: The URL or an option is malformed.
        MissingDriverError: redis-py is not installed.
    """

    name: ClassVar[str] = "redis"
    capabilities: ClassVar[Capabilities] = Capabilities(
        native_ttl=True, chords=True, wait="pubsub", max_result_size=512 * 1024 * 1024
    )
    connection_errors = (
        RedisConnectionError,
        RedisTimeoutError,
        ConnectionError,
        TimeoutError,
    )

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
        health_check_interval: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        bare, ours = _split_query(url)
        prefix = (
            global_keyprefix
            if global_keyprefix is not None
            else ours.get("global_keyprefix", "")
        )
        self.global_keyprefix = celery_keyprefix(prefix)
        self.socket_timeout = socket_timeout
        self.socket_connect_timeout = socket_connect_timeout
        self.health_check_interval = max(float(health_check_interval), 0.1)
        common: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "retry": Retry(NoBackoff(), 0),
            # RESP2: redis-py 8 defaults to RESP3, whose pushes its parser
            # consumes itself; the listener reads pub/sub replies directly.
            "protocol": 2,
        }
        if client_name:
            common["client_name"] = client_name
        if max_connections:
            common["max_connections"] = max_connections
        scheme = bare.partition("://")[0].lower()
        if scheme == "sentinel":
            hosts, username, password, db = _sentinel_hosts(bare.partition("?")[0])
            if not hosts:
                raise InvalidURLError(
                    f"sentinel URL {self.url!r} names no sentinel host"
                )
            name = master_name or ours.get("master_name")
            if not name:
                raise InvalidURLError(
                    f"sentinel URL {self.url!r} needs the master's name: add "
                    "?master_name=NAME or pass master_name="
                )
            self.master_name: str | None = name
            sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
                hosts,
                sentinel_kwargs=dict(
                    sentinel_kwargs or {"socket_timeout": socket_timeout}
                ),
                socket_connect_timeout=socket_connect_timeout,
            )
            self._client: Any = sentinel.master_for(  # type: ignore[no-untyped-call]
                name, db=db, username=username, password=password, **common
            )
            identity: tuple[Any, ...] = (
                "sentinel",
                tuple(hosts),
                name,
                db,
                username,
                password,
            )
        else:
            self.master_name = None
            try:
                pool = redis.ConnectionPool.from_url(bare, **common)
            except ValueError as exc:
                raise InvalidURLError(
                    f"invalid redis URL {self.url!r}: {exc}"
                ) from None
            self._client = redis.Redis(connection_pool=pool)
            kwargs = pool.connection_kwargs
            password = kwargs.get("password")
            identity = (
                scheme,
                kwargs.get("host"),
                kwargs.get("port"),
                kwargs.get("path"),
                kwargs.get("db"),
                kwargs.get("username"),
                password,
            )
        self._secrets = (password,) if password else ()
        self._identity = identity
        self._listener: _Listener | None = None
        self._script_sha: str | None = None
        self._script_mode = {"json": "json", "msgpack": "msgpack"}.get(self.serializer)

    # -- keys ------------------------------------------------------------------------

    def task_key(self, task_id: str) -> str:
        """Return the key (and pub/sub channel) of a task's result."""
        return f"{self.global_keyprefix}{TASK_PREFIX}{task_id}"

    def group_key(self, group_id: str, suffix: str = "") -> str:
        """Return the key of a saved group, or of its chord's ``.j``/``.t``/``.s``."""
        return f"{self.global_keyprefix}{GROUP_PREFIX}{group_id}{suffix}"

    def chord_key(self, group_id: str) -> str:
        """Return Celery's ``chord-unlock-<gid>`` key (unused by Redis chords)."""
        return f"{self.global_keyprefix}{CHORD_PREFIX}{group_id}"

    @property
    def _ttl(self) -> int:
        return 0 if self.expires is None else max(math.ceil(self.expires), 1)

    # -- writes ------------------------------------------------------------------------

    def _sha(self) -> str:
        if self._script_sha is None:
            self._script_sha = str(self._client.script_load(_SET_SCRIPT))
        return self._script_sha

    def _put_tasks(self, prepared: list[tuple[str, str, dict[str, Any]]]) -> list[bool]:
        encoded = [
            (self.task_key(task_id), self._encode(task_id, document))
            for task_id, _, document in prepared
        ]
        if self._script_mode is None:
            return [self._put_watched(key, value) for key, value in encoded]
        ttl = self._ttl
        for attempt in range(2):
            sha = self._sha()
            try:
                if len(encoded) == 1:
                    key, value = encoded[0]
                    return [
                        bool(
                            self._client.evalsha(
                                sha, 1, key, value, ttl, self._script_mode
                            )
                        )
                    ]
                pipe = self._client.pipeline(transaction=False)
                for key, value in encoded:
                    pipe.evalsha(sha, 1, key, value, ttl, self._script_mode)
                return [bool(item) for item in pipe.execute()]
            except NoScriptError:
                # The server lost its script cache (restart, SCRIPT FLUSH).
                self._script_sha = None
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _put_watched(self, key: str, value: bytes) -> bool:
        """Check-and-set in a WATCH transaction, for serializers Lua cannot read."""
        ttl = self._ttl
        with self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    current = pipe.get(key)
                    if current is not None and self._stored_success(current):
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    if ttl:
                        pipe.execute_command("SETEX", key, ttl, value)
                    else:
                        pipe.set(key, value)
                    pipe.publish(key, value)
                    pipe.execute()
                    return True
                except WatchError:
                    continue

    def _stored_success(self, value: bytes) -> bool:
        try:
            document = self._decode(value)
        except Exception:  # noqa: BLE001 - an unreadable value is not a SUCCESS
            return False
        return isinstance(document, dict) and document.get("status") == states.SUCCESS

    def _set_published(self, key: str, value: bytes) -> None:
        """SETEX and PUBLISH in one transaction, as Celery's ``set``."""
        pipe = self._client.pipeline()
        if self._ttl:
            pipe.execute_command("SETEX", key, self._ttl, value)
        else:
            pipe.set(key, value)
        pipe.publish(key, value)
        pipe.execute()

    # -- reads -------------------------------------------------------------------------

    def _load_document(self, value: bytes | None) -> dict[str, Any] | None:
        if value is None:
            return None
        document = self._decode(value)
        return document if isinstance(document, dict) else None

    def _get_task(self, task_id: str) -> dict[str, Any] | None:
        return self._load_document(self._client.get(self.task_key(task_id)))

    def _get_tasks(self, task_ids: list[str]) -> list[dict[str, Any] | None]:
        values = self._client.mget([self.task_key(task_id) for task_id in task_ids])
        return [self._load_document(value) for value in values]

    def _task_exists(self, task_id: str) -> bool:
        return bool(self._client.exists(self.task_key(task_id)))

    def _delete_task(self, task_id: str) -> None:
        self._client.delete(self.task_key(task_id))

    # -- groups and chords -------------------------------------------------------------

    def _put_group(self, group_id: str, document: dict[str, Any]) -> None:
        self._set_published(self.group_key(group_id), self._encode(group_id, document))

    def _get_group(self, group_id: str) -> dict[str, Any] | None:
        return self._load_document(self._client.get(self.group_key(group_id)))

    def _delete_group(self, group_id: str) -> None:
        self._client.delete(self.group_key(group_id))

    def _put_chord_size(self, group_id: str, size: int) -> None:
        self._set_published(self.group_key(group_id, ".s"), str(size).encode())

    def _chord_part(
        self,
        group_id: str,
        task_id: str,
        state: str,
        result: Any,
        index: int | None,
        size: int | None,
    ) -> list[list[Any]] | None:
        jkey = self.group_key(group_id, ".j")
        tkey = self.group_key(group_id, ".t")
        skey = self.group_key(group_id, ".s")
        entry = self._encode(task_id, [1, task_id, state, result])
        score = float("inf") if index is None else float(index)
        pipe = self._client.pipeline()
        pipe.zadd(jkey, {entry: score})
        pipe.zcount(jkey, "-inf", "+inf")
        pipe.get(tkey)
        pipe.get(skey)
        if self._ttl:
            pipe.expire(jkey, self._ttl)
            pipe.expire(tkey, self._ttl)
            pipe.expire(skey, self._ttl)
        # One MULTI/EXEC: exactly one caller sees the final count. Not retried,
        # though ZADD of the same entry would be harmless.
        replies = self._once("chord_part_return", pipe.execute)
        count, extra, stored_size = int(replies[1]), replies[2], replies[3]
        if stored_size is not None:
            total = int(stored_size)
        elif size is not None:
            total = size
        else:
            members = self.restore_group(group_id)
            if members is None:
                from .errors import ResultStoreError

                raise ResultStoreError(
                    f"chord {group_id} has no known size: call set_chord_size() "
                    "before the header tasks finish, or pass size="
                )
            total = len(members)
        total += int(extra or 0)
        if count != total:
            return None
        pipe = self._client.pipeline()
        pipe.zrange(jkey, 0, -1)
        pipe.delete(jkey, tkey, skey)
        values = self._retrying("chord_part_return", pipe.execute)[0]
        return [self._decode(value) for value in values]

    def _delete_chord(self, group_id: str) -> None:
        self._client.delete(
            self.group_key(group_id, ".j"),
            self.group_key(group_id, ".t"),
            self.group_key(group_id, ".s"),
        )

    # -- wait --------------------------------------------------------------------------

    def _acquire_listener(self) -> _Listener:
        if self._listener is not None:
            return self._listener
        key = (os.getpid(), self._identity)
        with _listeners_lock:
            listener = _listeners.get(key)
            if listener is None or listener._closed:
                listener = _Listener(self, key)
                _listeners[key] = listener
            listener.users += 1
            self._listener = listener
        return listener

    def _wait(
        self, task_id: str, deadline: float | None, cap: float
    ) -> dict[str, Any] | None:
        key = self.task_key(task_id)
        channel = key.encode()
        listener = self._acquire_listener()
        waiter = _Waiter()
        try:
            self._retrying("wait", listener.watch, channel, waiter, deadline)
        except ResultStoreConnectionError:
            raise
        try:
            while True:
                # Subscribed first, then read: a result stored before the
                # subscription is found here, one stored after is pushed.
                waiter.reconnected = False
                document = self._retrying("wait", self._get_task, task_id)
                if (
                    document is not None
                    and document.get("status") in states.READY_STATES
                ):
                    return document
                while True:
                    remaining = (
                        None if deadline is None else deadline - time.monotonic()
                    )
                    if remaining is not None and remaining <= 0:
                        return None
                    if not waiter.event.wait(remaining):
                        return None
                    waiter.event.clear()
                    if waiter.error is not None:
                        raise waiter.error
                    while waiter.messages:
                        document = self._load_document(waiter.messages.popleft())
                        if (
                            document is not None
                            and document.get("status") in states.READY_STATES
                        ):
                            return document
                    if waiter.reconnected:
                        break
        finally:
            listener.unwatch(channel, waiter)

    def close(self) -> None:
        """Close the pool; the shared pub/sub connection goes with its last user."""
        super().close()
        listener, self._listener = self._listener, None
        if listener is not None:
            with _listeners_lock:
                listener.users -= 1
                if listener.users <= 0:
                    _listeners.pop(listener.key, None)
                    listener.close()
        self._client.close()
        self._client.connection_pool.disconnect()
