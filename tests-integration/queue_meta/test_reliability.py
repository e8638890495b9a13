"""Reliability of the worker under shutdowns and faults, with real ``queue worker``
processes on the embedded default (SQLite), Redis, RabbitMQ and PostgreSQL.

- A warm shutdown (SIGTERM) finishes the running tasks and returns the
  prefetched ones to the queue; a second worker runs those, each exactly once.
- A cold shutdown (SIGQUIT, or a second SIGTERM) stops at once (``queue
  worker`` still exits 0), leaves no process behind, and the broker delivers
  the interrupted tasks again: each runs exactly once more.
- A task that runs longer than the lease is not taken by another worker.
- Workers killed with SIGKILL every few seconds lose no task; the duplicate
  executions stay within what the killed workers held unacknowledged.
- A rate limit keeps its rate without holding up other tasks; soft and hard
  time limits on Redis and RabbitMQ.

Tasks write one line per event to a trace file with a single ``O_APPEND``
write, so lines of concurrent processes never mix and every execution counts.
Results on RabbitMQ go to a SQLite file, since ``rpc://`` results can be read
only once, by the sender.
"""

from __future__ import annotations

import collections
import contextlib
import random
import secrets
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from e2e_helpers import BROKERS, SERVERS, alive, descendants, wait_for, where

from queue_meta import TimeLimitExceeded

if TYPE_CHECKING:
    from conftest import EndToEnd, RunningWorker


#: A short lease, so that a killed worker's messages come back within seconds.
SHORT_LEASE = {"lease": 3.0, "renew_interval": 1.0}

TRACED = """
app = App(NAME, **APP_OPTIONS, **EXTRA)
TRACE = os.path.join(HOME, "trace.txt")


def note(*words):
    line = " ".join(str(word) for word in words) + "\\n"
    fd = os.open(TRACE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.task(bind=True)
def work(self, seconds):
    note("start", self.request.id, os.getpid())
    time.sleep(seconds)
    note("end", self.request.id, os.getpid())
    return os.getpid()
"""


def _where(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> dict[str, Any]:
    """Broker and backend arguments of ``e2e.worker`` for *broker*."""
    return where(request, broker, amqp_backend=f"sqlite:///{e2e.home / 'results.db'}")


def _source(template: str, broker: str) -> str:
    """*template* with ``EXTRA`` (App settings): a short lease where there is one."""
    settings = (
        {} if broker == "amqp_broker" else {"broker_transport_options": SHORT_LEASE}
    )
    return f"EXTRA = {settings!r}\n{template}"


class Trace:
    """The lines the tasks wrote: ``start <id> <pid>`` and ``end <id> <pid>``."""

    def __init__(self, path: Path) -> None:
        text = path.read_text() if path.exists() else ""
        self.lines = [line.split() for line in text.splitlines()]
        self.starts = collections.Counter(w[1] for w in self.lines if w[0] == "start")
        self.ends = collections.Counter(w[1] for w in self.lines if w[0] == "end")

    def __repr__(self) -> str:
        return "\n".join(" ".join(words) for words in self.lines)


def _trace(e2e: EndToEnd) -> Trace:
    return Trace(e2e.home / "trace.txt")


def _queue_size(worker: RunningWorker) -> int:
    """Messages ready in the default queue (RabbitMQ: not counting unacked ones)."""
    return int(worker.app.transport.size(worker.app.conf.task_default_queue))


# -- warm and cold shutdown ------------------------------------------------------------


@pytest.mark.parametrize("broker", BROKERS)
def test_warm_shutdown_finishes_running_tasks_and_returns_prefetched_ones(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> None:
    where = _where(e2e, request, broker)
    source = _source(TRACED, broker)
    # -c 2 with 6 messages per process: the worker takes all 12 at once.
    with e2e.worker(
        source, "--prefetch-multiplier", "6", **where, concurrency=2
    ) as first:
        module = first.module
        results = first.app.send_many([module.work.s(1.5) for _ in range(12)])
        ids = [result.id for result in results]
        wait_for(lambda: len(_trace(e2e).starts) == 2, 15, "two tasks did not start")
        wait_for(lambda: _queue_size(first) == 0, 10, "the worker took fewer than 12")
        running = set(_trace(e2e).starts)
        first.signal(signal.SIGTERM)
        started = time.monotonic()
        assert first.proc.wait(timeout=15) == 0
        took = time.monotonic() - started
        trace = _trace(e2e)
        # The two running tasks finished (it did not run the 10 others first).
        assert set(trace.starts) == running, trace
        assert set(trace.ends) == running, trace
        assert max(trace.starts.values()) == 1, trace
        # About 1.7 s here (the running task's 1.5 s); the bound leaves room for a
        # loaded machine (5 s seen in CI) and stays below running the ten
        # others on two processes (7.5 s more).
        assert 0.5 <= took < 1.5 + 5.5, f"a warm shutdown took {took:.1f} s"
        assert first.lines("warm shutdown")
        for result in results:
            assert result.state == ("SUCCESS" if result.id in running else "PENDING")
        # The ten prefetched messages are back in the queue, ready for another worker.
        wait_for(lambda: _queue_size(first) == 10, 5, "10 messages were not returned")
    with e2e.worker("", module=module, concurrency=5) as second:
        for result in results:
            result.get(timeout=30)
            assert result.state == "SUCCESS"
        trace = _trace(e2e)
        assert sorted(trace.starts) == sorted(ids), trace
        assert set(trace.starts.values()) == {1}, trace  # each exactly once
        assert set(trace.ends.values()) == {1}, trace
        assert _queue_size(second) == 0


@pytest.mark.parametrize(
    "how",
    [
        "SIGQUIT",
        "SIGTERM twice",
    ],
)
@pytest.mark.parametrize("broker", BROKERS)
def test_cold_shutdown_stops_at_once_and_the_broker_delivers_again(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str, how: str
) -> None:
    where = _where(e2e, request, broker)
    source = _source(TRACED, broker)
    # 2 running and 2 prefetched; 2 more wait in the queue.
    with e2e.worker(
        source,
        "--prefetch-multiplier",
        "2",
        **where,
        concurrency=2,
        clean_log=False,
    ) as first:
        module = first.module
        results = first.app.send_many([module.work.s(2.0) for _ in range(6)])
        ids = [result.id for result in results]
        wait_for(lambda: len(_trace(e2e).starts) == 2, 15, "two tasks did not start")
        running = set(_trace(e2e).starts)
        family = descendants(first.proc.pid)
        assert family, "the prefork worker has no children"
        if how == "SIGQUIT":
            first.signal(signal.SIGQUIT)
        else:  # the second once the first was handled: signals do not queue up
            first.signal(signal.SIGTERM)
            first.wait_for_log("warm shutdown")
            first.signal(signal.SIGTERM)
        started = time.monotonic()
        status = first.proc.wait(timeout=10)
        took = time.monotonic() - started
        first.killed = True  # its exit status is checked here
        # The worker still runs its shutdown path, so `queue worker` exits 0.
        assert status == 0, f"cold shutdown exited with {status}"
        assert took < 1.5, f"a cold shutdown took {took:.1f} s"
        for pid in family:
            wait_for(lambda p=pid: not alive(p), 5, f"process {pid} outlived it")
        trace = _trace(e2e)
        assert set(trace.starts) == running, trace
        assert not trace.ends, trace  # stopped mid-task
        assert first.lines("cold shutdown")
        assert first.lines("stopped:")
    with e2e.worker("", module=module, concurrency=4):
        for result in results:
            result.get(timeout=30)
            assert result.state == "SUCCESS"
        trace = _trace(e2e)
        assert sorted(trace.starts) == sorted(ids), trace
        for task_id in ids:
            again = 2 if task_id in running else 1
            assert trace.starts[task_id] == again, (task_id, trace)
            assert trace.ends[task_id] == 1, (task_id, trace)


# -- leases ----------------------------------------------------------------------------


@pytest.mark.parametrize("broker", ["embedded", "redis_broker", "postgres_url"])
def test_a_task_longer_than_the_lease_runs_once_with_two_workers(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> None:
    where = _where(e2e, request, broker)
    source = _source(TRACED, broker)
    with e2e.worker(source, **where, concurrency=1) as first:
        module = first.module
        with e2e.worker("", module=module, concurrency=1):
            # 8 s: the 3 s lease ends twice over unless it is renewed.
            long = module.work.delay(8.0)
            wait_for(lambda: _trace(e2e).starts, 10, "the long task did not start")
            # Meanwhile the other worker consumes the same queue: it would take
            # the long task as well if its lease lapsed.
            quick = module.work.delay(0)
            assert quick.get(timeout=10) != long.get(timeout=30)
            trace = _trace(e2e)
            assert trace.starts == {long.id: 1, quick.id: 1}, trace
            assert trace.ends == {long.id: 1, quick.id: 1}, trace


# -- random kills ----------------------------------------------------------------------

RECORDED = """
app = App(
    NAME,
    **APP_OPTIONS,
    **EXTRA,
    task_routes={"reliability.record": {"queue": NAME + ".bulk"}},
)
RUNS = os.path.join(HOME, "runs")
os.makedirs(RUNS, exist_ok=True)


@app.task(name="reliability.record", bind=True)
def record(self, seconds):
    path = os.path.join(RUNS, str(os.getpid()))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (self.request.id + "\\n").encode())
    finally:
        os.close(fd)
    time.sleep(seconds)
"""

TOTAL = 10_000
WORKERS = 4
CONCURRENCY = 2
MULTIPLIER = 4
PREFETCH = CONCURRENCY * MULTIPLIER


def _runs(e2e: EndToEnd) -> collections.Counter[str]:
    """How often each task id ran, over every process."""
    counts: collections.Counter[str] = collections.Counter()
    folder = e2e.home / "runs"
    for path in folder.iterdir() if folder.exists() else ():
        counts.update(path.read_text().split())
    return counts


@pytest.mark.parametrize("broker", BROKERS)
def test_random_sigkills_lose_no_task_and_bound_the_duplicates(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> None:
    where = _where(e2e, request, broker)
    name = e2e.write_module(_source(RECORDED, broker), **where)
    module = e2e.import_module(name)
    app = module.app
    # The tasks go to a queue of their own, so that the ping which tells that a
    # restarted worker is ready does not wait behind thousands of them.
    args = ("-Q", f"{name},{name}.bulk", "--prefetch-multiplier", str(MULTIPLIER))
    seed = secrets.randbelow(2**32)
    rng = random.Random(seed)  # noqa: S311 - a schedule to replay, not a secret
    kills = 0
    timeline: list[str] = []
    with contextlib.ExitStack() as stack:

        def start() -> RunningWorker:
            return stack.enter_context(
                e2e.worker(
                    "", *args, module=module, concurrency=CONCURRENCY, clean_log=False
                )
            )

        workers = [start() for _ in range(WORKERS)]
        began = time.monotonic()
        # 5 ms each: at least 6 s on the 8 processes, so that kills hit mid-run.
        signatures = [module.record.s(0.005) for _ in range(TOTAL)]
        ids: list[str] = []
        pending: set[str] = set()
        next_kill = began + rng.uniform(2.0, 3.0)
        while len(ids) < TOTAL or pending:
            if len(ids) < TOTAL:  # publish in chunks, killing meanwhile
                sent = app.send_many(signatures[len(ids) : len(ids) + 500])
                ids += [result.id for result in sent]
                pending.update(result.id for result in sent)
                if len(ids) == TOTAL:
                    timeline.append(f"{time.monotonic() - began:.1f} s: all sent")
            else:
                time.sleep(0.2)
            now = time.monotonic()
            ran = len(_runs(e2e))
            if now - began > 90:  # 10-40 s here
                pytest.fail(
                    f"after {now - began:.0f} s, {ran} of {TOTAL} tasks ran and "
                    f"{len(pending)} have no SUCCESS yet; {kills} kills (seed {seed}): "
                    + "; ".join(timeline)
                )
            if now >= next_kill:
                victim = rng.randrange(WORKERS)
                workers[victim].sigkill()
                kills += 1
                timeline.append(f"{now - began:.1f} s: kill #{kills} at {ran} ran")
                workers[victim] = start()
                next_kill = time.monotonic() + rng.uniform(2.0, 3.0)
            if ran == TOTAL:  # each ran at least once: are their results stored?
                states = app.backend.get_many(pending)
                pending -= {i for i, meta in states.items() if meta.state == "SUCCESS"}
        took = time.monotonic() - began
        runs = _runs(e2e)
    duplicates = sum(runs.values()) - len(runs)
    report = (
        f"{broker}: {TOTAL} tasks in {took:.1f} s, {kills} kills, {duplicates} "
        f"duplicate executions (bound {kills} x {PREFETCH} prefetched); seed {seed}; "
        + "; ".join(timeline)
    )
    print(report)
    assert set(runs) == set(ids), report
    assert kills >= 2, report
    # A kill makes the broker deliver again only what the killed worker held
    # unacknowledged: at most PREFETCH messages (RabbitMQ's basic.qos, the
    # window of the Redis and SQL consumers, where an ack counts until the
    # broker has it), its running tasks among them. Each of those
    # runs at most once more for that kill; no other cause may add any.
    assert duplicates <= kills * PREFETCH, report


# -- rate and time limits --------------------------------------------------------------

LIMITED = """
from queue_meta import SoftTimeLimitExceeded


@app.task(rate_limit="10/s")
def limited(i):
    note("limited", time.time())


@app.task
def quick(i):
    note("quick", time.time())


@app.task(soft_time_limit=0.5)
def soft():
    try:
        time.sleep(10)
    except SoftTimeLimitExceeded as exc:
        note("soft", type(exc).__name__)
        return "cleaned up"
    return "slept"


@app.task(time_limit=1)
def hard():
    time.sleep(10)
    return "finished"


@app.task
def pid():
    return os.getpid()
"""
LIMITS = TRACED + LIMITED


def _times(e2e: EndToEnd, kind: str) -> list[float]:
    return sorted(float(w[1]) for w in _trace(e2e).lines if w[0] == kind)


@pytest.mark.parametrize("broker", BROKERS)
def test_rate_limit_keeps_its_rate_and_never_blocks_other_tasks(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> None:
    where = _where(e2e, request, broker)
    source = _source(LIMITS, broker)
    with e2e.worker(source, **where, pool="threads", concurrency=4) as worker:
        module, app = worker.module, worker.app
        app.send_many([module.limited.s(i) for i in range(100)])
        quick = app.send_many([module.quick.s(i) for i in range(200)])
        for result in quick:
            result.get(timeout=20)
        wait_for(lambda: _times(e2e, "limited"), 10, "no rate-limited task ran")
        first = _times(e2e, "limited")[0]
        wait_for(lambda: time.time() > first + 3.5, 5, "time stood still")
        limited = _times(e2e, "limited")
        window = [t for t in limited if first <= t < first + 3.0]
        quick_at = _times(e2e, "quick")
        report = (
            f"{len(window)} rate-limited runs in 3 s; the 200 others ran from "
            f"{quick_at[0] - first:+.2f} s to {quick_at[-1] - first:+.2f} s"
        )
        print(report)
        # 10/s: one at once, then one every 0.1 s, so 30 start within 3 s.
        assert 27 <= len(window) <= 33, report
        # The 200 others were sent after the 100 rate-limited ones, and ran
        # meanwhile: they do not wait for a token, nor behind those waiting
        # (behind them, the last would run after 10 s). 200 tasks take up to
        # 1.7 s on a busy 2-core VM with PostgreSQL as the broker.
        assert len(quick_at) == 200, report
        assert quick_at[-1] < first + 3.0, report


@pytest.mark.parametrize("broker", SERVERS)
def test_soft_time_limit_is_raised_in_the_task(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> None:
    where = _where(e2e, request, broker)
    source = _source(LIMITS, broker)
    with e2e.worker(source, **where) as worker:
        started = time.monotonic()
        result = worker.module.soft.delay()
        assert result.get(timeout=10) == "cleaned up"
        assert time.monotonic() - started < 5
        assert result.state == "SUCCESS"
        assert [w for w in _trace(e2e).lines if w[0] == "soft"] == [
            ["soft", "SoftTimeLimitExceeded"]
        ]


@pytest.mark.parametrize("broker", SERVERS)
def test_hard_time_limit_replaces_the_process_and_fails_the_task(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> None:
    where = _where(e2e, request, broker)
    source = _source(LIMITS, broker)
    with e2e.worker(source, **where, concurrency=1, clean_log=False) as worker:
        module = worker.module
        before = module.pid.delay().get(timeout=10)
        result = module.hard.delay()
        started = time.monotonic()
        with pytest.raises(TimeLimitExceeded):
            result.get(timeout=15)
        assert time.monotonic() - started < 8
        assert result.state == "FAILURE"
        assert isinstance(result.result, TimeLimitExceeded)
        after = module.pid.delay().get(timeout=10)
        assert after != before  # the process that ran it was killed and replaced
        assert worker.lines("passed its hard time limit")
