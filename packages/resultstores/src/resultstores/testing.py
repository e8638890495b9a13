"""A conformance suite every result store must pass, for pytest.

Subclass :class:`ResultStoreConformance` in a test module, name the subclass
``Test...`` and implement :meth:`~ResultStoreConformance.store_url` (plus
:meth:`~ResultStoreConformance.store_options` for options); pytest then runs
every ``test_`` method against your store::

    from resultstores.testing import ResultStoreConformance

    class TestMyStore(ResultStoreConformance):
        def store_url(self) -> str:
            return "mystore://localhost/test"

The chord hammer opens the store in separate processes (``spawn``), so the
URL must reach the same data from another process; set
``hammer_mode = "threads"`` for in-process stores. Needs pytest.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import msgwire

from . import states
from ._meta import ResultWrite, TaskInfo
from ._registry import connect
from .base import DEFAULT_EXPIRES, ResultStore
from .errors import (
    InvalidStateError,
    RemoteTaskError,
    ResultTimeoutError,
    ResultTooLargeError,
)

__all__ = ["ResultStoreConformance", "new_id"]


def new_id() -> str:
    """Return a fresh task id (a uuid4, as Celery makes them)."""
    return str(uuid.uuid4())


class _CustomError(Exception):
    """An exception from a module that is not on the default allow-list."""


class _NotAnException:
    """A class that must never be instantiated from a stored result."""

    created = 0

    def __init__(self, *args: object) -> None:
        type(self).created += 1


def _hammer(
    url: str,
    options: dict[str, Any],
    group_id: str,
    start: int,
    count: int,
    size: int,
    out: Any,
) -> None:
    """Report each completion seen while adding *count* parts (run in a child)."""
    store = connect(url, **options)
    completions = []
    try:
        for number in range(start, start + count):
            done = store.chord_part_return(
                group_id,
                f"{group_id}-{number}",
                states.SUCCESS,
                number,
                index=number,
                size=size,
            )
            if done is not None:
                completions.append(len(done.parts))
                completions.append(sum(done.values()))
    finally:
        store.close()
    out.put(completions)


class ResultStoreConformance:
    """The behaviour every store shares; subclass it as ``Test<Store>``."""

    #: ``"processes"`` or ``"threads"`` (in-process stores) for the chord hammer.
    hammer_mode: ClassVar[str] = "processes"
    #: Workers and increments of the chord hammer (4 x 1,000 by the issue).
    hammer_workers: ClassVar[int] = 4
    hammer_increments: ClassVar[int] = 1000
    #: False where the layout has no place for group_id, parent_id and children
    #: (Celery's SQL tables).
    keeps_relations: ClassVar[bool] = True
    #: Seconds to wait for an expiry to be seen.
    expiry_grace: ClassVar[float] = 2.2

    def store_url(self) -> str:
        """Return the URL of the store under test."""
        raise NotImplementedError("subclasses return the URL of the store under test")

    def store_options(self) -> dict[str, Any]:
        """Return the keyword options the store is opened with."""
        return {}

    def open_store(self, **options: Any) -> ResultStore:
        """Open the store under test with its options, overridden by *options*."""
        return connect(self.store_url(), **{**self.store_options(), **options})

    @pytest.fixture
    def store(self) -> Iterator[ResultStore]:
        """The store under test, closed afterwards."""
        store = self.open_store()
        try:
            yield store
        finally:
            store.close()

    # -- states and results --------------------------------------------------------

    def test_an_unknown_task_is_pending_and_does_not_exist(
        self, store: ResultStore
    ) -> None:
        task_id = new_id()
        meta = store.get(task_id)
        assert (meta.task_id, meta.state, meta.result, meta.date_done) == (
            task_id, states.PENDING, None, None,
        )  # fmt: skip
        assert store.exists(task_id) is False

    def test_a_custom_state_carries_its_meta_and_exists(
        self, store: ResultStore
    ) -> None:
        task_id = new_id()
        assert store.set_state(task_id, "PROGRESS", meta={"progress": 10}) is True
        meta = store.get(task_id)
        assert (meta.state, meta.result, meta.date_done, meta.ready) == (
            "PROGRESS", {"progress": 10}, None, False,
        )  # fmt: skip
        assert store.exists(task_id) is True

    def test_success_is_stored_with_its_result_date_and_task_info(
        self, store: ResultStore
    ) -> None:
        task_id = new_id()
        info = TaskInfo(
            name="proj.add", args=[1, 2], kwargs={"k": "v"}, worker="w1@host",
            retries=0, queue="celery", group_id="g1", parent_id="p1",
        )  # fmt: skip
        before = time.time()
        store.mark_success(
            task_id,
            {"x": [1, 2.5, "é", None, True]},
            info=info,
            children=[[["c1", None], None]],
        )
        meta = store.get(task_id)
        assert meta.state == states.SUCCESS
        assert meta.successful
        assert meta.ready
        assert meta.result == {"x": [1, 2.5, "é", None, True]}
        assert meta.value() == meta.result
        assert meta.date_done is not None
        assert meta.date_done.tzinfo is not None
        assert before - 1 <= meta.date_done.timestamp() <= time.time() + 1
        extended = (meta.name, meta.args, meta.kwargs, meta.worker, meta.retries)
        assert (*extended, meta.queue) == (
            "proj.add", [1, 2], {"k": "v"}, "w1@host", 0, "celery",
        )  # fmt: skip
        if self.keeps_relations:
            assert (meta.group_id, meta.parent_id) == ("g1", "p1")
            assert meta.children == [[["c1", None], None]]

    def test_a_stored_success_is_never_overwritten(self, store: ResultStore) -> None:
        task_id = new_id()
        assert store.set_state(task_id, states.STARTED, meta={"pid": 1}) is True
        assert store.mark_success(task_id, "first") is True
        assert store.mark_success(task_id, "second") is False
        assert store.mark_failure(task_id, ValueError("late")) is False
        assert store.set_state(task_id, states.STARTED) is False
        assert store.mark_many(
            [ResultWrite(task_id, states.RETRY, ValueError("x"))]
        ) == [False]
        meta = store.get(task_id)
        assert (meta.state, meta.result) == (states.SUCCESS, "first")

    def test_concurrent_writers_leave_the_first_success(
        self, store: ResultStore
    ) -> None:
        task_id = new_id()
        results: list[bool] = []
        lock = threading.Lock()

        def write(number: int) -> None:
            stored = store.mark_success(task_id, number)
            with lock:
                results.append(stored)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results.count(True) == 1
        winner = store.get(task_id).result
        assert isinstance(winner, int)
        assert 0 <= winner < 8

    def test_a_failure_is_rebuilt_as_the_same_builtin_exception(
        self, store: ResultStore
    ) -> None:
        task_id = new_id()
        try:
            raise ValueError("boom", 42)
        except ValueError as exc:
            store.mark_failure(task_id, exc)
        meta = store.get(task_id)
        assert meta.state == states.FAILURE
        assert meta.failed
        assert meta.ready
        assert type(meta.result) is ValueError
        assert meta.result.args == ("boom", 42)
        assert meta.traceback is not None
        assert "ValueError: ('boom', 42)" in meta.traceback
        assert meta.date_done is not None
        with pytest.raises(ValueError, match="boom"):
            meta.value()

    def test_an_exception_off_the_allow_list_becomes_a_clear_wrapper(
        self, store: ResultStore
    ) -> None:
        task_id = new_id()
        store.mark_failure(task_id, _CustomError("nope", 1), "Traceback: custom\n")
        result = store.get(task_id).result
        assert isinstance(result, RemoteTaskError)
        assert (result.exc_type, result.exc_module, result.exc_message) == (
            "_CustomError", __name__, ("nope", 1),
        )  # fmt: skip
        assert result.traceback == "Traceback: custom\n"
        assert "_CustomError" in str(result)
        assert "exception_modules" in str(result)
        with self.open_store(exception_modules=[__name__]) as trusting:
            rebuilt = trusting.get(task_id).result
        assert type(rebuilt) is _CustomError
        assert rebuilt.args == ("nope", 1)

    def test_a_stored_non_exception_class_is_never_instantiated(
        self, store: ResultStore
    ) -> None:
        task_id = new_id()
        store.set_state(
            task_id,
            states.FAILURE,
            meta={
                "exc_type": "_NotAnException",
                "exc_message": ["x"],
                "exc_module": __name__,
            },
        )
        with self.open_store(exception_modules=[__name__]) as trusting:
            result = trusting.get(task_id).result
        assert isinstance(result, RemoteTaskError)
        assert "not an exception class" in str(result)
        assert _NotAnException.created == 0

    def test_an_invalid_state_is_refused_and_nothing_is_written(
        self, store: ResultStore
    ) -> None:
        task_id = new_id()
        for bad in (5, "", None, states.PENDING):
            with pytest.raises(InvalidStateError, match="task state must be"):
                store.set_state(task_id, bad)  # type: ignore[arg-type]
        assert store.exists(task_id) is False

    def test_revoked_is_stored_as_celery_stores_it(self, store: ResultStore) -> None:
        task_id = new_id()
        store.mark_revoked(task_id, "terminated")
        meta = store.get(task_id)
        assert meta.state == states.REVOKED
        assert meta.ready
        assert isinstance(meta.result, RemoteTaskError)
        assert (meta.result.exc_type, meta.result.exc_module) == (
            "TaskRevokedError", "celery.exceptions",
        )  # fmt: skip

    def test_get_many_returns_every_id_in_order(self, store: ResultStore) -> None:
        done, started, unknown = new_id(), new_id(), new_id()
        store.mark_success(done, 1)
        store.set_state(started, states.STARTED)
        metas = store.get_many([done, unknown, started])
        assert list(metas) == [done, unknown, started]
        assert [m.state for m in metas.values()] == [
            states.SUCCESS,
            states.PENDING,
            states.STARTED,
        ]

    def test_mark_many_writes_a_batch(self, store: ResultStore) -> None:
        ids = [new_id() for _ in range(20)]
        stored = store.mark_many(
            ResultWrite(task_id, states.SUCCESS, n) for n, task_id in enumerate(ids)
        )
        assert stored == [True] * 20
        assert [m.result for m in store.get_many(ids).values()] == list(range(20))

    def test_a_batch_with_a_bad_write_writes_nothing(self, store: ResultStore) -> None:
        good = new_id()
        with pytest.raises(InvalidStateError):
            store.mark_many(
                [
                    ResultWrite(good, states.SUCCESS, 1),
                    ResultWrite(new_id(), 7),  # type: ignore[arg-type]
                ]
            )
        assert store.exists(good) is False

    def test_forget_makes_a_result_pending(self, store: ResultStore) -> None:
        task_id = new_id()
        store.mark_success(task_id, 1)
        store.forget(task_id)
        assert store.get(task_id).state == states.PENDING
        assert store.exists(task_id) is False

    def test_an_unserializable_result_is_refused_before_writing(
        self, store: ResultStore
    ) -> None:
        task_id = new_id()
        if store.serializer == "pickle" or getattr(store, "schema", "") == "celery":
            pytest.skip("pickle serializes sets")
        with pytest.raises(msgwire.EncodeError):
            store.mark_success(task_id, {1, 2, 3})
        assert store.exists(task_id) is False

    def test_a_result_over_the_size_limit_is_refused_whole(
        self, store: ResultStore
    ) -> None:
        limit = store.max_result_size
        if limit is None or limit > 64 * 1024 * 1024:
            pytest.skip(f"{store.name} has no item limit below 64 MiB")
        task_id = new_id()
        store.set_state(task_id, states.STARTED, meta={"step": 1})
        with pytest.raises(
            ResultTooLargeError, match=r"bytes serialized, more than"
        ) as caught:
            store.mark_success(task_id, "x" * (limit + 1))
        assert caught.value.task_id == task_id
        assert caught.value.limit == limit
        assert store.get(task_id).state == states.STARTED
        fits = "y" * (limit - 4096)
        assert store.mark_success(task_id, fits) is True
        assert store.get(task_id).result == fits  # whole, not truncated

    # -- wait ------------------------------------------------------------------------

    def test_wait_returns_a_result_stored_before(self, store: ResultStore) -> None:
        task_id = new_id()
        store.mark_success(task_id, "ready")
        assert store.wait(task_id, timeout=5.0).result == "ready"

    def test_wait_returns_when_another_writer_finishes(
        self, store: ResultStore
    ) -> None:
        task_id = new_id()
        with self.open_store() as writer:
            timer = threading.Timer(0.3, writer.mark_success, (task_id, "later"))
            timer.start()
            started = time.monotonic()
            try:
                meta = store.wait(task_id, timeout=20.0, interval=0.05)
            finally:
                timer.join()
        assert meta.result == "later"
        assert meta.state == states.SUCCESS
        assert time.monotonic() - started < 15.0

    def test_wait_skips_states_that_are_not_final(self, store: ResultStore) -> None:
        task_id = new_id()

        def progress() -> None:
            store.set_state(task_id, states.STARTED)
            time.sleep(0.1)
            store.set_state(task_id, "PROGRESS", meta={"n": 1})
            time.sleep(0.1)
            store.mark_failure(task_id, KeyError("k"))

        thread = threading.Thread(target=progress)
        thread.start()
        meta = store.wait(task_id, timeout=20.0, interval=0.05)
        thread.join()
        assert meta.state == states.FAILURE
        assert type(meta.result) is KeyError

    def test_wait_times_out_with_a_timeout_error(self, store: ResultStore) -> None:
        task_id = new_id()
        store.set_state(task_id, states.STARTED)
        started = time.monotonic()
        with pytest.raises(ResultTimeoutError) as caught:
            store.wait(task_id, timeout=0.4, interval=0.05)
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.task_id == task_id
        assert 0.35 <= time.monotonic() - started < 5.0

    # -- groups and chords -----------------------------------------------------------

    def test_a_saved_group_is_restored_and_forgotten(self, store: ResultStore) -> None:
        group_id, members = new_id(), [new_id() for _ in range(3)]
        assert store.restore_group(group_id) is None
        store.save_group(group_id, members)
        assert store.restore_group(group_id) == members
        store.forget_group(group_id)
        assert store.restore_group(group_id) is None

    def test_a_chord_completes_once_with_parts_in_header_order(
        self, store: ResultStore
    ) -> None:
        group_id = new_id()
        store.set_chord_size(group_id, 3)
        seen = [
            store.chord_part_return(
                group_id, f"t{index}", states.SUCCESS, index * 10, index=index
            )
            for index in (2, 0)
        ]
        assert seen == [None, None]
        # A redelivered part is counted once.
        assert (
            store.chord_part_return(group_id, "t0", states.SUCCESS, 0, index=0) is None
        )
        done = store.chord_part_return(
            group_id, "t1", states.FAILURE, ValueError("bad"), index=1
        )
        assert done is not None
        assert done.group_id == group_id
        assert [part.task_id for part in done.parts] == ["t0", "t1", "t2"]
        assert done.values()[0::2] == [0, 20]
        assert [part.task_id for part in done.failed] == ["t1"]
        assert type(done.parts[1].result) is ValueError

    def test_a_chord_without_indexes_takes_its_size_from_the_saved_group(
        self, store: ResultStore
    ) -> None:
        group_id = new_id()
        members = [new_id() for _ in range(3)]
        store.save_group(group_id, members)
        results = [
            store.chord_part_return(group_id, task_id, states.SUCCESS, n)
            for n, task_id in enumerate(members)
        ]
        assert results[:2] == [None, None]
        assert results[2] is not None
        assert sorted(results[2].values()) == [0, 1, 2]

    def test_chord_hammer_counts_every_increment_exactly_once(self) -> None:
        """4 workers x 1,000 parts: exactly one completion, with all 4,000 parts."""
        group_id = new_id()
        workers, count = self.hammer_workers, self.hammer_increments
        total = workers * count
        url, options = self.store_url(), self.store_options()
        if self.hammer_mode == "threads":
            import queue

            out: Any = queue.Queue()
            runners: list[Any] = [
                threading.Thread(
                    target=_hammer,
                    args=(url, options, group_id, n * count, count, total, out),
                )
                for n in range(workers)
            ]
        else:
            # spawn: a forked child could inherit a lock held by a driver thread.
            context = multiprocessing.get_context("spawn")
            out = context.Queue()
            runners = [
                context.Process(
                    target=_hammer,
                    args=(url, options, group_id, n * count, count, total, out),
                )
                for n in range(workers)
            ]
        for runner in runners:
            runner.start()
        reports = [out.get(timeout=600) for _ in runners]
        for runner in runners:
            runner.join(60)
        completions = [item for report in reports for item in report]
        assert completions == [total, sum(range(total))]

    # -- expiry ----------------------------------------------------------------------

    def test_results_expire_after_a_day_by_default(self, store: ResultStore) -> None:
        assert store.expires == DEFAULT_EXPIRES == 86400.0

    def test_an_expired_result_reads_as_pending(self) -> None:
        with self.open_store(expires=1.0) as store:
            task_id, group_id = new_id(), new_id()
            store.mark_success(task_id, "short-lived")
            store.save_group(group_id, [task_id])
            assert store.get(task_id).state == states.SUCCESS
            time.sleep(self.expiry_grace)
            removed = store.cleanup()
            if store.capabilities.native_ttl:
                assert removed >= 0
            else:
                assert removed >= 2  # the result and the group
            assert store.get(task_id).state == states.PENDING
            assert store.exists(task_id) is False
            assert store.restore_group(group_id) is None
            # An expired SUCCESS no longer blocks a new result.
            assert store.mark_success(task_id, "again") is True

    def test_results_can_be_kept_for_ever(self) -> None:
        with self.open_store(expires=None) as store:
            task_id = new_id()
            store.mark_success(task_id, 1)
            assert store.expires is None
            assert store.cleanup() >= 0
            assert store.get(task_id).result == 1
            store.forget(task_id)

    # -- misc -------------------------------------------------------------------------

    def test_the_repr_names_the_store_without_a_password(
        self, store: ResultStore
    ) -> None:
        from urllib.parse import urlsplit

        assert type(store).__name__ in repr(store)
        password = urlsplit(self.store_url()).password
        if password:
            assert password not in repr(store)
            assert ":***@" in repr(store)

    def test_the_store_is_usable_from_many_threads(self, store: ResultStore) -> None:
        ids = [new_id() for _ in range(40)]
        errors: list[BaseException] = []

        def work(chunk: list[str]) -> None:
            try:
                for task_id in chunk:
                    store.mark_success(task_id, task_id)
                    assert store.get(task_id).result == task_id
            except BaseException as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(ids[n::4],)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert all(m.result == t for t, m in store.get_many(ids).items())
