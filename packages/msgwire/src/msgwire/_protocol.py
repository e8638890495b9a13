"""Celery's task message, protocol version 2, as a typed object.

A task message has three layers: headers (task name, id, eta, retries, time
limits...), properties (correlation id, reply-to, content type, priority...)
and a body, the serialized ``[args, kwargs, embed]``. :meth:`TaskMessage.encode`
produces the three layers for any transport; :meth:`TaskMessage.decode` reads
them back, and also reads protocol version 1 messages and Celery's hybrid
1/2 messages into the same object.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, NamedTuple

from ._registry import Registry, default_registry
from ._saferepr import saferepr
from ._timeutil import format_datetime, parse_datetime
from .errors import MalformedMessageError

__all__ = [
    "REPR_MAXSIZE",
    "Embed",
    "TaskMessage",
    "TimeLimit",
    "WireMessage",
    "anon_nodename",
]

#: Length budget of the ``argsrepr`` and ``kwargsrepr`` headers, as in Celery.
REPR_MAXSIZE = 1024

# Headers this module reads into fields; any other header is kept in
# TaskMessage.headers. "compression" belongs to the body encoding.
_KNOWN_HEADERS = frozenset(
    {
        "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index",
        "retries", "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr",
        "origin", "ignore_result", "replaced_task_nesting", "stamped_headers",
        "stamps", "compression", "meth",
    },
)  # fmt: skip


_new_object = object.__new__
_STR_OR_NONE = (str, type(None))
_OPTIONAL_STR_HEADERS = (
    "root_id", "parent_id", "group", "shadow",
    "origin", "argsrepr", "kwargsrepr", "lang",
)  # fmt: skip


_nodename: str | None = None


def _forget_nodename() -> None:
    global _nodename
    _nodename = None


os.register_at_fork(after_in_child=_forget_nodename)


def anon_nodename() -> str:
    """Return the node name of a process that is not a worker: ``gen<pid>@<host>``.

    Computed once per process (a forked child computes its own).
    """
    global _nodename
    if _nodename is None:
        _nodename = f"gen{os.getpid()}@{socket.gethostname()}"
    return _nodename


class TimeLimit(NamedTuple):
    """A task's time limits in seconds; on the wire ``[hard, soft]`` in that order."""

    hard: float | None = None
    soft: float | None = None


_NO_LIMITS = TimeLimit()


@dataclass(slots=True)
class Embed:
    """The third element of the body: what runs after the task.

    Signatures are plain dicts in Celery's form (``task``, ``args``, ``kwargs``,
    ``options``, ``subtask_type``, ``immutable``).

    Attributes:
        callbacks: Signatures applied with the result on success (``link``).
        errbacks: Signatures applied on failure (``link_error``).
        chain: The rest of a chain, **reversed**: the last element runs next.
        chord: The chord body, on each task of a chord's header.
    """

    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    chain: list[dict[str, Any]] | None = None
    chord: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        """Return the embed mapping as it is serialized in the body."""
        return {
            "callbacks": self.callbacks,
            "errbacks": self.errbacks,
            "chain": self.chain,
            "chord": self.chord,
        }


@dataclass(slots=True)
class WireMessage:
    """An encoded message, ready for any transport.

    Attributes:
        body: The serialized (and possibly compressed) body.
        headers: Message headers (AMQP application headers; the envelope's
            ``headers`` on Redis).
        properties: ``content_type``, ``content_encoding``, ``correlation_id``,
            ``reply_to``, ``delivery_mode``, ``priority`` and, when the task
            expires, ``expiration`` in milliseconds as a string.
    """

    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]


def _fail(what: str, value: Any) -> MalformedMessageError:
    return MalformedMessageError(f"malformed task message: {what}, got {value!r:.200}")


def _str_or_none(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _fail(f"header {name!r} must be a string or null", value)


def _required_str(headers: Mapping[str, Any], name: str) -> str:
    value = headers.get(name)
    if isinstance(value, str) and value:
        return value
    if value is None:
        raise MalformedMessageError(
            f"malformed task message: the required header {name!r} is missing",
        )
    raise _fail(f"header {name!r} must be a non-empty string", value)


def _int(headers: Mapping[str, Any], name: str, default: int) -> int:
    value = headers.get(name)
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _fail(f"header {name!r} must be a non-negative integer", value)


def _int_or_none(headers: Mapping[str, Any], name: str) -> int | None:
    value = headers.get(name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise _fail(f"header {name!r} must be an integer or null", value)


def _seconds(value: Any) -> float | None:
    if value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
    ):
        return value
    raise _fail("header 'timelimit' must hold numbers or nulls", value)


def _timelimit(headers: Mapping[str, Any]) -> TimeLimit:
    value = headers.get("timelimit")
    if value is None:
        return TimeLimit()
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return TimeLimit(_seconds(value[0]), _seconds(value[1]))
    raise _fail("header 'timelimit' must be [hard, soft]", value)


def _when(
    headers: Mapping[str, Any], name: str, naive_tz: tzinfo | None
) -> datetime | None:
    value = headers.get(name)
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return (
                value.astimezone()
                if naive_tz is None
                else value.replace(tzinfo=naive_tz)
            )
        return value
    if isinstance(value, str):
        try:
            return parse_datetime(value, naive_tz=naive_tz)
        except ValueError:
            pass
    raise _fail(f"header {name!r} must be an ISO-8601 date-time or null", value)


def _signature_list(value: Any, name: str) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        for item in value:
            if type(item) is not dict and not isinstance(item, dict):
                break
        else:
            return value if type(value) is list else list(value)
    raise _fail(f"embed {name!r} must be a list of signature objects or null", value)


def _embed(value: Any) -> Embed:
    if value is None:
        return Embed()
    if not _is_mapping(value):
        raise _fail("the body's third element (embed) must be an object or null", value)
    get = value.get
    chord = get("chord")
    if chord is not None and not isinstance(chord, dict):
        raise _fail("embed 'chord' must be a signature object or null", chord)
    return Embed(
        _signature_list(get("callbacks"), "callbacks"),
        _signature_list(get("errbacks"), "errbacks"),
        _signature_list(get("chain"), "chain"),
        chord,
    )


def _is_mapping(value: Any) -> bool:
    # An exact dict skips the slow abstract-base-class check (hot path).
    return type(value) is dict or isinstance(value, Mapping)


def _args_kwargs(args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    if type(args) is not list:
        if not isinstance(args, (list, tuple)):
            raise _fail("task args must be a list", args)
        args = list(args)
    if type(kwargs) is not dict:
        if not isinstance(kwargs, Mapping):
            raise _fail("task kwargs must be an object (a mapping)", kwargs)
        kwargs = dict(kwargs)
    return args, kwargs


@dataclass(slots=True, kw_only=True)
class TaskMessage:
    """One task invocation: what to run, with what, and how.

    Create one with :meth:`new` (which fills the id and origin) or directly.
    Date-times are timezone-aware; a naive one is taken as UTC when encoded.

    Attributes:
        task: The registered task name.
        id: The task id (a UUID string).
        args: Positional arguments.
        kwargs: Keyword arguments.
        embed: Callbacks, errbacks, chain and chord to run afterwards.
        eta: Do not run before this time.
        expires: Do not run after this time.
        retries: How many times the task has been retried.
        timelimit: Hard and soft time limits in seconds.
        root_id: Id of the first task of the workflow (defaults to ``id``).
        parent_id: Id of the task that sent this one.
        group: Group id, for members of a group or chord header.
        group_index: Position within the group.
        shadow: Name shown in logs and events instead of ``task``.
        origin: Node name of the sender.
        argsrepr: Bounded repr of args (computed when encoding if ``None``).
        kwargsrepr: Bounded repr of kwargs (computed when encoding if ``None``).
        ignore_result: The worker should not store the result.
        replaced_task_nesting: Depth of ``Task.replace`` chains.
        stamped_headers: Names of stamp headers (canvas stamping).
        stamps: Stamp name to value.
        lang: Language of the producer, ``"py"``.
        headers: Any other headers, sent and received as they are.
        correlation_id: Defaults to ``id``; RPC results correlate on it.
        reply_to: The caller's reply queue (RPC results).
        priority: 0-9, higher is sooner; ``None`` sends 0.
        delivery_mode: 2 persistent, 1 transient.
        protocol: The protocol version the message was decoded from.
    """

    task: str
    id: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    embed: Embed = field(default_factory=Embed)
    eta: datetime | None = None
    expires: datetime | None = None
    retries: int = 0
    timelimit: TimeLimit = _NO_LIMITS
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    shadow: str | None = None
    origin: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    ignore_result: bool = False
    replaced_task_nesting: int = 0
    stamped_headers: list[str] | None = None
    stamps: dict[str, Any] = field(default_factory=dict)
    lang: str = "py"
    headers: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    reply_to: str = ""
    priority: int | None = None
    delivery_mode: int = 2
    protocol: int = 2

    @classmethod
    def new(
        cls,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TaskMessage:
        """Build a message with a fresh id and this process as its origin.

        Args:
            task: The task name.
            args: Positional arguments.
            kwargs: Keyword arguments.
            **options: Any other field of :class:`TaskMessage`.
        """
        options.setdefault("id", str(uuid.uuid4()))
        options.setdefault("origin", anon_nodename())
        return cls(task=task, args=args, kwargs=kwargs or {}, **options)

    def wire_headers(self) -> dict[str, Any]:
        """Return the protocol 2 headers in Celery's order.

        Custom headers from :attr:`headers` come first; they cannot replace a
        protocol header.
        """
        eta = self.eta
        expires = self.expires
        argsrepr = self.argsrepr
        kwargsrepr = self.kwargsrepr
        headers = {
            "lang": self.lang,
            "task": self.task,
            "id": self.id,
            "shadow": self.shadow,
            "eta": None if eta is None else format_datetime(eta),
            "expires": None if expires is None else format_datetime(expires),
            "group": self.group,
            "group_index": self.group_index,
            "retries": self.retries,
            "timelimit": [self.timelimit[0], self.timelimit[1]],
            "root_id": self.root_id or self.id,
            "parent_id": self.parent_id,
            "argsrepr": saferepr(self.args, REPR_MAXSIZE)
            if argsrepr is None
            else argsrepr,
            "kwargsrepr": (
                saferepr(self.kwargs, REPR_MAXSIZE)
                if kwargsrepr is None
                else kwargsrepr
            ),
            "origin": self.origin or anon_nodename(),
            "ignore_result": self.ignore_result,
            "replaced_task_nesting": self.replaced_task_nesting,
            "stamped_headers": self.stamped_headers,
            "stamps": self.stamps,
        }
        if self.headers:
            custom = {
                key: value for key, value in self.headers.items() if key not in headers
            }
            custom.update(headers)
            return custom
        return headers

    def encode(
        self,
        *,
        registry: Registry | None = None,
        serializer: str = "json",
        compression: str | None = None,
        now: datetime | None = None,
    ) -> WireMessage:
        """Serialize the message into body, headers and properties.

        Args:
            registry: Where codecs come from; the default registry if ``None``.
            serializer: Codec name for the body.
            compression: Compressor name, or ``None``.
            now: The current time, for the ``expiration`` property.

        Raises:
            TypeError: ``args`` is not a list or tuple, or ``kwargs`` not a mapping.
            EncodeError: An argument cannot be serialized with *serializer*.
        """
        if not isinstance(self.args, (list, tuple)):
            raise TypeError(
                f"task args must be a list or tuple, got {type(self.args).__name__}"
            )
        if not _is_mapping(self.kwargs):
            raise TypeError(
                "task keyword arguments must be a mapping, "
                f"got {type(self.kwargs).__name__}",
            )
        headers = self.wire_headers()
        registry = registry or default_registry
        encoded = registry.dumps(
            (self.args, self.kwargs, self.embed.to_wire()),
            serializer,
            compression=compression,
            headers=headers,
        )
        if encoded.compression is not None:
            headers["compression"] = encoded.compression
        properties: dict[str, Any] = {
            "correlation_id": self.correlation_id or self.id,
            "reply_to": self.reply_to,
            "content_type": encoded.content_type,
            "content_encoding": encoded.content_encoding,
            "delivery_mode": self.delivery_mode,
            "priority": self.priority or 0,
        }
        if self.expires is not None:
            expires = self.expires
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=timezone.utc)
            start = time.time() if now is None else now.timestamp()
            remaining_ms = int((expires.timestamp() - start) * 1000)
            properties["expiration"] = str(max(0, remaining_ms))
        return WireMessage(encoded.data, headers, properties)

    @classmethod
    def decode(
        cls,
        body: bytes | bytearray | memoryview | str,
        headers: Mapping[str, Any] | None,
        properties: Mapping[str, Any],
        *,
        registry: Registry | None = None,
        accept: Sequence[str] | frozenset[str] | None = None,
        naive_tz: tzinfo = timezone.utc,
    ) -> TaskMessage:
        """Read a task message of protocol version 2, 1, or the hybrid of both.

        Args:
            body: The body bytes as received.
            headers: The message headers (empty for protocol 1).
            properties: Properties; ``content_type``, ``content_encoding`` are
                used to decode the body.
            registry: Where codecs come from; the default registry if ``None``.
            accept: Codec names or content types allowed; the registry's accept
                list (JSON only by default) if ``None``.
            naive_tz: Zone for naive ``eta``/``expires`` values (a protocol 1
                message with ``utc`` false uses the local zone instead).

        Raises:
            ContentDisallowedError: The body's content type is not accepted.
            MalformedMessageError: A required header is missing or a field has
                the wrong shape.
            DecodeError: The body cannot be decoded.
        """
        if headers is None:
            headers = {}
        elif not _is_mapping(headers):
            raise _fail("headers must be a mapping", headers)
        if not _is_mapping(properties):
            raise _fail("properties must be a mapping", properties)
        registry = registry or default_registry
        compression = headers.get("compression")
        if compression is not None and not isinstance(compression, str):
            raise _fail("header 'compression' must be a string", compression)
        payload = registry.loads(
            body,
            properties.get("content_type"),
            properties.get("content_encoding"),
            accept=accept,
            compression=compression,
            headers=headers,
        )
        if "task" in headers:
            if _is_mapping(payload) and "args" in payload:
                return cls._from_hybrid(payload, headers, properties, naive_tz)
            if not isinstance(payload, (list, tuple)) or len(payload) != 3:
                raise _fail(
                    "a protocol 2 body must be a list of [args, kwargs, embed]", payload
                )
            args, kwargs = _args_kwargs(payload[0], payload[1])
            return cls._build(
                headers, properties, args, kwargs, _embed(payload[2]), naive_tz, 2
            )
        if _is_mapping(payload) and "task" in payload:
            return cls._from_protocol1(payload, properties)
        raise MalformedMessageError(
            "not a task message: it has no 'task' header (protocol 2) and its body "
            "is not an object with a 'task' key (protocol 1); "
            f"got a {type(payload).__name__}",
        )

    @classmethod
    def _from_hybrid(
        cls,
        payload: Mapping[str, Any],
        headers: Mapping[str, Any],
        properties: Mapping[str, Any],
        naive_tz: tzinfo,
    ) -> TaskMessage:
        merged = {key: payload.get(key) for key in _KNOWN_HEADERS if key in payload}
        merged.update(headers)
        args, kwargs = _args_kwargs(payload.get("args", ()), payload.get("kwargs", {}))
        zone = naive_tz if payload.get("utc", True) else None
        return cls._build(merged, properties, args, kwargs, _embed(payload), zone, 2)

    @classmethod
    def _from_protocol1(
        cls, payload: Mapping[str, Any], properties: Mapping[str, Any]
    ) -> TaskMessage:
        fields = dict(payload)
        if "group" not in fields and "taskset" in fields:
            fields["group"] = fields["taskset"]
        args, kwargs = _args_kwargs(fields.get("args", ()), fields.get("kwargs", {}))
        zone = timezone.utc if fields.get("utc", True) else None
        extra = {
            key: value
            for key, value in fields.items()
            if key not in _KNOWN_HEADERS
            and key
            not in {
                "args",
                "kwargs",
                "utc",
                "callbacks",
                "errbacks",
                "chord",
                "taskset",
            }
        }
        message = cls._build(fields, properties, args, kwargs, _embed(fields), zone, 1)
        message.headers = extra
        # Protocol 1 has no repr fields; Celery computes them on receipt.
        if message.argsrepr is None:
            message.argsrepr = saferepr(args, REPR_MAXSIZE)
        if message.kwargsrepr is None:
            message.kwargsrepr = saferepr(kwargs, REPR_MAXSIZE)
        return message

    @classmethod
    def _build(
        cls,
        headers: Mapping[str, Any],
        properties: Mapping[str, Any],
        args: list[Any],
        kwargs: dict[str, Any],
        embed: Embed,
        naive_tz: tzinfo | None,
        protocol: int,
    ) -> TaskMessage:
        # The hot path of every worker. Exact-type checks come first; the
        # helpers, which word the errors, run only when a check fails. Fields
        # are set directly: the 28-keyword constructor costs more than the rest.
        get = headers.get
        task = get("task")
        if type(task) is not str or not task:
            task = _required_str(headers, "task")
        task_id = get("id")
        if type(task_id) is not str or not task_id:
            task_id = _required_str(headers, "id")
        root_id = get("root_id")
        parent_id = get("parent_id")
        group = get("group")
        shadow = get("shadow")
        origin = get("origin")
        argsrepr = get("argsrepr")
        kwargsrepr = get("kwargsrepr")
        lang = get("lang")
        if not (
            type(root_id) in _STR_OR_NONE
            and type(parent_id) in _STR_OR_NONE
            and type(group) in _STR_OR_NONE
            and type(shadow) in _STR_OR_NONE
            and type(origin) in _STR_OR_NONE
            and type(argsrepr) in _STR_OR_NONE
            and type(kwargsrepr) in _STR_OR_NONE
            and type(lang) in _STR_OR_NONE
        ):
            for name in _OPTIONAL_STR_HEADERS:
                _str_or_none(headers, name)
        retries = get("retries")
        if type(retries) is not int or retries < 0:
            retries = _int(headers, "retries", 0)
        nesting = get("replaced_task_nesting")
        if type(nesting) is not int or nesting < 0:
            nesting = _int(headers, "replaced_task_nesting", 0)
        group_index = get("group_index")
        if group_index is not None and type(group_index) is not int:
            group_index = _int_or_none(headers, "group_index")
        timelimit = get("timelimit")
        if timelimit is None:
            limits = _NO_LIMITS
        elif type(timelimit) is list and len(timelimit) == 2:
            limits = tuple.__new__(
                TimeLimit, (_seconds(timelimit[0]), _seconds(timelimit[1]))
            )
        else:
            limits = _timelimit(headers)
        eta = get("eta")
        if eta is not None:
            eta = _when(headers, "eta", naive_tz)
        expires = get("expires")
        if expires is not None:
            expires = _when(headers, "expires", naive_tz)
        stamps = get("stamps")
        if stamps is None:
            stamps = {}
        elif type(stamps) is not dict:
            if not _is_mapping(stamps):
                raise _fail("header 'stamps' must be an object", stamps)
            stamps = dict(stamps)
        stamped = get("stamped_headers")
        if stamped is not None and not (
            isinstance(stamped, list) and all(isinstance(item, str) for item in stamped)
        ):
            raise _fail(
                "header 'stamped_headers' must be a list of names or null", stamped
            )
        other = headers.keys() - _KNOWN_HEADERS
        pget = properties.get
        correlation_id = pget("correlation_id")
        reply_to = pget("reply_to")
        if (correlation_id is not None and not isinstance(correlation_id, str)) or (
            reply_to is not None and not isinstance(reply_to, str)
        ):
            raise _fail(
                "properties 'correlation_id' and 'reply_to' must be strings",
                (correlation_id, reply_to),
            )
        priority = pget("priority")
        if priority is not None and type(priority) is not int:
            raise _fail("property 'priority' must be an integer", priority)
        delivery_mode = pget("delivery_mode") or 2
        if type(delivery_mode) is not int:
            raise _fail("property 'delivery_mode' must be 1 or 2", delivery_mode)

        message: TaskMessage = _new_object(cls)
        message.task = task
        message.id = task_id
        message.args = args
        message.kwargs = kwargs
        message.embed = embed
        message.eta = eta
        message.expires = expires
        message.retries = retries
        message.timelimit = limits
        message.root_id = root_id
        message.parent_id = parent_id
        message.group = group
        message.group_index = group_index
        message.shadow = shadow
        message.origin = origin
        message.argsrepr = argsrepr
        message.kwargsrepr = kwargsrepr
        message.ignore_result = bool(get("ignore_result"))
        message.replaced_task_nesting = nesting
        message.stamped_headers = stamped
        message.stamps = stamps
        message.lang = lang or "py"
        message.headers = {key: headers[key] for key in other} if other else {}
        message.correlation_id = correlation_id
        message.reply_to = reply_to or ""
        message.priority = priority
        message.delivery_mode = delivery_mode
        message.protocol = protocol
        return message
