"""transports: moving messages between producers and consumers over brokers.

This release provides the package's error hierarchy; the broker interface and
the memory, SQLAlchemy, Redis and AMQP transports follow (see CHANGELOG.md).
"""

from __future__ import annotations

from importlib.metadata import version as _version

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
    "DeclarationMismatchError",
    "InvalidURLError",
    "MissingDriverError",
    "TransportClosedError",
    "TransportConnectionError",
    "TransportError",
    "UnknownSchemeError",
    "UnroutableError",
    "__version__",
]
