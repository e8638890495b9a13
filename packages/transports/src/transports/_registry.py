"""Finding the transport class for a URL scheme, and :func:`connect`."""

from __future__ import annotations

import threading
from typing import Any

from msgwire.plugins import load_plugin, plugin_names

from ._url import split_scheme
from .base import Transport
from .errors import TransportError, UnknownSchemeError

__all__ = ["GROUP", "connect", "resolve"]

#: The entry point group transports register in, keyed by URL scheme.
GROUP = "transports.backends"

_cache: dict[str, type[Transport]] = {}
_lock = threading.Lock()


def resolve(url: str) -> type[Transport]:
    """Return the transport class registered for the scheme of *url*.

    The part of the scheme before ``+`` names the implementation
    (``sqlalchemy+postgresql+psycopg://`` is the ``sqlalchemy`` transport).
    Each scheme is imported the first time it is asked for, then cached.

    Raises:
        InvalidURLError: *url* has no ``scheme://``.
        UnknownSchemeError: No installed distribution provides the scheme.
        MissingDriverError: The transport's driver extra is not installed.
        PluginConflictError: Two distributions register the scheme.
    """
    _, implementation = split_scheme(url)
    found = _cache.get(implementation)
    if found is not None:
        return found
    with _lock:
        loaded = load_plugin(GROUP, implementation)
        if loaded is None:
            raise UnknownSchemeError(implementation, plugin_names(GROUP))
        if not (isinstance(loaded, type) and issubclass(loaded, Transport)):
            raise TransportError(
                f"entry point {implementation!r} in {GROUP!r} is {loaded!r}, not a "
                "Transport subclass; fix or uninstall the distribution providing it"
            )
        _cache[implementation] = loaded
        return loaded


def connect(url: str, **options: Any) -> Transport:
    """Open a connection to the broker at *url*.

    Args:
        url: ``memory://``, ``sqlite:///path``, ``postgresql://...``,
            ``mysql://...``, ``sqlalchemy+<dialect>[+driver]://...`` or the URL
            of any installed transport; see the README for each form.
        **options: Keyword options: the common ones of
            :class:`~transports.Transport` (``lease``, ``renew_interval``,
            ``max_retries``, ``retry_backoff_max``) and the transport's own.

    Raises:
        InvalidURLError: The URL or an option has the wrong form.
        UnknownSchemeError: No installed transport handles the scheme.
        MissingDriverError: The transport's driver extra is not installed.
        TransportConnectionError: The broker stayed unreachable.
    """
    return resolve(url)(url, **options)
