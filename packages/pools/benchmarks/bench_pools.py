"""Throughput and per-call overhead of every pool kind, beside the stdlib executors.

Run with ``nox -s bench -- pools`` (or ``python benchmarks/bench_pools.py``).

For each kind at size 1, 2 and 16 it runs a no-op callable and a 1 ms sleep,
submitted one by one (``submit`` in a loop) and through the batch path
(``submit_many``), then waits for every future. ``ProcessPoolExecutor`` and
``ThreadPoolExecutor`` run the same calls in the same run: one by one with
``submit``, and as their batch path ``map`` (``chunksize=64`` for processes).

Columns: ``calls/s`` is calls finished per second of wall time; ``us/call`` is
wall time per call; ``overhead us`` is the time each worker spends per call
beyond the work itself, ``elapsed * size / calls - work``, where the work is 0
for the no-op and 1000 us for the sleep (for size 16 on a 2-core machine the
no-op figure mostly measures the machine being shared by 16 workers).

The asyncio pool runs ``async def`` versions (``await asyncio.sleep(0.001)``),
which is what it is for. gevent and eventlet run in a child process each, since
monkey-patching is process-wide; there ``time.sleep`` yields to other calls.
Each figure is the best of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, wait
from typing import Any

SIZES = (1, 2, 16)
KINDS = ("prefork", "threads", "solo", "asyncio", "gevent", "eventlet")
GREEN = ("gevent", "eventlet")


def noop(i: int) -> None:
    return None


def sleep_1ms(i: int) -> None:
    time.sleep(0.001)


async def async_noop(i: int) -> None:
    return None


async def async_sleep_1ms(i: int) -> None:
    await asyncio.sleep(0.001)


WORK_US = {"noop": 0.0, "sleep 1ms": 1000.0}


def calls_for(work: str, size: int, quick: bool) -> int:
    if work == "noop":
        return 5_000 if quick else 20_000
    per_worker = 50 if quick else 150
    return per_worker * size


def measure(submit_all: Callable[[int], list[Any]], count: int) -> float:
    started = time.perf_counter()
    futures = submit_all(count)
    _done, not_done = wait(futures)
    elapsed = time.perf_counter() - started
    assert not not_done
    for future in futures[:10]:
        future.result()
    return elapsed


def run_pools(kinds: list[str], quick: bool, repeat: int) -> list[dict[str, Any]]:
    from pools import create_pool

    rows = []
    for kind in kinds:
        for size in SIZES:
            if kind == "solo" and size != 1:
                continue
            pool = create_pool(kind, size=size)
            try:
                for work in WORK_US:
                    if kind == "asyncio":
                        fn: Callable[[int], Any] = (
                            async_noop if work == "noop" else async_sleep_1ms
                        )
                    else:
                        fn = noop if work == "noop" else sleep_1ms
                    # Warm up: every worker started and every import done.
                    wait(pool.submit_many(fn, [(i,) for i in range(size * 4)]))
                    count = calls_for(work, size, quick)
                    for mode in ("one-by-one", "submit_many"):
                        if mode == "one-by-one":

                            def submit_all(
                                n: int, fn: Any = fn, pool: Any = pool
                            ) -> list[Any]:
                                return [pool.submit(fn, i) for i in range(n)]

                        else:

                            def submit_all(
                                n: int, fn: Any = fn, pool: Any = pool
                            ) -> list[Any]:
                                return pool.submit_many(fn, [(i,) for i in range(n)])  # type: ignore[no-any-return]

                        best = min(measure(submit_all, count) for _ in range(repeat))
                        rows.append(row(kind, size, work, mode, count, best))
            finally:
                pool.shutdown(wait=True)
    return rows


def run_stdlib(quick: bool, repeat: int) -> list[dict[str, Any]]:
    rows = []
    makers: dict[str, Callable[[int], Executor]] = {
        "ProcessPoolExecutor": lambda size: ProcessPoolExecutor(size),
        "ThreadPoolExecutor": lambda size: ThreadPoolExecutor(size),
    }
    for name, make in makers.items():
        for size in SIZES:
            executor = make(size)
            try:
                for work in WORK_US:
                    fn = noop if work == "noop" else sleep_1ms
                    wait([executor.submit(fn, i) for i in range(size * 4)])
                    count = calls_for(work, size, quick)

                    def one_by_one(
                        n: int, executor: Executor = executor, fn: Any = fn
                    ) -> list[Any]:
                        return [executor.submit(fn, i) for i in range(n)]

                    best = min(measure(one_by_one, count) for _ in range(repeat))
                    rows.append(row(name, size, work, "one-by-one", count, best))
                    chunk = 64 if name == "ProcessPoolExecutor" else 1

                    def mapped(
                        n: int,
                        executor: Executor = executor,
                        fn: Any = fn,
                        chunk: int = chunk,
                    ) -> list[Any]:
                        started = time.perf_counter()
                        list(executor.map(fn, range(n), chunksize=chunk))
                        return [time.perf_counter() - started]

                    best = min(mapped(count)[0] for _ in range(repeat))
                    rows.append(
                        row(name, size, work, f"map(chunksize={chunk})", count, best)
                    )
            finally:
                executor.shutdown(wait=True)
    return rows


def row(
    kind: str, size: int, work: str, mode: str, count: int, elapsed: float
) -> dict[str, Any]:
    return {
        "kind": kind,
        "size": size,
        "work": work,
        "mode": mode,
        "calls": count,
        "calls_per_s": count / elapsed,
        "us_per_call": elapsed / count * 1e6,
        "overhead_us": max(0.0, elapsed * size / count * 1e6 - WORK_US[work]),
    }


def run_green(kind: str, quick: bool, repeat: int) -> list[dict[str, Any]]:
    args = [sys.executable, __file__, "--child", kind, "--repeat", str(repeat)]
    if quick:
        args.append("--quick")
    out = subprocess.run(args, capture_output=True, text=True, check=False)  # noqa: S603 - this script
    if out.returncode != 0:
        print(f"{kind}: skipped ({out.stderr.strip().splitlines()[-1:]})")
        return []
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'pool':<20} {'size':>4}  {'work':<9}  {'mode':<18} "
        f"{'calls/s':>10} {'us/call':>9} {'overhead us':>12}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['kind']:<20} {r['size']:>4}  {r['work']:<9}  {r['mode']:<18} "
            f"{r['calls_per_s']:>10,.0f} {r['us_per_call']:>9.1f} "
            f"{r['overhead_us']:>12.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls per figure")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds per figure (best kept)"
    )
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="comma-separated pool kinds"
    )
    parser.add_argument(
        "--no-stdlib", action="store_true", help="skip the stdlib executors"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        import pools

        pools.monkey_patch(options.child)
        print(json.dumps(run_pools([options.child], options.quick, options.repeat)))
        return
    import pools

    print(
        f"pools {pools.__version__} on Python {platform.python_version()}, "
        f"{platform.machine()} with {os.cpu_count()} CPUs"
    )
    kinds = [k for k in options.kinds.split(",") if k]
    rows = run_pools(
        [k for k in kinds if k not in GREEN], options.quick, options.repeat
    )
    for kind in kinds:
        if kind in GREEN:
            rows.extend(run_green(kind, options.quick, options.repeat))
    if not options.no_stdlib:
        rows.extend(run_stdlib(options.quick, options.repeat))
    print_table(rows)


if __name__ == "__main__":
    main()
