"""URL helpers: scheme splitting, password masking and option checks."""

from __future__ import annotations

import math
import re

from .errors import InvalidURLError

__all__ = [
    "check_name",
    "check_seconds",
    "mask_text",
    "mask_url",
    "split_scheme",
    "to_bool",
    "to_float",
    "to_int",
]

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s,;]*:)[^@\s]*@")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def mask_url(url: str) -> str:
    """Return *url* with every password replaced by ``***``.

    Handles URLs that list several hosts and the ``;``-separated failover form.
    """
    return _PASSWORD.sub(r"\g<head>***@", url)


def mask_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Return *text* with URLs masked and each of *secrets* replaced by ``***``."""
    text = mask_url(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def split_scheme(url: object) -> tuple[str, str]:
    """Return ``(scheme, implementation)`` of *url*, both lowercase.

    The implementation is the part of the scheme before the first ``+``:
    ``sqlalchemy+postgresql+psycopg://...`` is implemented by ``sqlalchemy``.

    Raises:
        InvalidURLError: *url* is not a string of the form ``scheme://...``.
    """
    if not isinstance(url, str):
        raise InvalidURLError(
            "a broker URL must be a str such as 'sqlite:///broker.db' or "
            f"'memory://', got {type(url).__name__}"
        )
    scheme, sep, _ = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        raise InvalidURLError(
            f"invalid broker URL {mask_url(url)!r}: expected scheme://..., for "
            "example 'sqlite:///broker.db', 'redis://localhost:6379/0' or 'memory://'"
        )
    scheme = scheme.lower()
    return scheme, scheme.partition("+")[0]


def _bad(where: str, name: str, value: object, expected: str) -> InvalidURLError:
    return InvalidURLError(f"option {name}={value!r} of {where} must be {expected}")


def to_float(
    where: str, name: str, value: object, *, allow_none: bool = False
) -> float | None:
    """Convert an option to float seconds (finite, not negative), naming it.

    Raises:
        InvalidURLError: The value is not such a number (or ``None`` if allowed).
    """
    if value is None or (allow_none and value in ("", "none", "None")):
        if allow_none:
            return None
        raise _bad(where, name, value, "a number of seconds")
    if isinstance(value, bool):
        raise _bad(where, name, value, "a number of seconds")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _bad(where, name, value, "a number of seconds") from None
    if number < 0 or not math.isfinite(number):
        raise _bad(where, name, value, "a finite, non-negative number of seconds")
    return number


def to_int(where: str, name: str, value: object, *, minimum: int = 0) -> int:
    """Convert an option to an int of at least *minimum*.

    Raises:
        InvalidURLError: The value is not such an integer.
    """
    if isinstance(value, bool):
        raise _bad(where, name, value, f"an integer >= {minimum}")
    try:
        number: int = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise _bad(where, name, value, f"an integer >= {minimum}") from None
    if number < minimum or (isinstance(value, float) and value != number):
        raise _bad(where, name, value, f"an integer >= {minimum}")
    return number


def to_bool(where: str, name: str, value: object, also: str = "") -> bool:
    """Convert an option to bool (``true/false``, ``1/0``, ``yes/no``, ``on/off``).

    *also* names the other values the option takes, for the error message.

    Raises:
        InvalidURLError: The value is none of those.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise _bad(where, name, value, f"true or false{' ' + also if also else ''}")


def check_name(what: str, value: object, *, allow_empty: bool = False) -> str:
    """Return *value* if it is a usable queue, exchange or routing key name.

    Raises:
        TypeError: *value* is not a str.
        ValueError: *value* is empty (unless allowed) or longer than 255 characters.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    if not value and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    if len(value) > 255:
        raise ValueError(
            f"{what} {value[:40]!r}... is {len(value)} characters long; "
            "at most 255 are allowed"
        )
    return value


def check_seconds(
    what: str, value: object, *, positive: bool = False, allow_none: bool = True
) -> float | None:
    """Return *value* as float seconds, or ``None`` if that is allowed.

    Raises:
        TypeError: *value* is not a number.
        ValueError: *value* is negative (or zero where *positive*), NaN or infinite.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{what} must be a number of seconds, got {type(value).__name__} {value!r}"
        )
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(
            f"{what} must be a finite, {kind} number of seconds, got {value!r}"
        )
    return number
