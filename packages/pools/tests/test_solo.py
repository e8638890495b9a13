from __future__ import annotations

import threading
import time
from pathlib import Path

import pools_helpers as h
import pytest

from pools import (
    PoolClosedError,
    PoolError,
    SoftTimeLimitExceeded,
    SoloPool,
    TimeLimitExceeded,
    create_pool,
)


def test_calls_run_in_the_calling_thread_inside_submit() -> None:
    with create_pool("solo") as pool:
        assert isinstance(pool, SoloPool)
        names: list[str] = []
        future = pool.submit(h.thread_name)
        assert future.done()
        future.add_done_callback(
            lambda f: names.append(threading.current_thread().name)
        )
        assert future.result() == threading.current_thread().name
        assert names == [threading.current_thread().name]
        assert [f.result() for f in pool.submit_many(h.add, [(1, 2), (3, 4)])] == [3, 7]
        with pytest.raises(h.CustomError):
            pool.submit(h.raise_custom, "x").result()


def test_finished_futures_behave_as_any_finished_future() -> None:
    """The solo pool's futures are made finished (sharing one Condition)."""
    from concurrent.futures import wait

    from pools import PoolFuture

    with create_pool("solo") as pool:
        good, bad = pool.submit(h.add, 1, 2), pool.submit(h.raise_custom, "x")
        for future in (good, bad):
            assert isinstance(future, PoolFuture)
            assert future.done()
            assert not future.running()
            assert not future.cancelled()
            assert not future.cancel()
            assert not future.terminate()
        assert good.result(timeout=0) == 3
        assert good.exception(timeout=0) is None
        assert isinstance(bad.exception(timeout=0), h.CustomError)
        done, pending = wait([good, bad], timeout=0)
        assert done == {good, bad}
        assert not pending
        seen: list[object] = []
        bad.add_done_callback(seen.append)
        assert seen == [bad]
        assert good._condition is bad._condition  # type: ignore[attr-defined]


class TestLimitsInTheMainThread:
    def test_soft_limit_interrupts_a_sleep_and_a_cpu_loop(self) -> None:
        with create_pool("solo", soft_time_limit=0.2) as pool:
            assert pool.submit(h.sleep_for, 5).result().startswith("soft after 0.")
            assert pool.submit(h.cpu_for, 5).result().startswith("soft after 0.")

    def test_hard_limit_is_raised_inside_the_call(self) -> None:
        with create_pool("solo") as pool:
            started = time.monotonic()
            future = pool.submit_call(
                h.sleep_then, (5,), soft_time_limit=0.1, time_limit=0.3
            )
            with pytest.raises(SoftTimeLimitExceeded):
                future.result()
            future = pool.submit_call(h.sleep_then, (5,), time_limit=0.3)
            with pytest.raises(TimeLimitExceeded):
                future.result()
            assert time.monotonic() - started < 2

    def test_a_call_that_swallows_the_limits_still_fails_its_future(self) -> None:
        with (
            create_pool("solo", time_limit=0.2) as pool,
            pytest.raises(TimeLimitExceeded, match=r"0\.2 s"),
        ):
            pool.submit(h.ignore_limits, 0.5).result()

    def test_the_previous_alarm_handler_is_restored(self) -> None:
        import signal

        before = signal.getsignal(signal.SIGALRM)
        with create_pool("solo", soft_time_limit=1) as pool:
            pool.submit(h.noop).result()
        assert signal.getsignal(signal.SIGALRM) is before


def test_limits_in_another_thread_use_asynchronous_exceptions() -> None:
    results: list[str] = []

    def run() -> None:
        with create_pool("solo", soft_time_limit=0.2) as pool:
            results.append(pool.submit(h.cpu_for, 5).result())
            results.append(pool.submit(h.sleep_for, 1.0).result())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert results[0].startswith("soft after 0.")
    # A blocking sleep sees the exception only when it returns.
    assert results[1].startswith("soft after 1.")


def test_terminate_cannot_reach_a_finished_call() -> None:
    with create_pool("solo") as pool:
        assert pool.submit(h.noop).terminate() is False


def test_size_resizing_and_worker_options_are_refused() -> None:
    with pytest.raises(ValueError, match="size must be 1"):
        create_pool("solo", size=2)
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        create_pool("solo", max_tasks_per_child=5)
    with create_pool("solo") as pool:
        with pytest.raises(PoolError, match="cannot grow"):
            pool.grow()
        with pytest.raises(PoolError, match="cannot shrink"):
            pool.shrink()


def test_initializer_and_finalizer_run_once_and_close_refuses_calls(
    tmp_path: Path,
) -> None:
    log = str(tmp_path / "log")
    pool = create_pool(
        "solo",
        initializer=h.record,
        initargs=(log, "init"),
        finalizer=h.record,
        finalargs=(log, "final"),
    )
    pool.submit(h.noop)
    pool.shutdown()
    pool.shutdown()
    assert [label for label, _ in h.read_records(log)] == ["init", "final"]
    assert pool.stats().processed == 1
    with pytest.raises(PoolClosedError):
        pool.submit(h.noop)
