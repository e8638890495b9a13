from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import wait

import pools_helpers as h
import pytest

from conftest import wait_until
from pools import (
    AsyncioPool,
    PoolClosedError,
    SoftTimeLimitExceeded,
    TerminatedError,
    TimeLimitExceeded,
    create_pool,
)


async def loop_thread_name() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


async def nap(seconds: float, value: object = None) -> object:
    await asyncio.sleep(seconds)
    return value


async def nap_and_cleanup(seconds: float) -> str:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError as exc:
        return f"cleaned up: {exc}"
    return "finished"


async def block_loop(seconds: float) -> str:
    time.sleep(seconds)
    return "finished"


async def fail() -> None:
    await asyncio.sleep(0)
    raise h.CustomError("async boom")


@pytest.fixture
def pool() -> Iterator[AsyncioPool]:
    with create_pool("asyncio", size=4) as made:
        assert isinstance(made, AsyncioPool)
        yield made


def test_coroutines_run_on_the_loop_and_plain_callables_in_threads(
    pool: AsyncioPool,
) -> None:
    assert pool.submit(loop_thread_name).result(5) == "pools-asyncio-loop"
    assert pool.submit(h.thread_name).result(5).startswith("pools-asyncio-thread")
    assert pool.submit(h.async_add, 1, 2).result(5) == 3
    assert [
        f.result(5) for f in pool.submit_many(h.async_add, [(i, i) for i in range(100)])
    ] == [2 * i for i in range(100)]
    with pytest.raises(h.CustomError, match="async boom"):
        pool.submit(fail).result(5)


def test_done_callbacks_of_coroutines_run_on_the_loop_thread(pool: AsyncioPool) -> None:
    names: list[str] = []
    future = pool.submit(nap, 0.1)
    future.add_done_callback(lambda f: names.append(threading.current_thread().name))
    future.result(5)
    assert wait_until(lambda: names == ["pools-asyncio-loop"], 5)


def test_size_bounds_the_coroutines_running_at_once() -> None:
    with create_pool("asyncio", size=2) as pool:
        started = time.monotonic()
        wait([pool.submit(nap, 0.3) for _ in range(4)], timeout=5)
        elapsed = time.monotonic() - started
        assert 0.55 < elapsed < 1.5


class TestLimits:
    def test_soft_limit_is_a_cancellation_the_coroutine_may_handle(
        self, pool: AsyncioPool
    ) -> None:
        outcome = pool.submit_call(nap_and_cleanup, (10,), soft_time_limit=0.2).result(
            5
        )
        assert outcome == "cleaned up: soft time limit (0.2 s) exceeded"

    def test_an_unhandled_soft_limit_fails_the_future(self, pool: AsyncioPool) -> None:
        with pytest.raises(SoftTimeLimitExceeded, match="soft time limit"):
            pool.submit_call(nap, (10,), soft_time_limit=0.2).result(5)

    def test_a_coroutine_blocking_the_loop_delays_the_soft_limit(
        self, pool: AsyncioPool
    ) -> None:
        # Cancellation is delivered at an await: a blocking call runs to the end.
        assert (
            pool.submit_call(block_loop, (0.6,), soft_time_limit=0.1).result(5)
            == "finished"
        )

    def test_hard_limit_fails_the_future_even_while_the_loop_is_blocked(
        self, pool: AsyncioPool
    ) -> None:
        started = time.monotonic()
        future = pool.submit_call(block_loop, (1.5,), time_limit=0.3)
        with pytest.raises(TimeLimitExceeded):
            future.result(5)
        assert time.monotonic() - started < 1.2

    def test_hard_limit_frees_the_slot_of_a_coroutine(self) -> None:
        with create_pool("asyncio", size=1) as pool:
            stuck = pool.submit_call(nap, (30,), time_limit=0.3)
            after = pool.submit(nap, 0, "next")
            with pytest.raises(TimeLimitExceeded):
                stuck.result(5)
            assert after.result(5) == "next"

    def test_plain_callables_get_the_threads_pool_limits(
        self, pool: AsyncioPool
    ) -> None:
        assert (
            pool.submit_call(h.cpu_for, (5,), soft_time_limit=0.2)
            .result(5)
            .startswith("soft")
        )


def test_terminate_cancels_a_running_coroutine(pool: AsyncioPool) -> None:
    future = pool.submit(nap, 30)
    assert wait_until(lambda: pool.stats().busy == 1, 5)
    assert future.terminate() is True
    with pytest.raises(TerminatedError):
        future.result(5)
    assert wait_until(lambda: pool.stats().busy == 0, 5)


def test_fair_dispatch_short_coroutines_pass_a_long_one() -> None:
    with create_pool("asyncio", size=2) as pool:
        long = pool.submit(nap, 2)
        started = time.monotonic()
        wait(pool.submit_many(nap, [(0.01,)] * 20), timeout=5)
        assert time.monotonic() - started < 1.5
        assert not long.done()


def test_grow_shrink_and_stats(pool: AsyncioPool) -> None:
    pool.grow(2)
    pool.shrink(5)
    assert pool.size == 1
    started = time.monotonic()
    wait([pool.submit(nap, 0.2) for _ in range(2)], timeout=5)
    assert time.monotonic() - started > 0.35
    stats = pool.stats()
    assert stats.kind == "asyncio"
    assert stats.processed == 2
    assert stats.workers[0].name == "pools-asyncio-loop"


class TestShutdown:
    def test_shutdown_wait_finishes_the_coroutines(self) -> None:
        pool = create_pool("asyncio", size=2)
        futures = [pool.submit(nap, 0.05, i) for i in range(6)]
        pool.shutdown(wait=True)
        assert [f.result(0) for f in futures] == list(range(6))
        assert not [
            t for t in threading.enumerate() if t.name.startswith("pools-asyncio")
        ]
        with pytest.raises(PoolClosedError):
            pool.submit(nap, 0)

    def test_cold_shutdown_stops_and_cancels(self) -> None:
        pool = create_pool("asyncio", size=1)
        running = pool.submit(nap, 30)
        assert wait_until(lambda: pool.stats().busy == 1, 5)
        queued = pool.submit(nap, 30)
        pool.shutdown(wait=False, cancel_futures=True)
        with pytest.raises(TerminatedError):
            running.result(5)
        assert wait_until(queued.cancelled, 5)
        assert wait_until(
            lambda: (
                not [
                    t
                    for t in threading.enumerate()
                    if t.name.startswith("pools-asyncio")
                ]
            ),
            5,
        )
