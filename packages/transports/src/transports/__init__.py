"""transports: moving messages between producers and consumers over brokers.

Open a broker with :func:`connect` and a URL; every transport follows
:class:`Transport`::

    from transports import connect

    with connect("sqlite:///broker.db") as conn:
        conn.declare_queue("tasks")
        conn.publish("tasks", b"payload", headers={"task": "x"})
        for delivery in conn.consume(["tasks"], prefetch=100, timeout=1.0):
            delivery.ack()

Message bodies are bytes: serialize payloads with msgwire first.
"""

from __future__ import annotations

from importlib.metadata import version as _version

from ._registry import connect as connect
from ._registry import resolve as resolve
from ._url import mask_url as mask_url
from .base import Binding as Binding
from .base import Capabilities as Capabilities
from .base import Consumer as Consumer
from .base import Delivery as Delivery
from .base import ExchangeSpec as ExchangeSpec
from .base import Message as Message
from .base import Outcome as Outcome
from .base import QueueSpec as QueueSpec
from .base import RetryPolicy as RetryPolicy
from .base import Subscription as Subscription
from .base import Transport as Transport
from .errors import DeclarationMismatchError as DeclarationMismatchError
from .errors import InvalidURLError as InvalidURLError
from .errors import MissingDriverError as MissingDriverError
from .errors import TransportClosedError as TransportClosedError
from .errors import TransportConnectionError as TransportConnectionError
from .errors import TransportError as TransportError
from .errors import UnknownSchemeError as UnknownSchemeError
from .errors import UnroutableError as UnroutableError

__version__ = _version("transports")

__all__ = [
    "Binding",
    "Capabilities",
    "Consumer",
    "DeclarationMismatchError",
    "Delivery",
    "ExchangeSpec",
    "InvalidURLError",
    "Message",
    "MissingDriverError",
    "Outcome",
    "QueueSpec",
    "RetryPolicy",
    "Subscription",
    "Transport",
    "TransportClosedError",
    "TransportConnectionError",
    "TransportError",
    "UnknownSchemeError",
    "UnroutableError",
    "__version__",
    "connect",
    "mask_url",
    "resolve",
]
