from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, wait
from pathlib import Path

import pools_helpers as h
import pytest

from conftest import wait_until
from pools import (
    PoolClosedError,
    SoftTimeLimitExceeded,
    TerminatedError,
    ThreadsPool,
    TimeLimitExceeded,
    create_pool,
)


@pytest.fixture
def pool() -> Iterator[ThreadsPool]:
    with create_pool("threads", size=2) as made:
        assert isinstance(made, ThreadsPool)
        yield made


def test_calls_run_in_worker_threads(pool: ThreadsPool) -> None:
    assert pool.submit(h.add, 1, 2).result(5) == 3
    assert [
        f.result(5) for f in pool.submit_many(h.add, [(i, 1) for i in range(50)])
    ] == [i + 1 for i in range(50)]
    assert pool.submit(h.thread_name).result(5).startswith("pools-threads-")
    with pytest.raises(h.CustomError, match="boom"):
        pool.submit(h.raise_custom, "boom").result(5)


def test_threads_start_on_demand_up_to_the_size(pool: ThreadsPool) -> None:
    assert pool.stats().workers == ()
    wait([pool.submit(h.sleep_then, 0.2) for _ in range(5)], timeout=5)
    assert len(pool.stats().workers) == 2


def test_done_callbacks_run_in_the_worker_thread(pool: ThreadsPool) -> None:
    names: list[str] = []
    future = pool.submit(h.sleep_then, 0.2)
    future.add_done_callback(lambda f: names.append(threading.current_thread().name))
    future.result(5)
    assert wait_until(lambda: bool(names), 5)
    assert names[0].startswith("pools-threads-")


class TestLimits:
    def test_soft_limit_interrupts_a_cpu_loop_at_once(self, pool: ThreadsPool) -> None:
        assert (
            pool.submit_call(h.cpu_for, (5,), soft_time_limit=0.2)
            .result(10)
            .startswith("soft after 0.")
        )

    def test_soft_limit_reaches_a_blocking_sleep_only_when_it_returns(
        self, pool: ThreadsPool
    ) -> None:
        # An asynchronous exception cannot interrupt time.sleep: it is raised
        # at the first bytecode after the sleep, 1.5 s later, not at 0.2 s.
        outcome = pool.submit_call(h.sleep_for, (1.5,), soft_time_limit=0.2).result(10)
        assert outcome.startswith("soft after 1.")

    def test_an_uncaught_soft_limit_fails_the_future(self, pool: ThreadsPool) -> None:
        with pytest.raises(SoftTimeLimitExceeded):
            pool.submit_call(h.cpu_for, (0,), soft_time_limit=0.1).result(
                5
            ) and pool.submit_call(h.sleep_then, (1,), soft_time_limit=0.1).result(5)

    def test_hard_limit_fails_the_future_at_the_limit_and_replaces_the_thread(
        self, pool: ThreadsPool
    ) -> None:
        started = time.monotonic()
        stuck = pool.submit_call(h.ignore_limits, (1.5,), time_limit=0.3)
        with pytest.raises(TimeLimitExceeded, match=r"0\.3 s"):
            stuck.result(5)
        assert time.monotonic() - started < 1.2
        # The stuck thread no longer counts: two calls still run side by side.
        started = time.monotonic()
        wait([pool.submit(h.sleep_then, 0.5) for _ in range(2)], timeout=5)
        assert time.monotonic() - started < 0.95

    def test_hard_limit_stops_a_cpu_loop(self, pool: ThreadsPool) -> None:
        future = pool.submit_call(h.cpu_for, (30,), time_limit=0.3)
        with pytest.raises(TimeLimitExceeded):
            future.result(5)
        assert wait_until(lambda: pool.stats().busy == 0, 5)


class TestTerminate:
    def test_terminate_raises_inside_a_running_call(self, pool: ThreadsPool) -> None:
        future = pool.submit(h.cpu_for, 30)
        assert wait_until(lambda: pool.stats().busy == 1, 5)
        assert future.terminate() is True
        with pytest.raises(TerminatedError):
            future.result(5)
        assert wait_until(lambda: pool.stats().busy == 0, 5)
        assert pool.submit(h.add, 1, 1).result(5) == 2

    def test_terminate_before_start_cancels(self) -> None:
        with create_pool("threads", size=1) as pool:
            running = pool.submit(h.sleep_then, 0.3)
            queued = pool.submit(h.add, 1, 1)
            assert queued.terminate() is True
            with pytest.raises(CancelledError):
                queued.result(5)
            running.result(5)


class TestRecycling:
    def test_max_tasks_per_child_replaces_threads(self, tmp_path: Path) -> None:
        log = str(tmp_path / "log")
        names: set[str] = set()
        with create_pool(
            "threads",
            size=1,
            max_tasks_per_child=2,
            initializer=h.record,
            initargs=(log, "init"),
            finalizer=h.record,
            finalargs=(log, "final"),
        ) as pool:
            for _ in range(6):
                names.add(pool.submit(h.thread_name).result(5))
        assert len(names) == 3
        labels = [label for label, _ in h.read_records(log)]
        assert labels.count("init") == 3
        assert labels.count("final") == 3

    def test_process_only_options_are_refused(self) -> None:
        with pytest.raises(ValueError, match="max_memory_per_child_kib"):
            create_pool("threads", max_memory_per_child_kib=1000)
        with pytest.raises(ValueError, match="after_fork"):
            create_pool("threads", after_fork=h.noop)


def test_fair_dispatch_short_calls_do_not_wait_behind_a_long_one(
    pool: ThreadsPool,
) -> None:
    long = pool.submit(h.sleep_then, 2)
    started = time.monotonic()
    shorts = pool.submit_many(h.sleep_then, [(0.02,)] * 10)
    wait(shorts, timeout=5)
    assert time.monotonic() - started < 1.5
    assert not long.done()
    long.result(5)


def test_grow_shrink_and_stats(pool: ThreadsPool) -> None:
    pool.grow(2)
    assert pool.size == 4
    started = time.monotonic()
    wait([pool.submit(h.sleep_then, 0.4) for _ in range(4)], timeout=5)
    assert time.monotonic() - started < 0.75
    pool.shrink(3)
    assert wait_until(lambda: len(pool.stats().workers) == 1, 5)
    stats = pool.stats()
    assert (stats.kind, stats.size, stats.processed) == ("threads", 1, 4)


class TestShutdown:
    def test_shutdown_wait_finishes_queued_work(self) -> None:
        pool = create_pool("threads", size=2)
        futures = pool.submit_many(h.sleep_then, [(0.02, i) for i in range(20)])
        pool.shutdown(wait=True)
        assert [f.result(0) for f in futures] == list(range(20))
        assert not [
            t for t in threading.enumerate() if t.name.startswith("pools-threads")
        ]
        with pytest.raises(PoolClosedError):
            pool.submit(h.noop)

    def test_cold_shutdown_stops_running_calls_and_cancels_the_rest(self) -> None:
        pool = create_pool("threads", size=1)
        running = pool.submit(h.cpu_for, 30)
        assert wait_until(lambda: pool.stats().busy == 1, 5)
        queued = pool.submit(h.noop)
        pool.shutdown(wait=False, cancel_futures=True)
        with pytest.raises(TerminatedError):
            running.result(5)
        assert queued.cancelled()
        assert wait_until(
            lambda: (
                not [
                    t
                    for t in threading.enumerate()
                    if t.name.startswith("pools-threads")
                ]
            ),
            5,
        )
