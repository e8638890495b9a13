"""The conformance suite over memory://, plus what is particular to it."""

from __future__ import annotations

import threading
import time

from resultstores import connect, states
from resultstores._memory import MemoryResultStore
from resultstores.testing import ResultStoreConformance, new_id


class TestMemoryStore(ResultStoreConformance):
    hammer_mode = "threads"  # one process by design

    def store_url(self) -> str:
        return "memory://conformance"


def test_stores_of_one_name_share_results_and_other_names_do_not() -> None:
    a, b, other = (
        connect("memory://app"),
        connect("memory://app"),
        connect("memory://x"),
    )
    task_id = new_id()
    a.mark_success(task_id, 1)
    assert b.get(task_id).result == 1
    assert other.get(task_id).state == states.PENDING
    assert isinstance(a, MemoryResultStore)
    assert a.space_name == "app"


def test_wait_is_woken_by_a_write_not_by_polling() -> None:
    store = connect("memory://", poll_interval=30.0)
    task_id = new_id()
    threading.Timer(0.2, store.mark_success, (task_id, "pushed")).start()
    started = time.monotonic()
    assert store.wait(task_id, timeout=10.0).result == "pushed"
    assert time.monotonic() - started < 5.0


def test_clear_empties_the_space() -> None:
    store = MemoryResultStore("memory://c")
    task_id = new_id()
    store.mark_success(task_id, 1)
    store.clear()
    assert store.exists(task_id) is False


def test_capabilities_describe_the_store() -> None:
    caps = connect("memory://").capabilities
    assert (caps.native_ttl, caps.chords, caps.wait) == (False, True, "condition")
