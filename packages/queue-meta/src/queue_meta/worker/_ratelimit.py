"""Per-task rate limits: a token bucket that never blocks other tasks."""

from __future__ import annotations

import re
import time

from queue_meta.errors import ConfigurationError

__all__ = ["TokenBucket", "parse_rate"]

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")
_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_rate(value: object, *, where: str = "rate_limit") -> float | None:
    """Parse ``"100/s"``, ``"10/m"``, ``"2/h"`` or a number (per second).

    Returns:
        Tasks per second, or ``None`` for no limit (``None``, ``0``, ``""``).

    Raises:
        ConfigurationError: The value has another form.
    """
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ConfigurationError(f"{where} must not be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        match = _RATE.match(value)
        if match:
            amount = float(match.group(1))
            return amount / _PERIODS[match.group(2)] if amount else None
    raise ConfigurationError(
        f"{where} must look like '100/s', '10/m' or '2/h' (or a number per second), "
        f"got {value!r}"
    )


class TokenBucket:
    """*rate* tokens per second, holding at most *capacity*.

    Not thread-safe: the worker's consumer thread owns its buckets.
    """

    def __init__(self, rate: float, capacity: float = 1.0) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self._tokens = self.capacity
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(
            self.capacity, self._tokens + (now - self._stamp) * self.rate
        )
        self._stamp = now

    def take(self) -> bool:
        """Take one token if there is one."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until a token is available."""
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self.rate)
