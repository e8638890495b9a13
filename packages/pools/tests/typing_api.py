"""Uses the public API as a user would; mypy checks it, pytest never runs it."""

from __future__ import annotations

import signal
from typing import Literal

from typing_extensions import assert_type

import pools
from pools import (
    Pool,
    PoolFuture,
    PoolStats,
    PreforkPool,
    TimeLimitExceeded,
    WorkerLostError,
    create_pool,
)


def work(a: int, b: int) -> int:
    return a + b


assert_type(pools.__version__, str)
assert_type(WorkerLostError(signal=9).signal, "int | None")
assert_type(TimeLimitExceeded(2.0).limit, "float | None")
assert_type(pools.available_pools(), "tuple[str, ...]")

with create_pool("prefork", size=2, soft_time_limit=1.5, time_limit=3) as pool:
    assert_type(pool, Pool)
    future = pool.submit(work, 1, 2)
    assert_type(future, PoolFuture[int])
    assert_type(future.result(), int)
    assert_type(future.terminate(signal.SIGKILL), bool)
    call = pool.submit_call(work, (1, 2), {}, soft_time_limit=2, time_limit=3)
    assert_type(call, PoolFuture[int])
    batch = pool.submit_many(work, [(1, 2), (3, 4)])
    assert_type(batch, list[PoolFuture[int]])
    assert_type(list(pool.map(work, [1], [2])), "list[int]")
    pool.grow(2)
    pool.shrink(1)
    stats = pool.stats()
    assert_type(stats, PoolStats)
    assert_type(stats.workers[0].rss_kib, "int | None")

prefork = PreforkPool(size=1, start_method="spawn")
assert_type(prefork.start_method, Literal["auto", "fork", "spawn"])
prefork.shutdown(wait=False, cancel_futures=True)
assert_type(pools.monkey_patch("threads"), bool)
