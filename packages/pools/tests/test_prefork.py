from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, wait
from pathlib import Path

import pools_helpers as h
import pytest

from conftest import alive, descendants, exists, wait_until
from pools import (
    PoolClosedError,
    PreforkPool,
    RemoteException,
    RemoteTraceback,
    SoftTimeLimitExceeded,
    TerminatedError,
    TimeLimitExceeded,
    UnpicklableCallError,
    UnpicklableResultError,
    WorkerLostError,
    create_pool,
)

TESTS = Path(__file__).parent


@pytest.fixture
def pool() -> Iterator[PreforkPool]:
    with create_pool("prefork", size=2) as made:
        assert isinstance(made, PreforkPool)
        yield made


def worker_pids(pool: PreforkPool) -> set[int]:
    return {w.pid for w in pool.stats().workers if w.pid is not None}


def wait_for_workers(pool: PreforkPool, count: int) -> set[int]:
    assert wait_until(lambda: len(worker_pids(pool)) == count, 10)
    return worker_pids(pool)


class TestCalls:
    def test_submit_map_and_submit_many_return_results(self, pool: PreforkPool) -> None:
        assert pool.submit(h.add, 1, 2).result(10) == 3
        assert list(pool.map(h.add, [1, 2, 3], [10, 20, 30])) == [11, 22, 33]
        futures = pool.submit_many(h.add, [(i, i) for i in range(500)])
        assert [f.result(10) for f in futures] == [2 * i for i in range(500)]

    def test_submit_call_takes_args_and_kwargs(self, pool: PreforkPool) -> None:
        assert pool.submit_call(h.sleep_then, (0,), {"value": "kw"}).result(10) == "kw"

    def test_calls_run_in_other_processes(self, pool: PreforkPool) -> None:
        pids = {f.result(10) for f in pool.submit_many(h.pid, [()] * 20)}
        assert os.getpid() not in pids
        assert pids <= worker_pids(pool)

    def test_exceptions_come_back_with_type_message_and_traceback(
        self, pool: PreforkPool
    ) -> None:
        with pytest.raises(h.CustomError, match="broken") as caught:
            pool.submit(h.raise_custom, "broken").result(10)
        cause = caught.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert "raise_custom" in cause.traceback
        assert "CustomError: broken" in cause.traceback

    @pytest.mark.parametrize("raiser", [h.raise_strict, h.raise_locked])
    def test_an_exception_that_cannot_cross_comes_back_wrapped(
        self, pool: PreforkPool, raiser: object
    ) -> None:
        with pytest.raises(RemoteException) as caught:
            pool.submit(raiser).result(10)  # type: ignore[arg-type]
        assert caught.value.type_name.startswith("pools_helpers.")
        assert caught.value.type_name.endswith("Error")
        assert "Traceback" in caught.value.traceback
        assert caught.value.message in str(caught.value)

    def test_an_unpicklable_result_fails_only_its_future(
        self, pool: PreforkPool
    ) -> None:
        bad = pool.submit(h.return_lock)
        good = pool.submit_many(h.add, [(1, 1)] * 10)
        with pytest.raises(UnpicklableResultError, match=r"_thread\.lock"):
            bad.result(10)
        assert [f.result(10) for f in good] == [2] * 10

    def test_unpicklable_calls_are_refused_at_submit(self, pool: PreforkPool) -> None:
        with pytest.raises(UnpicklableCallError, match="lambda"):
            pool.submit(lambda: 1)
        with pytest.raises(UnpicklableCallError, match="module-level function"):
            pool.submit(h.add, threading.Lock(), 1)
        with pytest.raises(UnpicklableCallError, match="lambda"):
            pool.submit_many(lambda x: x, [(1,), (2,)])
        good, bad, last = pool.submit_many(
            h.add, [(1, 2), (threading.Lock(), 1), (2, 2)]
        )
        with pytest.raises(UnpicklableCallError, match="cannot pickle"):
            bad.result(0)
        assert (good.result(10), last.result(10)) == (3, 4)

    def test_done_callbacks_run_in_the_manager_thread(self, pool: PreforkPool) -> None:
        seen: list[str] = []
        done = threading.Event()
        future = pool.submit(h.sleep_then, 0.3)
        future.add_done_callback(
            lambda f: (seen.append(threading.current_thread().name), done.set())
        )
        assert done.wait(10)
        assert seen == ["pools-prefork-manager"]


class TestTimeLimits:
    def test_soft_limit_is_raised_inside_the_call_which_may_clean_up(
        self, pool: PreforkPool
    ) -> None:
        future = pool.submit_call(h.sleep_and_cleanup, (10,), soft_time_limit=0.3)
        assert future.result(10) == "cleaned up"

    def test_soft_limit_interrupts_a_cpu_loop_and_a_sleep(
        self, pool: PreforkPool
    ) -> None:
        cpu = pool.submit_call(h.cpu_for, (10,), soft_time_limit=0.3)
        sleep = pool.submit_call(h.sleep_for, (10,), soft_time_limit=0.3)
        assert cpu.result(10).startswith("soft after 0.")
        assert sleep.result(10).startswith("soft after 0.")

    def test_an_uncaught_soft_limit_fails_the_future(self, pool: PreforkPool) -> None:
        with pytest.raises(SoftTimeLimitExceeded):
            pool.submit_call(h.sleep_then, (10,), soft_time_limit=0.2).result(10)
        assert pool.submit(h.add, 2, 2).result(10) == 4

    def test_pool_default_limits_apply_and_calls_override_them(self) -> None:
        with create_pool("prefork", size=1, soft_time_limit=0.2) as pool:
            assert pool.submit(h.sleep_and_cleanup, 10).result(10) == "cleaned up"
            assert (
                pool.submit_call(h.sleep_for, (0.5,), soft_time_limit=5).result(10)
                == "finished"
            )

    def test_hard_limit_kills_and_replaces_the_worker(self, pool: PreforkPool) -> None:
        before = wait_for_workers(pool, 2)
        started = time.monotonic()
        future = pool.submit_call(
            h.ignore_limits, (30,), soft_time_limit=0.2, time_limit=0.5
        )
        with pytest.raises(TimeLimitExceeded, match=r"0\.5 s"):
            future.result(10)
        assert time.monotonic() - started < 5
        after = wait_for_workers(pool, 2)
        assert len(before - after) == 1
        assert [f.result(10) for f in pool.submit_many(h.add, [(1, 1)] * 20)] == [
            2
        ] * 20

    def test_hard_limit_leaves_the_other_calls_of_its_worker_alone(self) -> None:
        with create_pool("prefork", size=1, time_limit=1.0) as pool:
            futures = pool.submit_many(h.sleep_then, [(30,), (0, "a"), (0, "b")])
            with pytest.raises(TimeLimitExceeded):
                futures[0].result(10)
            assert [f.result(10) for f in futures[1:]] == ["a", "b"]

    def test_soft_limit_longer_than_hard_limit_is_refused(
        self, pool: PreforkPool
    ) -> None:
        with pytest.raises(ValueError, match="soft_time_limit"):
            pool.submit_call(h.noop, soft_time_limit=5, time_limit=1)


class TestTerminate:
    def test_terminate_stops_a_running_call_with_sigterm(
        self, pool: PreforkPool
    ) -> None:
        future = pool.submit(h.sleep_then, 30)
        assert wait_until(lambda: pool.stats().busy == 1, 10)
        assert future.terminate() is True
        with pytest.raises(TerminatedError, match="SIGTERM"):
            future.result(10)
        assert pool.submit(h.add, 1, 1).result(10) == 2

    def test_terminate_takes_a_signal(self, pool: PreforkPool) -> None:
        future = pool.submit(h.ignore_sigterm_then_sleep, 30)
        assert wait_until(lambda: pool.stats().busy == 1, 10)
        time.sleep(0.2)
        future.terminate(signal.SIGKILL)
        with pytest.raises(TerminatedError, match="SIGKILL"):
            future.result(10)
        assert wait_until(lambda: len(worker_pids(pool)) == 2, 10)

    def test_a_worker_ignoring_the_signal_is_killed_after_a_grace_period(
        self, pool: PreforkPool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import pools._prefork

        monkeypatch.setattr(pools._prefork, "_KILL_GRACE", 0.5)
        wait_for_workers(pool, 2)
        future = pool.submit(h.ignore_sigterm_then_sleep, 30)
        assert wait_until(lambda: pool.stats().busy == 1, 10)
        time.sleep(0.2)
        victim = next(w.pid for w in pool.stats().workers if w.busy)
        assert victim is not None
        future.terminate()
        with pytest.raises(TerminatedError, match="SIGTERM"):
            future.result(10)
        assert wait_until(lambda: not alive(victim), 5)
        wait_for_workers(pool, 2)

    def test_terminate_before_start_cancels(self) -> None:
        with create_pool("prefork", size=1) as pool:
            running = pool.submit(h.sleep_then, 1)
            queued = pool.submit(h.add, 1, 1)
            assert queued.terminate() is True
            with pytest.raises(CancelledError):
                queued.result(10)
            running.result(10)

    def test_terminate_after_the_end_returns_false(self, pool: PreforkPool) -> None:
        future = pool.submit(h.add, 1, 1)
        future.result(10)
        assert future.terminate() is False

    def test_terminate_refuses_a_bad_signal(self, pool: PreforkPool) -> None:
        future = pool.submit(h.sleep_then, 0.5)
        with pytest.raises(ValueError, match="not a signal"):
            future.terminate(9999)
        future.result(10)


class TestWorkerDeath:
    @pytest.mark.parametrize(
        ("call", "args", "expected"),
        [
            (h.kill_self, (signal.SIGKILL,), "signal SIGKILL (9)"),
            (h.segfault, (), "signal SIGSEGV (11)"),
            (h.exit_with, (3,), "exit code 3"),
        ],
        ids=["sigkill", "segfault", "os._exit"],
    )
    def test_a_dying_worker_fails_only_its_call_and_is_replaced(
        self, call: object, args: tuple[object, ...], expected: str
    ) -> None:
        with create_pool("prefork", size=2) as pool:
            wait_for_workers(pool, 2)
            others = pool.submit_many(h.sleep_then, [(0.3, i) for i in range(6)])
            doomed = pool.submit(call, *args)  # type: ignore[arg-type]
            with pytest.raises(WorkerLostError) as caught:
                doomed.result(10)
            assert expected in str(caught.value)
            assert [f.result(10) for f in others] == list(range(6))
            wait_for_workers(pool, 2)
            assert pool.submit(h.add, 5, 5).result(10) == 10

    def test_a_worker_killed_from_outside_while_idle_is_replaced(
        self, pool: PreforkPool
    ) -> None:
        pids = wait_for_workers(pool, 2)
        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)
        assert wait_until(
            lambda: victim not in worker_pids(pool) and len(worker_pids(pool)) == 2, 10
        )
        assert pool.submit(h.add, 1, 1).result(10) == 2


class TestRecycling:
    def test_max_tasks_per_child_replaces_workers_without_failing_calls(self) -> None:
        with create_pool("prefork", size=2, max_tasks_per_child=3) as pool:
            futures = pool.submit_many(h.pid, [()] * 30)
            pids = [f.result(10) for f in futures]
            assert len(set(pids)) >= 10
            assert all(pids.count(p) <= 3 for p in set(pids))

    def test_max_memory_per_child_replaces_a_worker_between_calls(self) -> None:
        with create_pool("prefork", size=1) as probe:
            baseline = probe.submit(h.rss_kib).result(10)
        assert baseline is not None
        with create_pool(
            "prefork", size=1, max_memory_per_child_kib=baseline + 40_000
        ) as pool:
            first = pool.submit(h.hoard_kib, 80_000)
            rest = [pool.submit(h.pid) for _ in range(3)]
            fat = first.result(10)
            assert all(f.result(10) != fat for f in rest)
            assert pool.submit(h.pid).result(10) != fat

    def test_initializer_finalizer_and_after_fork_run_in_each_child(
        self, tmp_path: Path
    ) -> None:
        log = str(tmp_path / "hooks.log")
        with create_pool(
            "prefork",
            size=2,
            max_tasks_per_child=2,
            initializer=h.record,
            initargs=(log, "init"),
            finalizer=h.record,
            finalargs=(log, "final"),
            after_fork=h.noop,
        ) as pool:
            pids = {f.result(10) for f in pool.submit_many(h.pid, [()] * 6)}
        records = h.read_records(log)
        inits = {pid for label, pid in records if label == "init"}
        finals = {pid for label, pid in records if label == "final"}
        assert pids <= inits
        assert inits == finals

    def test_after_fork_runs_before_the_initializer(self, tmp_path: Path) -> None:
        log = tmp_path / "order.log"
        script = f"""
            import pools_helpers as h
            from functools import partial
            from pools import create_pool
            def after_fork():
                h.record({str(log)!r}, "after_fork")
            if __name__ == "__main__":
                with create_pool(
                    "prefork", size=1, after_fork=after_fork,
                    initializer=h.record, initargs=({str(log)!r}, "init"),
                ) as pool:
                    pool.submit(h.noop).result(10)
        """
        run_script(script, tmp_path)
        assert [label for label, _ in h.read_records(log)] == ["after_fork", "init"]

    def test_a_failing_hook_is_logged_and_the_worker_goes_on(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with (
            caplog.at_level(logging.ERROR, logger="pools._prefork"),
            create_pool("prefork", size=1, initializer=h.failing_hook) as pool,
        ):
            assert pool.submit(h.add, 1, 2).result(10) == 3
        assert "hook exploded" in caplog.text
        assert "initializer" in caplog.text


@pytest.mark.slow
class TestFairDispatch:
    def test_short_calls_never_wait_behind_a_long_one(self) -> None:
        with create_pool("prefork", size=2) as pool:
            wait_for_workers(pool, 2)
            long = pool.submit(h.sleep_then_pid, 3)
            time.sleep(0.2)
            started = time.monotonic()
            shorts = [pool.submit(h.sleep_then_pid, 0.05) for _ in range(10)]
            wait(shorts, timeout=10)
            assert time.monotonic() - started < 2.5
            assert not long.done()
            assert {f.result() for f in shorts}.isdisjoint({long.result(10)})

    def test_a_batch_is_taken_back_from_a_worker_stuck_on_a_long_call(self) -> None:
        with create_pool("prefork", size=2) as pool:
            wait_for_workers(pool, 2)
            started = time.monotonic()
            futures = pool.submit_many(h.sleep_then_pid, [(3,)] + [(0.05,)] * 20)
            wait(futures[1:], timeout=10)
            assert time.monotonic() - started < 2.5
            assert not futures[0].done()
            long_pid = futures[0].result(10)
            assert sum(1 for f in futures[1:] if f.result() == long_pid) <= 1


class TestResize:
    def test_grow_and_shrink_change_the_workers(self, pool: PreforkPool) -> None:
        wait_for_workers(pool, 2)
        pool.grow(2)
        assert pool.size == 4
        wait_for_workers(pool, 4)
        pool.shrink(3)
        assert pool.size == 1
        wait_for_workers(pool, 1)
        assert [f.result(10) for f in pool.submit_many(h.add, [(1, 1)] * 5)] == [2] * 5

    def test_shrink_waits_for_running_calls(self, pool: PreforkPool) -> None:
        futures = [pool.submit(h.sleep_then, 0.5, i) for i in range(2)]
        time.sleep(0.1)
        pool.shrink(1)
        assert [f.result(10) for f in futures] == [0, 1]

    def test_bad_resizes_are_refused(self, pool: PreforkPool) -> None:
        with pytest.raises(ValueError, match="at least one"):
            pool.shrink(2)
        with pytest.raises(ValueError, match="positive integer"):
            pool.grow(0)
        with pytest.raises(TypeError, match="positive integer"):
            pool.grow(1.5)  # type: ignore[arg-type]

    def test_stats_report_pids_rss_and_counts(self, pool: PreforkPool) -> None:
        [f.result(10) for f in pool.submit_many(h.add, [(1, 1)] * 10)]
        stats = pool.stats()
        assert stats.kind == "prefork"
        assert stats.size == 2
        assert stats.processed == 10
        assert sum(w.processed for w in stats.workers) == 10
        assert all(w.rss_kib and w.rss_kib > 1000 for w in stats.workers)
        assert all(w.pid and alive(w.pid) for w in stats.workers)


class TestShutdown:
    def test_shutdown_wait_finishes_queued_work_and_leaves_no_process(self) -> None:
        pool = create_pool("prefork", size=2)
        futures = pool.submit_many(h.sleep_then, [(0.05, i) for i in range(20)])
        processes = descendants(os.getpid())
        assert processes
        pool.shutdown(wait=True)
        assert [f.result(0) for f in futures] == list(range(20))
        assert not [pid for pid in processes if exists(pid)]

    def test_cold_shutdown_stops_now_and_leaves_no_process(self) -> None:
        pool = create_pool("prefork", size=2)
        running = [pool.submit(h.sleep_then, 30) for _ in range(2)]
        assert wait_until(lambda: pool.stats().busy == 2, 10)
        queued = [pool.submit(h.sleep_then, 30) for _ in range(5)]
        processes = descendants(os.getpid())
        started = time.monotonic()
        pool.shutdown(wait=False, cancel_futures=True)
        assert time.monotonic() - started < 1
        for future in running:
            with pytest.raises(TerminatedError):
                future.result(5)
        for future in queued:
            with pytest.raises(CancelledError):
                future.result(5)
        assert wait_until(lambda: not [pid for pid in processes if exists(pid)], 5)

    def test_a_cold_shutdown_after_a_warm_one_stops_the_running_calls(self) -> None:
        pool = create_pool("prefork", size=1)
        running = pool.submit(h.sleep_then, 30)
        assert wait_until(lambda: pool.stats().busy == 1, 10)
        processes = descendants(os.getpid())
        waiter = threading.Thread(target=pool.shutdown, kwargs={"wait": True})
        waiter.start()  # the warm shutdown waits for the running call ...
        time.sleep(0.2)
        started = time.monotonic()
        pool.shutdown(wait=False, cancel_futures=True)  # ... until a second signal
        with pytest.raises(TerminatedError):
            running.result(5)
        waiter.join(5)
        assert not waiter.is_alive()
        assert time.monotonic() - started < 5
        assert wait_until(lambda: not [pid for pid in processes if exists(pid)], 5)

    def test_shutdown_with_cancel_futures_waits_for_running_calls_only(self) -> None:
        pool = create_pool("prefork", size=1)
        running = pool.submit(h.sleep_then, 0.5, "done")
        queued = [pool.submit(h.add, 1, 1) for _ in range(5)]
        time.sleep(0.2)
        pool.shutdown(wait=True, cancel_futures=True)
        assert running.result(0) == "done"
        assert all(f.cancelled() or f.exception() is not None for f in queued)

    def test_shutdown_wait_runs_calls_handed_back_by_a_killed_worker(self) -> None:
        pool = create_pool("prefork", size=1, time_limit=0.5)
        futures = pool.submit_many(h.sleep_then, [(30,), (0, "a"), (0, "b")])
        assert wait_until(lambda: pool.stats().busy == 1, 10)
        pool.shutdown(wait=True)
        with pytest.raises(TimeLimitExceeded):
            futures[0].result(0)
        assert [f.result(0) for f in futures[1:]] == ["a", "b"]

    def test_submit_after_shutdown_is_refused(self) -> None:
        pool = create_pool("prefork", size=1)
        pool.shutdown()
        pool.shutdown()
        with pytest.raises(PoolClosedError, match="shut down"):
            pool.submit(h.noop)
        with pytest.raises(PoolClosedError):
            pool.grow()


def run_script(source: str, cwd: Path, *args: str, timeout: float = 60) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::DeprecationWarning",
            "-c",
            textwrap.dedent(source),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


PARENT_SCRIPT = """
    import os, sys, threading, time
    import pools_helpers as h
    from pools import create_pool

    def main():
        pool = create_pool("prefork", size=2, start_method=sys.argv[1])
        futures = [pool.submit(h.sleep_then, 60) for _ in range(2)]
        while pool.stats().busy < 2 or None in [w.pid for w in pool.stats().workers]:
            time.sleep(0.05)
        pids = [w.pid for w in pool.stats().workers]
        print(os.getpid(), pool._server_pid, *pids, flush=True)
        time.sleep(60)

    if __name__ == "__main__":
        if sys.argv[2] == "thread":
            threading.Thread(target=main).start()
        else:
            main()
"""


class TestParentDeath:
    @pytest.mark.parametrize(
        ("start_method", "where"),
        [("fork", "main"), ("spawn", "thread")],
        ids=[
            "fork-server-forked-from-main-thread",
            "fork-server-spawned-from-a-thread",
        ],
    )
    def test_sigkill_of_the_parent_ends_every_child_within_two_seconds(
        self, tmp_path: Path, start_method: str, where: str
    ) -> None:
        env = {**os.environ, "PYTHONPATH": str(TESTS)}
        with subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(PARENT_SCRIPT), start_method, where],
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        ) as parent:
            try:
                assert parent.stdout is not None
                line = parent.stdout.readline()
                pids = [int(p) for p in line.split()]
                assert len(pids) == 4, line
                assert all(alive(p) for p in pids[1:])
            finally:
                parent.kill()
                parent.wait()
            killed = time.monotonic()
            assert wait_until(lambda: not any(alive(p) for p in pids[1:]), 2.0)
            assert time.monotonic() - killed <= 2.0


FORK_POLICY_SCRIPT = """
    import os, sys, threading, time
    import pools_helpers as h

    real_fork = os.fork
    log = sys.argv[1]

    def checked_fork():
        threads = len(os.listdir("/proc/self/task"))
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {threads}\\n")
        return real_fork()

    os.fork = checked_fork
    from pools import create_pool

    if __name__ == "__main__":
        pool = create_pool("prefork", size=2)
        print(pool.start_method)
        stop = threading.Event()
        busy = [threading.Thread(target=stop.wait) for _ in range(3)]
        for t in busy:
            t.start()
        pool.grow(2)
        doomed = pool.submit(h.exit_with, 1)
        try:
            doomed.result(10)
        except Exception:
            pass
        while len(pool.stats().workers) < 4:
            time.sleep(0.05)
        print(sum(f.result(10) for f in pool.submit_many(h.add, [(1, 1)] * 50)))
        second = create_pool("prefork", size=1)
        print(second.start_method, second.submit(h.add, 2, 2).result(30))
        second.shutdown()
        pool.shutdown()
        stop.set()
"""


class TestForkPolicy:
    def test_no_fork_ever_happens_in_a_multi_threaded_process(
        self, tmp_path: Path
    ) -> None:
        log = tmp_path / "forks.log"
        out = run_script(FORK_POLICY_SCRIPT, tmp_path, str(log)).split()
        assert out == ["fork", "100", "spawn", "4"]
        forks = [line.split() for line in log.read_text().splitlines()]
        # The pool's fork server (once) and then its workers, each forked by a
        # single-threaded process.
        assert len(forks) >= 6
        assert all(threads == "1" for _pid, threads in forks)

    def test_fork_start_method_is_refused_while_threads_run(self) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait)
        thread.start()
        try:
            with pytest.raises(ValueError, match="single-threaded"):
                create_pool("prefork", size=1, start_method="fork")
        finally:
            stop.set()
            thread.join()

    def test_spawn_start_method_runs_importable_callables(self) -> None:
        with create_pool("prefork", size=2, start_method="spawn") as pool:
            assert pool.start_method == "spawn"
            assert [f.result(30) for f in pool.submit_many(h.add, [(1, 2)] * 10)] == [
                3
            ] * 10
            with pytest.raises(h.CustomError):
                pool.submit(h.raise_custom, "x").result(10)

    def test_spawn_reports_an_unpicklable_hook(self) -> None:
        with pytest.raises(UnpicklableCallError, match="initializer"):
            create_pool(
                "prefork", size=1, start_method="spawn", initializer=lambda: None
            )

    def test_main_module_functions_work_in_fork_mode(self, tmp_path: Path) -> None:
        script = """
            from pools import create_pool
            def square(x):
                return x * x
            with create_pool("prefork", size=2) as pool:
                futures = pool.submit_many(square, [(i,) for i in range(10)])
                print(sum(f.result(10) for f in futures))
        """
        assert run_script(script, tmp_path).strip() == "285"

    def test_a_process_forked_from_the_pool_process_cannot_use_the_pool(
        self, tmp_path: Path
    ) -> None:
        script = """
            import os, warnings
            import pools_helpers as h
            from pools import PoolClosedError, create_pool
            with create_pool("prefork", size=1) as pool:
                pool.submit(h.noop).result(10)
                warnings.simplefilter("ignore", DeprecationWarning)  # our own fork
                child = os.fork()
                if child == 0:
                    try:
                        pool.submit(h.noop)
                    except PoolClosedError:
                        os._exit(0)
                    os._exit(1)
                _, status = os.waitpid(child, 0)
                code = os.waitstatus_to_exitcode(status)
                print(code, pool.submit(h.add, 1, 1).result(10))
        """
        assert run_script(script, tmp_path).split() == ["0", "2"]

    def test_bad_start_method_is_refused(self) -> None:
        with pytest.raises(ValueError, match="start_method"):
            create_pool("prefork", size=1, start_method="forkserver")
