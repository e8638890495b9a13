"""The exceptions queue-meta raises, under one base class, :class:`QueueMetaError`.

The libraries keep their own hierarchies (``msgwire.MsgwireError``,
``transports.TransportError``, ...); queue-meta adds the errors of the
application layer. Every exception pickles with all its arguments.
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "NotRegisteredError", "QueueMetaError"]


class QueueMetaError(Exception):
    """Base class for every error raised by queue-meta itself."""


class ConfigurationError(QueueMetaError, ValueError):
    """A setting is unknown, misspelled or of the wrong type."""


class NotRegisteredError(QueueMetaError, KeyError):
    """A message names a task that is not registered with the app.

    Attributes:
        name: The task name.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"task {self.name!r} is not registered"

    def __reduce__(self) -> tuple[type[NotRegisteredError], tuple[str]]:
        return (type(self), (self.name,))
