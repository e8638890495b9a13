"""URL helpers: scheme splitting, password masking, typed query options."""

from __future__ import annotations

import re

from .errors import InvalidURLError

__all__ = [
    "mask_text",
    "mask_url",
    "split_scheme",
    "to_bool",
    "to_float",
    "to_int",
]

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s,;]*:)[^@\s]*@")


def mask_url(url: str) -> str:
    """Return *url* with every password replaced by ``***``.

    Handles URLs that list several hosts (``sentinel://:pw@h1,h2``) and
    kombu's ``;``-separated form.
    """
    return _PASSWORD.sub(r"\g<head>***@", url)


def mask_text(text: str, secrets: tuple[str, ...]) -> str:
    """Return *text* with URLs masked and each of *secrets* replaced by ``***``."""
    text = mask_url(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def split_scheme(url: str) -> tuple[str, str]:
    """Return ``(scheme, implementation)`` of *url*.

    The implementation is the part of the scheme before the first ``+``:
    ``sqlalchemy+postgresql+psycopg://...`` is implemented by ``sqlalchemy``.

    Raises:
        InvalidURLError: *url* is not a string of the form ``scheme://...``.
    """
    if not isinstance(url, str):
        raise InvalidURLError(
            f"a result store URL must be a str such as 'redis://localhost:6379/0',"
            f" got {type(url).__name__}"
        )
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise InvalidURLError(
            f"invalid result store URL {mask_url(url)!r}: expected scheme://..., "
            "for example 'redis://localhost:6379/0' or 'sqlite:///results.db'"
        )
    scheme = scheme.lower()
    return scheme, scheme.partition("+")[0]


def _bad(url: str, name: str, value: object, expected: str) -> InvalidURLError:
    return InvalidURLError(
        f"option {name}={value!r} of result store {mask_url(url)!r} must be {expected}"
    )


def to_float(
    url: str, name: str, value: object, *, allow_none: bool = False
) -> float | None:
    """Convert an option to float seconds, naming it in the error.

    Raises:
        InvalidURLError: The value is not a non-negative number.
    """
    if value is None or (allow_none and value in ("", "none", "None")):
        if allow_none:
            return None
        raise _bad(url, name, value, "a number of seconds")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _bad(url, name, value, "a number of seconds") from None
    if number < 0 or number != number:
        raise _bad(url, name, value, "a non-negative number of seconds")
    return number


def to_int(url: str, name: str, value: object, *, minimum: int = 0) -> int:
    """Convert an option to an int of at least *minimum*.

    Raises:
        InvalidURLError: The value is not such an integer.
    """
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise _bad(url, name, value, f"an integer >= {minimum}") from None
    if number < minimum:
        raise _bad(url, name, value, f"an integer >= {minimum}")
    return int(number)


def to_bool(url: str, name: str, value: object) -> bool:
    """Convert an option to bool (``true/false``, ``1/0``, ``yes/no``).

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
    raise _bad(url, name, value, "true or false")
