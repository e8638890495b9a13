"""ISO-8601 parsing that behaves the same on every supported Python."""

from __future__ import annotations

import sys
from datetime import datetime, timezone, tzinfo

__all__ = ["format_datetime", "parse_datetime"]

_NEEDS_Z_FIX = sys.version_info < (3, 11)


def parse_datetime(text: str, *, naive_tz: tzinfo | None = timezone.utc) -> datetime:
    """Parse an ISO-8601 date-time; a naive value is placed in *naive_tz*.

    With ``naive_tz=None`` a naive value is read as the system's local time.

    Raises:
        ValueError: *text* is not an ISO-8601 date-time.
    """
    if _NEEDS_Z_FIX and text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return (
            value.astimezone() if naive_tz is None else value.replace(tzinfo=naive_tz)
        )
    return value


def format_datetime(value: datetime) -> str:
    """Return *value* in ISO-8601 form, reading a naive value as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()
