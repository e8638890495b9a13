"""Result store on memcached, through pymemcache.

URL form: ``memcached://host[:port][,host2[:port]...]`` (``memcache://`` too;
port 11211 by default). Several hosts are spread by pymemcache's hash client.

Options (keyword-only, besides the common ones): ``keyprefix`` (Celery's
underscore rule), ``max_item_size`` (bytes, 1 MiB: memcached's default item
limit, ``-I``), ``connect_timeout`` and ``timeout`` (seconds), ``max_pool_size``.

Capabilities: native expiry (expiries past 30 days are sent as absolute times,
as memcached requires); a stored SUCCESS is kept with ``gets``/``cas``;
chords count with ``add`` + ``incr`` (atomic in the server); ``wait`` polls.
A result whose key and value exceed ``max_item_size`` raises
:class:`~resultstores.ResultTooLargeError` before anything is written: memcached
would refuse it, and nothing is ever truncated or split.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .base import Capabilities
from .errors import (
    InvalidURLError,
    MissingDriverError,
    ResultStoreError,
    ResultTooLargeError,
)
from .kv import KeyValueResultStore

try:
    from pymemcache.client.base import PooledClient
    from pymemcache.client.hash import HashClient
    from pymemcache.exceptions import (
        MemcacheServerError,
        MemcacheUnexpectedCloseError,
    )
except ImportError as _import_error:  # pragma: no cover - depends on the extras
    raise MissingDriverError("memcached", "memcached") from _import_error

__all__ = ["MemcachedResultStore"]

_THIRTY_DAYS = 30 * 24 * 3600
_ITEM_OVERHEAD = 64  # memcached's item header and suffix, rounded up


class MemcachedResultStore(KeyValueResultStore):
    """Results in memcached, under Celery's key names.

    Args:
        url: ``memcached://host:port[,host:port...]``.
        keyprefix: Prepended to every key.
        max_item_size: The server's item size limit in bytes.
        connect_timeout: Seconds to connect.
        timeout: Seconds per command.
        max_pool_size: Connections per server.
        **options: The common options of :class:`~resultstores.ResultStore`.

    Raises:
        InvalidURLError: The URL names no usable host.
        MissingDriverError: pymemcache is not installed.
    """

    name: ClassVar[str] = "memcached"
    capabilities: ClassVar[Capabilities] = Capabilities(
        native_ttl=True, chords=True, wait="poll", max_result_size=1024 * 1024
    )
    connection_errors = (
        MemcacheUnexpectedCloseError,
        ConnectionError,
        TimeoutError,
        OSError,
    )

    def __init__(
        self,
        url: str,
        *,
        keyprefix: str = "",
        max_item_size: int = 1024 * 1024,
        connect_timeout: float = 5.0,
        timeout: float = 5.0,
        max_pool_size: int = 16,
        **options: Any,
    ) -> None:
        super().__init__(url, keyprefix=keyprefix, **options)
        servers = []
        for part in url.partition("://")[2].split("?")[0].split(","):
            text = part.strip().strip("/")
            if not text:
                continue
            parts = urlsplit("//" + text)
            try:
                servers.append((parts.hostname or "127.0.0.1", parts.port or 11211))
            except ValueError:
                raise InvalidURLError(
                    f"invalid memcached address {text!r} in {self.url!r}"
                ) from None
        if not servers:
            servers = [("127.0.0.1", 11211)]
        self.servers = servers
        self.max_item_size = max_item_size
        self.max_result_size = max_item_size - _ITEM_OVERHEAD - 250
        common: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "timeout": timeout,
            "no_delay": True,
        }
        if len(servers) == 1:
            self._client: Any = PooledClient(
                servers[0], max_pool_size=max_pool_size, **common
            )
        else:
            self._client = HashClient(
                servers,
                use_pooling=True,
                max_pool_size=max_pool_size,
                retry_attempts=0,
                **common,
            )

    def _expire(self, ttl: float | None) -> int:
        if ttl is None:
            return 0
        seconds = max(int(ttl + 0.999), 1)
        # memcached reads more than 30 days as an absolute Unix time.
        return seconds if seconds <= _THIRTY_DAYS else int(time.time()) + seconds

    def _check(self, key: str, value: bytes) -> None:
        if len(key) > 250:
            raise ResultStoreError(
                f"memcached keys are at most 250 bytes; {key[:60]!r}... is {len(key)}: "
                "use shorter task ids or a shorter keyprefix"
            )
        size = len(key) + len(value) + _ITEM_OVERHEAD
        if size > self.max_item_size:
            raise ResultTooLargeError(
                self.name,
                key,
                len(value),
                self.max_item_size - len(key) - _ITEM_OVERHEAD,
            )

    # -- primitives ----------------------------------------------------------------

    def _kv_get(self, key: str) -> bytes | None:
        value = self._client.get(key)
        return None if value is None else bytes(value)

    def _kv_get_many(self, keys: list[str]) -> list[bytes | None]:
        found = self._client.get_many(keys) if keys else {}
        return [None if found.get(key) is None else bytes(found[key]) for key in keys]

    def _kv_put_result(
        self, key: str, value: bytes, state: str, ttl: float | None
    ) -> bool:
        self._check(key, value)
        expire = self._expire(ttl)
        for _ in range(100):
            current, cas = self._client.gets(key)
            try:
                if current is None:
                    if self._client.add(key, value, expire=expire, noreply=False):
                        return True
                    continue  # another writer added it first: look again
                if self._is_success(bytes(current)):
                    return False
                if self._client.cas(key, value, cas, expire=expire, noreply=False):
                    return True
            except MemcacheServerError as exc:
                raise self._too_large(key, value, exc) from exc
        raise ResultStoreError(
            f"memcached result store at {self.url}: {key} kept changing during "
            "100 compare-and-set attempts"
        )

    def _too_large(self, key: str, value: bytes, exc: BaseException) -> BaseException:
        if "too large" in str(exc).lower():
            return ResultTooLargeError(self.name, key, len(value), self.max_item_size)
        return ResultStoreError(f"memcached refused {key}: {exc}")

    def _kv_set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._check(key, value)
        try:
            self._client.set(key, value, expire=self._expire(ttl), noreply=False)
        except MemcacheServerError as exc:
            raise self._too_large(key, value, exc) from exc

    def _kv_add(self, key: str, value: bytes, ttl: float | None) -> bool:
        self._check(key, value)
        return bool(
            self._client.add(key, value, expire=self._expire(ttl), noreply=False)
        )

    def _kv_delete(self, keys: list[str]) -> None:
        if keys:
            self._client.delete_many(keys, noreply=False)

    def _kv_incr(self, key: str, ttl: float | None) -> int:
        expire = self._expire(ttl)
        for _ in range(100):
            value = self._client.incr(key, 1, noreply=False)
            if value is not None:
                return int(value)
            # Absent: create it at 0 (only one creator wins), then count.
            self._client.add(key, b"0", expire=expire, noreply=False)
        raise ResultStoreError(
            f"memcached result store at {self.url}: counter {key} keeps disappearing"
        )

    def close(self) -> None:
        """Close every pooled connection."""
        super().close()
        self._client.close()
