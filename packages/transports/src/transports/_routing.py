"""Exchange routing for brokers without native exchanges (memory, SQL, Redis).

Topic patterns follow AMQP: words are separated by ``.``; ``*`` matches
exactly one word and ``#`` zero or more words.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

__all__ = ["matches", "route"]


def matches(kind: str, binding_key: str, routing_key: str) -> bool:
    """Return whether a message with *routing_key* follows a binding of *kind*."""
    if kind == "fanout":
        return True
    if kind == "topic":
        return _topic_match(binding_key, routing_key)
    return binding_key == routing_key


def _topic_match(pattern: str, key: str) -> bool:
    return _match_words(tuple(pattern.split(".")), tuple(key.split(".")))


@functools.lru_cache(maxsize=4096)
def _match_words(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match_words(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    if head in ("*", words[0]):
        return _match_words(rest, words[1:])
    return False


def route(
    kind: str, bindings: Iterable[tuple[str, str]], routing_key: str
) -> list[str]:
    """Return the queues among *bindings* (``(queue, binding_key)``) that match.

    Each queue appears once, in the order of its first matching binding.
    """
    found: dict[str, None] = {}
    for queue, binding_key in bindings:
        if queue not in found and matches(kind, binding_key, routing_key):
            found[queue] = None
    return list(found)
