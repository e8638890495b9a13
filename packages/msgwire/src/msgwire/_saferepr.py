"""A length-bounded repr of task arguments, with the output Celery gives.

Celery's ``argsrepr`` and ``kwargsrepr`` headers hold a repr of the arguments
cut to a budget of characters (1024 by default): containers nest at most three
deep (deeper ones show as ``[...]``), a string is cut at the last space before
the budget runs out and gets ``...``, and once the budget is spent the output
ends with ``, ...`` followed by the brackets still open, unless nothing was left
out of the open containers, which are then just closed. Strings are quoted with
single quotes and only ``'`` is escaped. This is the output of Celery 5.7's
``saferepr`` (5.6 could drop a closing bracket at the cut). Monitoring tools
show these strings; they are never parsed.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from numbers import Number
from typing import Any

__all__ = ["saferepr"]

# Token kinds streamed by _tokens. A _LITERAL is shown whole, never cut.
_OPEN, _CLOSE, _SEP, _TEXT, _STR, _KEY, _LITERAL = range(7)


def _truncate(text: str, budget: int | None) -> str:
    if budget and len(text) >= budget:
        return text[:budget].rsplit(" ", 1)[0] + "..."
    return text


def _quote(value: str | bytes, budget: int | None) -> str:
    if isinstance(value, str):
        return "'" + _truncate(value, budget).replace("'", "\\'") + "'"
    cut = budget is not None and budget > 0 and len(value) > budget
    chunk = value[:budget] if cut else value
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        text = chunk.hex()
    return "b'" + text + ("...'" if cut else "'")


def _plain_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not stop a send
        return f"<Unrepresentable {type(value)!r}{id(value):#x}: {exc!r}>"


def _brackets(value: Any) -> tuple[str, str] | None:
    if isinstance(value, (set, frozenset)):
        if type(value) is set:
            return "{", "}"
        return f"{type(value).__name__}({{", "})"
    if isinstance(value, tuple):
        return "(", ",)" if len(value) == 1 else ")"
    if isinstance(value, dict):
        return "{", "}"
    if isinstance(value, list):
        return "[", "]"
    return None


def _tokens(
    value: Any, level: int, maxlevels: int, seen: set[int]
) -> Iterator[tuple[int, Any]]:
    if isinstance(value, Decimal):
        yield _TEXT, _plain_repr(value)
        return
    if isinstance(value, Number):
        yield _TEXT, str(value)
        return
    if isinstance(value, (str, bytes)):
        yield _STR, value
        return
    if isinstance(value, (set, frozenset)) and not value:
        yield _TEXT, f"{type(value).__name__}()"
        return
    brackets = _brackets(value)
    if brackets is None:
        yield _TEXT, _plain_repr(value)
        return
    start, end = brackets
    if maxlevels and level >= maxlevels:
        yield _LITERAL, f"{start}...{end}"
        return
    if id(value) in seen:
        yield _TEXT, f"<Recursion on {type(value).__name__} with id={id(value)}>"
        return
    seen.add(id(value))
    yield _OPEN, (start, end)
    if isinstance(value, dict):
        for index, (key, item) in enumerate(value.items()):
            if index:
                yield _SEP, ", "
            yield _KEY, key
            yield _SEP, ": "
            yield from _tokens(item, level + 1, maxlevels, seen)
    else:
        for index, item in enumerate(value):
            if index:
                yield _SEP, ", "
            yield from _tokens(item, level + 1, maxlevels, seen)
    seen.discard(id(value))
    yield _CLOSE, end


_SIMPLE_SCALARS = (int, float, bool, type(None))


def _is_simple(item: Any) -> bool:
    kind = type(item)
    if kind is str:
        return item.isprintable() and "'" not in item and "\\" not in item
    return kind in _SIMPLE_SCALARS


def _flat_and_simple(value: Any) -> bool:
    """Tell whether the builtin repr of *value* is what the token stream yields."""
    kind = type(value)
    if kind is tuple or kind is list:
        return all(_is_simple(item) for item in value)
    if kind is dict:
        return all(_is_simple(key) and _is_simple(item) for key, item in value.items())
    return False


def saferepr(value: Any, maxlen: int | None = None, maxlevels: int = 3) -> str:
    """Return a repr of *value* of about *maxlen* characters at most.

    Args:
        value: Anything; a failing ``__repr__`` is reported, not raised.
        maxlen: The character budget; ``None`` for no limit.
        maxlevels: How many levels of containers to show; 0 for all.
    """
    if maxlevels >= 0 and _flat_and_simple(value):
        # One flat container of plain scalars within budget: no token is cut,
        # so the builtin repr gives the same text, much faster.
        text = repr(value)
        if maxlen is None or len(text) < maxlen:
            return text
    parts: list[str] = []
    closers: list[str] = []
    budget = maxlen
    for kind, token in _tokens(value, 0, maxlevels, set()):
        if budget is not None and budget <= 0:
            if kind == _CLOSE:
                # Nothing of this container is left out: close it, uncounted.
                parts.append(closers.pop())
                continue
            # A container that opens after the cut is not shown at all.
            parts.append(", ...")
            parts.extend(reversed(closers))
            break
        if kind == _OPEN:
            text = token[0]
            closers.append(token[1])
        elif kind == _CLOSE:
            text = closers.pop()
        elif kind in (_SEP, _LITERAL):
            text = token
        elif kind == _STR:
            text = _quote(token, budget)
        elif kind == _KEY:
            text = saferepr(token, budget, maxlevels)
        else:
            text = _truncate(token, budget)
        parts.append(text)
        if budget is not None:
            budget -= len(text)
    return "".join(parts)
