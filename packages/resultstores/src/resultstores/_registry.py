"""Finding the store class for a URL scheme, and :func:`connect`."""

from __future__ import annotations

import threading
from typing import Any

from msgwire.plugins import load_plugin, plugin_names

from ._url import split_scheme
from .base import ResultStore
from .errors import ResultStoreError, UnknownSchemeError

__all__ = ["GROUP", "connect", "resolve"]

#: The entry point group stores register in, keyed by URL scheme.
GROUP = "resultstores.backends"

_cache: dict[str, type[ResultStore]] = {}
_lock = threading.Lock()


def resolve(url: str) -> type[ResultStore]:
    """Return the store class registered for the scheme of *url*.

    The part of the scheme before ``+`` names the implementation
    (``sqlalchemy+postgresql+psycopg://`` is the ``sqlalchemy`` store). Each
    scheme is imported the first time it is asked for, then cached.

    Raises:
        InvalidURLError: *url* has no ``scheme://``.
        UnknownSchemeError: No installed distribution provides the scheme.
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
        if not (isinstance(loaded, type) and issubclass(loaded, ResultStore)):
            raise ResultStoreError(
                f"entry point {implementation!r} in {GROUP!r} is {loaded!r}, not a "
                "ResultStore subclass; fix or uninstall the distribution providing it"
            )
        _cache[implementation] = loaded
        return loaded


def connect(url: str, **options: Any) -> ResultStore:
    """Open the result store at *url*.

    Args:
        url: ``redis://``, ``rediss://``, ``sentinel://``, ``sqlite://``,
            ``postgresql://``, ``mysql://``, ``sqlalchemy+<dialect>://``,
            ``memcached://``, ``mongodb://``, ``couchdb://``,
            ``cassandra://`` or ``memory://``; see the README for each form.
        **options: Keyword options: the common ones of
            :class:`~resultstores.ResultStore` (``serializer``, ``accept``,
            ``expires``, ``exception_modules``...) and the store's own.

    Raises:
        InvalidURLError: The URL or an option has the wrong form.
        UnknownSchemeError: No installed store handles the scheme.
        MissingDriverError: The store's driver extra is not installed.
    """
    return resolve(url)(url, **options)
