"""Turning calls into protocol-2 task messages and publishing them.

:func:`prepare` resolves routing and options and encodes one message;
:func:`publish` declares what the messages need and publishes them, in one
broker round trip where the transport batches.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from msgwire import Embed, TaskMessage, TimeLimit

from .app import _as_datetime, route_for
from .canvas import signature
from .errors import ConfigurationError
from .security import signing_serializer

if TYPE_CHECKING:
    import transports

    from .app import App

__all__ = ["Prepared", "prepare", "publish", "publish_retry_policy"]

logger = logging.getLogger(__name__)

#: apply_async options understood here (anything else is a TypeError).
CALL_OPTIONS = frozenset(
    {
        "countdown", "eta", "expires", "queue", "routing_key", "exchange", "priority",
        "serializer", "compression", "headers", "task_id", "link", "link_error",
        "retry", "retry_policy", "time_limit", "soft_time_limit", "ignore_result",
        "shadow", "parent_id", "root_id", "group_id", "group_index", "retries",
        "reply_to", "correlation_id", "chain", "chord", "exchange_type",
        "delivery_mode", "add_to_parent", "immutable",
    }
)  # fmt: skip


@dataclass(slots=True)
class Prepared:
    """An encoded task message and where it goes."""

    task_id: str
    name: str
    queue: str | None
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]


def _signatures(value: Any) -> list[dict[str, Any]] | None:
    if not value:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    return [dict(signature(item)) for item in items]


def prepare(
    app: App,
    name: str,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
    task: Any = None,
) -> Prepared:
    """Build and encode the message for one call.

    Raises:
        TypeError: An unknown option, or arguments of the wrong shape.
        msgwire.EncodeError: An argument cannot be serialized.
    """
    unknown = set(options) - CALL_OPTIONS
    if unknown:
        import difflib

        bad = sorted(unknown)[0]
        close = difflib.get_close_matches(bad, CALL_OPTIONS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TypeError(f"unknown apply_async option {bad!r} for {name}{hint}")
    conf = app.conf
    now = app.now()
    countdown = options.get("countdown")
    eta = _as_datetime(options.get("eta"), now)
    if countdown is not None:
        if eta is not None:
            raise TypeError(f"{name}: give countdown or eta, not both")
        eta = now + timedelta(seconds=float(countdown))
    expires = options.get("expires", getattr(task, "expires", None))
    expires_at = _as_datetime(expires, now)
    route = route_for(app, name, args or (), kwargs or {}, task)
    queue = options.get("queue") or route.get("queue") or getattr(task, "queue", None)
    exchange = options.get("exchange", route.get("exchange"))
    routing_key = options.get("routing_key") or route.get("routing_key")
    if exchange is None:
        exchange = ""
    if not exchange:
        queue = queue or routing_key or conf.task_default_queue
        routing_key = queue
    else:
        routing_key = routing_key or queue or ""
    priority = options.get("priority")
    if priority is None:
        priority = route.get("priority", getattr(task, "priority", None))
    if priority is None:
        priority = conf.task_default_priority
    if priority is not None and (
        not isinstance(priority, int)
        or isinstance(priority, bool)
        or not 0 <= priority <= 9
    ):
        raise ConfigurationError(
            f"{name}: priority must be an int 0-9, got {priority!r}"
        )
    serializer = options.get("serializer") or getattr(task, "serializer", None)
    serializer = signing_serializer(conf) or serializer or conf.task_serializer
    compression = options.get("compression") or getattr(task, "compression", None)
    compression = compression or conf.task_compression
    time_limit = options.get("time_limit")
    soft_limit = options.get("soft_time_limit")
    ignore_result = options.get("ignore_result")
    if ignore_result is None:
        ignore_result = bool(getattr(task, "ignore_result", False))
    from .task import current_request, new_task_id

    parent = current_request()
    parent_id = options.get("parent_id")
    root_id = options.get("root_id")
    if parent is not None and parent.id and parent_id is None:
        parent_id = parent.id
        root_id = root_id or parent.root_id or parent.id
    message = TaskMessage(
        task=name,
        id=options.get("task_id") or new_task_id(),
        args=tuple(args or ()),
        kwargs=dict(kwargs or {}),
        embed=Embed(
            callbacks=_signatures(options.get("link")),
            errbacks=_signatures(options.get("link_error")),
            chain=_signatures(options.get("chain")),
            chord=dict(options["chord"]) if options.get("chord") else None,
        ),
        eta=eta,
        expires=expires_at,
        retries=int(options.get("retries") or 0),
        timelimit=TimeLimit(time_limit, soft_limit),
        root_id=root_id,
        parent_id=parent_id,
        group=options.get("group_id"),
        group_index=options.get("group_index"),
        shadow=options.get("shadow"),
        ignore_result=bool(ignore_result),
        headers=dict(options.get("headers") or {}),
        correlation_id=options.get("correlation_id"),
        reply_to=options.get("reply_to") or _reply_to(app),
        priority=priority,
    )
    wire = message.encode(
        registry=app.registry,
        serializer=serializer,
        compression=compression,
        now=now,
    )
    # The worker records REVOKED for an expired task, so the broker must not
    # drop it silently: the ``expires`` header rules, not an AMQP expiration.
    wire.properties.pop("expiration", None)
    return Prepared(
        message.id,
        name,
        queue,
        exchange,
        routing_key,
        wire.body,
        wire.headers,
        wire.properties,
    )


def _reply_to(app: App) -> str:
    from .rpc import reply_queue_for

    return reply_queue_for(app)


def task_queue_entries(app: App) -> list[dict[str, Any]]:
    """The ``task_queues`` setting with every entry as a dict (names become
    ``{"name": name}``)."""
    return [
        {"name": item} if isinstance(item, str) else item
        for item in app.conf.task_queues or ()
    ]


def queue_spec(app: App, name: str) -> dict[str, Any]:
    """The ``task_queues`` entry named *name* (``{"name": name}`` if none)."""
    for entry in task_queue_entries(app):
        if entry["name"] == name:
            return entry
    return {"name": name}


def _bindings(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A queue entry's bindings: its ``exchange`` first, then ``bindings``.

    Each is ``{"exchange", "routing_key", "exchange_type"}``; a missing
    routing key or type is ``None``, the type defaulting to the entry's.
    """
    found = list(spec.get("bindings") or ())
    if spec.get("exchange"):
        found.insert(
            0, {"exchange": spec["exchange"], "routing_key": spec.get("routing_key")}
        )
    return [
        {
            "exchange": binding["exchange"],
            "routing_key": binding.get("routing_key"),
            "exchange_type": binding.get("exchange_type") or spec.get("exchange_type"),
        }
        for binding in found
    ]


_ARGUMENTS = {  # Celery's queue_arguments -> our declare_queue options
    "x-max-priority": ("max_priority", 1),
    "x-message-ttl": ("message_ttl", 0.001),
    "x-expires": ("expires", 0.001),
}


def declare_queue(app: App, name: str) -> None:
    """Declare queue *name* as ``task_queues`` describes it, once per process.

    Its exchange and bindings are declared too: a queue bound to a topic or
    fanout exchange receives what is published there.
    """
    key = ("", name)
    if key in app._declared:
        return
    spec = queue_spec(app, name)
    options: dict[str, Any] = {}
    if app.conf.task_queue_max_priority is not None:
        options["max_priority"] = app.conf.task_queue_max_priority
    for argument, value in (spec.get("queue_arguments") or {}).items():
        if argument == "x-queue-type":
            options["quorum"] = value == "quorum"
        elif argument in _ARGUMENTS:
            option, scale = _ARGUMENTS[argument]
            options[option] = value if scale == 1 else value * scale
    for option in ("max_priority", "message_ttl", "expires", "durable", "auto_delete"):
        if spec.get(option) is not None:
            options[option] = spec[option]
    transport = app.transport
    transport.declare_queue(name, **options)
    for binding in _bindings(spec):
        exchange = binding["exchange"]
        kind = binding["exchange_type"] or app.conf.task_default_exchange_type
        transport.declare_exchange(exchange, kind)
        routing_key = binding["routing_key"]
        transport.bind(name, exchange, name if routing_key is None else routing_key)
    app._declared.add(key)


def declare_exchange_queues(app: App, exchange: str) -> None:
    """Declare the ``task_queues`` bound to *exchange* (before publishing to it)."""
    for entry in task_queue_entries(app):
        if any(b["exchange"] == exchange for b in _bindings(entry)):
            declare_queue(app, entry["name"])


def declare(app: App, prepared: Prepared) -> None:
    """Declare the queue (and exchange) a message needs, once per process."""
    key = (prepared.exchange, prepared.queue or "")
    if key in app._declared:
        return
    transport = app.transport
    if prepared.queue and app.conf.task_create_missing_queues:
        declare_queue(app, prepared.queue)
    if prepared.exchange:
        declare_exchange_queues(app, prepared.exchange)
        if (prepared.exchange, "") not in app._declared:
            transport.declare_exchange(
                prepared.exchange, _exchange_type(app, prepared.exchange)
            )
            app._declared.add((prepared.exchange, ""))
        if prepared.queue:
            transport.bind(prepared.queue, prepared.exchange, prepared.routing_key)
    app._declared.add(key)


def _exchange_type(app: App, exchange: str) -> str:
    """The type ``task_queues`` gives *exchange*, else the default exchange type."""
    for entry in task_queue_entries(app):
        for binding in _bindings(entry):
            if binding["exchange"] == exchange and binding["exchange_type"]:
                return str(binding["exchange_type"])
    return app.conf.task_default_exchange_type


_POLICY_KEYS = ("max_retries", "interval_start", "interval_step", "interval_max")


def publish_retry_policy(
    app: App, retry: bool | None = None, policy: Mapping[str, Any] | None = None
) -> transports.RetryPolicy:
    """The transport retry policy of one send: ``retry`` and ``retry_policy``.

    ``retry=False`` fails at the first lost connection; *policy* keys override
    the app's ``task_publish_retry_policy`` (``retry_errors`` is accepted and
    ignored: only lost connections are retried).

    Raises:
        ValueError: An unknown key or a bad value in *policy*.
    """
    from transports import RetryPolicy

    conf = app.conf
    if retry is None:
        retry = conf.task_publish_retry
    if not retry:
        return RetryPolicy(max_retries=0)
    base = conf.task_publish_retry_policy
    if not policy:
        key = tuple(base[name] for name in _POLICY_KEYS)
        cached = app._retry_policies.get(key)
        if cached is None:
            cached = RetryPolicy(**dict(zip(_POLICY_KEYS, key, strict=True)))
            app._retry_policies[key] = cached
        return cached
    if not isinstance(policy, Mapping):
        raise ValueError(
            f"retry_policy must be a dict with keys {', '.join(_POLICY_KEYS)}, got "
            f"{policy!r}"
        )
    unknown = sorted(set(policy) - {*_POLICY_KEYS, "retry_errors"})
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], _POLICY_KEYS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown retry_policy key {unknown[0]!r}{hint}")
    merged = {**base, **policy}
    try:
        return RetryPolicy(**{name: merged[name] for name in _POLICY_KEYS})
    except ValueError as exc:
        raise ValueError(f"retry_policy: {exc}") from None


def publish(
    app: App,
    prepared: list[Prepared],
    retry: bool | None = None,
    retry_policy: Mapping[str, Any] | None = None,
) -> None:
    """Publish prepared messages in one batch.

    Raises:
        ValueError: A bad *retry_policy*.
        transports.TransportConnectionError: The broker stayed unreachable
            through the retry policy.
    """
    from transports import Message

    policy = publish_retry_policy(app, retry, retry_policy)
    for item in prepared:
        declare(app, item)
    transport = app.transport
    if len(prepared) == 1:
        item = prepared[0]
        transport.publish(
            item.routing_key,
            item.body,
            exchange=item.exchange,
            headers=item.headers,
            properties=item.properties,
            retry=policy,
        )
        return
    transport.publish_many(
        (
            Message(
                item.routing_key,
                item.body,
                item.exchange,
                item.headers,
                item.properties,
            )
            for item in prepared
        ),
        retry=policy,
    )
