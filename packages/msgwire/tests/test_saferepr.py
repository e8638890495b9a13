"""argsrepr/kwargsrepr: expected strings are what Celery 5.7's saferepr returns."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from msgwire import saferepr

CASES: list[tuple[Any, int | None, str]] = [
    ((1, 1), 1024, "(1, 1)"),
    ((), 1024, "()"),
    ((1,), 1024, "(1,)"),
    ({}, 1024, "{}"),
    ({"k": "v", "n": None}, 1024, "{'k': 'v', 'n': None}"),
    (("it's",), 1024, "('it\\'s',)"),
    (("a\nb",), 1024, "('a\nb',)"),
    ((b"\xff\x00", b"abc"), 1024, "(b'ff00', b'abc')"),
    (([[[[1]]]],), 1024, "([[[...]]],)"),
    (({"a": {"b": {"c": 1}}},), 1024, "({'a': {'b': {...}}},)"),
    (("x" * 2000,), 1024, "('" + "x" * 1023 + "...',)"),
    (("word " * 300,), 1024, "('" + " ".join(["word"] * 204) + "...',)"),
    (
        (list(range(1000)),),
        100,
        "([" + ", ".join(str(i) for i in range(27)) + ", , ...],)",
    ),
    (({1, 2},), 1024, "({1, 2},)"),
    ((frozenset({3}),), 1024, "(frozenset({3}),)"),
    ((set(),), 1024, "(set(),)"),
    ((Decimal("1.5"), 2.5, True, None), 1024, "(Decimal('1.5'), 2.5, True, None)"),
    ((object,), 1024, "(<class 'object'>,)"),
    (("a" * 10, "b" * 10), 12, "('aaaaaaaaaa', ...)"),
    ([], 1, "[]"),
    (([1, [2, 3]], 4), 5, "([1, , ...])"),
]


@pytest.mark.parametrize(("value", "maxlen", "expected"), CASES)
def test_matches_celerys_saferepr(
    value: Any, maxlen: int | None, expected: str
) -> None:
    assert saferepr(value, maxlen) == expected


def test_a_recursive_structure_is_reported_not_followed() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert saferepr(loop, 1024).startswith("[1, <Recursion on list with id=")


def test_a_broken_repr_is_reported_not_raised() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    assert "Unrepresentable" in saferepr((Broken(),), 1024)


def test_unlimited_length_and_levels() -> None:
    assert saferepr([[[[1]]]], None, 0) == "[[[[1]]]]"
