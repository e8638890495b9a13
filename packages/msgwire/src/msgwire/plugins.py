"""Finding plugins by name in entry point groups, one name at a time.

Shared by every library of queue-meta that looks implementations up by name or
URL scheme (codecs here, transports and result stores by scheme), so that all
of them resolve names the same way and report unknown names alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches
from importlib.metadata import EntryPoint, entry_points

from .errors import PluginConflictError

__all__ = ["describe_unknown", "load_plugin", "plugin_names"]


def describe_unknown(kind: str, name: str, installed: Iterable[str]) -> str:
    """Return "unknown *kind* 'x'; did you mean 'y'? installed: a, b" for *name*."""
    choices = sorted(set(installed))
    message = f"unknown {kind} {name!r}"
    close = get_close_matches(name, choices, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message + f" installed: {', '.join(choices) or 'none'}"


def _unique(group: str, name: str | None = None) -> list[EntryPoint]:
    found = (
        entry_points(group=group)
        if name is None
        else entry_points(group=group, name=name)
    )
    # A distribution visible twice on sys.path lists the same entry point twice.
    seen: dict[tuple[str, str], EntryPoint] = {}
    for ep in found:
        dist = ep.dist.name if ep.dist is not None else "?"
        seen.setdefault((ep.name, f"{dist}: {ep.value}"), ep)
    return list(seen.values())


def plugin_names(group: str) -> tuple[str, ...]:
    """Return the names installed in *group*, without importing any of them."""
    return tuple(sorted({ep.name for ep in _unique(group)}))


def load_plugin(group: str, name: str) -> object | None:
    """Import the object registered as *name* in *group*; ``None`` if absent.

    Raises:
        PluginConflictError: Two distributions register *name* differently.
    """
    candidates = _unique(group, name)
    if not candidates:
        return None
    if len({ep.value for ep in candidates}) > 1:
        claimants = tuple(
            f"{ep.dist.name if ep.dist is not None else '?'}: {ep.value}"
            for ep in candidates
        )
        raise PluginConflictError(group, name, claimants)
    loaded: object = candidates[0].load()
    return loaded
