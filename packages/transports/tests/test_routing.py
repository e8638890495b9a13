"""Exchange routing for brokers that route in the client (memory, SQL)."""

from __future__ import annotations

import pytest

from transports._routing import matches, route


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.*", "a", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#", "", True),
        ("#", "x.y", True),
        ("*.b", "x.b", True),
        ("*.b", "b", False),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("#.b.#", "b", True),
        ("worker.#", "worker.heartbeat", True),
        ("a.b", "a.b", True),
        ("a.b", "a.bb", False),
    ],
)
def test_topic_patterns_follow_amqp(pattern: str, key: str, expected: bool) -> None:
    assert matches("topic", pattern, key) is expected


def test_direct_needs_equal_keys_and_fanout_ignores_them() -> None:
    assert matches("direct", "k", "k")
    assert not matches("direct", "k", "K")
    assert matches("fanout", "ignored", "anything")


def test_route_lists_each_queue_once_in_binding_order() -> None:
    bindings = [("q1", "a.#"), ("q2", "a.*"), ("q1", "#"), ("q3", "b")]
    assert route("topic", bindings, "a.b") == ["q1", "q2"]
    assert route("topic", bindings, "b") == ["q1", "q3"]
