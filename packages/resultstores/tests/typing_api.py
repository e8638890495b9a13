"""Uses the public API as a user would; mypy checks it, pytest never runs it."""

from __future__ import annotations

from typing_extensions import assert_type

import resultstores
from resultstores import (
    ChordResult,
    ResultMeta,
    ResultStore,
    ResultTimeoutError,
    ResultWrite,
    TaskInfo,
    connect,
    states,
)
from resultstores.testing import ResultStoreConformance

assert_type(resultstores.__version__, str)
timeout: TimeoutError = ResultTimeoutError("id", 1.0)
assert_type(ResultTimeoutError("id", 1.0).timeout, float)

store = connect("memory://", serializer="json", expires=3600.0)
assert_type(store, ResultStore)
assert_type(store.set_state("t", "STARTED", meta={"progress": 10}), bool)
assert_type(store.mark_success("t", {"x": 1}, info=TaskInfo(name="proj.add")), bool)
assert_type(store.mark_failure("t", ValueError("boom")), bool)
meta = store.get("t")
assert_type(meta, ResultMeta)
assert_type(meta.ready, bool)
assert_type(store.exists("t"), bool)
assert_type(store.get_many(["t"]), dict[str, ResultMeta])
assert_type(store.wait("t", timeout=10.0), ResultMeta)
assert_type(store.mark_many([ResultWrite("t", states.SUCCESS, 1)]), list[bool])
store.save_group("g", ["t"])
assert_type(store.restore_group("g"), list[str] | None)
store.set_chord_size("g", 1)
assert_type(
    store.chord_part_return("g", "t", states.SUCCESS, 1, index=0), ChordResult | None
)
assert_type(store.cleanup(), int)
store.forget("t")
store.close()


class TestMine(ResultStoreConformance):
    def store_url(self) -> str:
        return "memory://mine"
