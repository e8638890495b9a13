"""Set+get round trips per store, and Redis ``wait`` latency across processes.

Run with ``nox -s bench -- resultstores``
(or ``python benchmarks/bench_resultstores.py``).
Options: ``--count N`` results per store (10,000), ``--waits N`` latency
samples (2,000), ``--stores a,b`` to choose. Servers come from the usual
variables (``REDIS_URL``, ``POSTGRES_URL``, ``MYSQL_URL``, ``MEMCACHED_URL``,
``MONGODB_URL``, ``COUCHDB_URL``), defaulting to the local ports; a store whose
server or driver is missing is reported and skipped.

``set+get/s``: ``mark_success`` then ``get`` of a small result (``{"n": i}``),
one after the other, from one thread. ``wait``: one process blocks in
``wait(task_id)``; another takes ``time.monotonic()`` (system-wide on Linux),
calls ``mark_success`` with that time in the result, and the waiter records
how long after it returned.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import resultstores
from resultstores import connect

PREFIX = f"qm_bench_{os.getpid()}"


def targets(tmp: str) -> dict[str, tuple[str, dict[str, Any]]]:
    env = os.environ.get
    couch = urlsplit(env("COUCHDB_URL", "http://127.0.0.1:5984"))
    return {
        "memory": ("memory://bench", {}),
        "sqlite": (f"sqlite:///{tmp}/bench.db", {}),
        "redis": (
            env("REDIS_URL", "redis://127.0.0.1:6379/0"),
            {"global_keyprefix": PREFIX + ":"},
        ),
        "postgresql": (
            env("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
            {"table_prefix": PREFIX + "_"},
        ),
        "mysql": (
            env("MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
            {"table_prefix": PREFIX + "_"},
        ),
        "memcached": (
            env("MEMCACHED_URL", "memcached://127.0.0.1:11211"),
            {"keyprefix": PREFIX + ":"},
        ),
        "mongodb": (
            env("MONGODB_URL", "mongodb://127.0.0.1:27017/test"),
            {"collection": PREFIX},
        ),
        "couchdb": (f"couchdb://{couch.netloc}/{PREFIX}", {}),
    }


def _run(store: Any, count: int) -> float:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    started = time.perf_counter()
    for number, task_id in enumerate(ids):
        store.mark_success(task_id, {"n": number})
        if store.get(task_id).result["n"] != number:
            raise AssertionError("read back the wrong result")
    return count / (time.perf_counter() - started)


def cleanup(name: str, store: Any) -> None:
    """Remove what the run wrote (tables, keys, collections, databases)."""
    try:
        if name == "redis":
            keys = list(store._client.scan_iter(match=PREFIX + "*", count=1000))
            for start in range(0, len(keys), 1000):
                store._client.delete(*keys[start : start + 1000])
        elif name in ("postgresql", "mysql"):
            with store._engine.begin() as connection:
                for table in ("results", "counters"):
                    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {PREFIX}_{table}")
        elif name == "mongodb":
            store._db.drop_collection(PREFIX)
            store._db.drop_collection(PREFIX + "_counters")
        elif name == "couchdb":
            store._server.delete(store.database)
    finally:
        store.close()


def _waiter(url: str, options: dict[str, Any], ids: list[str], pipe: Any) -> None:
    store = connect(url, **options)
    store.get(ids[0])  # connect before timing
    samples = []
    for task_id in ids:
        pipe.send(task_id)
        meta = store.wait(task_id, timeout=30.0)
        samples.append(time.monotonic() - meta.result)
    pipe.send(samples)
    store.close()


def wait_latency(
    url: str, options: dict[str, Any], samples: int
) -> tuple[float, float]:
    """Return p50 and p99 of mark_success (one process) -> wait returning (another)."""
    ids = [str(uuid.uuid4()) for _ in range(samples)]
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_waiter, args=(url, options, ids, theirs))
    process.start()
    store = connect(url, **options)
    for _ in ids:
        task_id = ours.recv()
        time.sleep(0.002)  # let the waiter subscribe; the result is pushed then
        store.mark_success(task_id, time.monotonic())
    latencies = sorted(ours.recv())
    process.join(30)
    store.close()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--waits", type=int, default=2_000)
    parser.add_argument("--stores", default="")
    args = parser.parse_args()
    print(
        f"resultstores {resultstores.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    chosen = {name for name in args.stores.split(",") if name}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'store':<12}{'set+get/s':>12}{'µs each':>10}")
        for name, (url, options) in targets(tmp).items():
            if chosen and name not in chosen:
                continue
            try:
                store = connect(url, **options)
                store.get("warm-up")
            except Exception as exc:  # noqa: BLE001 - a missing server skips the store
                print(
                    f"{name:<12}{'skipped':>12}  "
                    f"({type(exc).__name__}: {str(exc)[:80]})"
                )
                continue
            try:
                rate = _run(store, args.count)
            finally:
                cleanup(name, store)
            print(f"{name:<12}{rate:>12,.0f}{1e6 / rate:>10.0f}")
        if not chosen or "redis" in chosen:
            url, options = targets(tmp)["redis"]
            try:
                p50, p99 = wait_latency(url, options, args.waits)
            except Exception as exc:  # noqa: BLE001 - a missing server skips the figure
                print(f"redis wait: skipped ({type(exc).__name__}: {exc})")
            else:
                print(
                    f"redis wait, {args.waits} samples: p50 {p50 * 1e3:.3f} ms, "
                    f"p99 {p99 * 1e3:.3f} ms"
                )
                with connect(url, **options) as store:
                    cleanup("redis", store)


if __name__ == "__main__":
    main()
