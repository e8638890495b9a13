"""``queue bench``: how fast queue-meta runs no-op tasks on your own broker.

::

    queue bench --broker redis://127.0.0.1:6379/0
    queue bench --broker amqp://guest:guest@127.0.0.1:5672// --json

Every figure comes from real ``queue worker`` processes on an app module this
command writes to a temporary directory, on a queue of its own that is
deleted afterwards (nothing else on the broker is touched):

- processed tasks/s per pool: *N* no-op tasks are published first, then a
  worker starts (``python -m queue_meta -A <module> worker -P <pool>``), and
  the time runs from the start of its process until the last task (a marker
  that writes a file) has run and the queue is empty. Tasks are acknowledged
  after they ran (``task_acks_late``) and their results ignored; the asyncio
  pool runs ``async def`` tasks. After a warm shutdown (SIGTERM) the queue
  must still be empty, so every task was acknowledged;
- publish rate: ``task.delay()`` in a loop, and ``app.send_many`` with
  signatures in chunks of 1,000, until the broker confirmed the last one;
- round trip: sequential ``task.delay(i).get()`` calls against a running solo
  worker, as p50/p90/p99 in milliseconds (results in the ``--backend``: by
  default the broker's Redis, or ``rpc://`` on AMQP);
- idle RSS: ``VmRSS`` of a solo worker once it is ready, and of a prefork
  worker's main process and of its children (summed) when prefork is measured.

The measuring functions take a :class:`BenchTarget`, so the benchmark in
``benchmarks/bench_queue_meta.py`` runs the same measurements on Celery.
Figures are keyed ``processed_<pool>_per_s``, ``publish_one_by_one_per_s``,
``publish_batched_per_s``, ``round_trip_p50_ms`` (p90, p99),
``idle_rss_solo_mib``, ``idle_rss_prefork_main_mib`` and
``idle_rss_prefork_children_mib``: higher is better for ``_per_s``, lower for
the others.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import importlib
import json
import math
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .cli import POOLS, CommandError

__all__ = [
    "BATCH",
    "PREFETCH",
    "BenchError",
    "BenchTarget",
    "BenchWorker",
    "QueueMetaTarget",
    "best",
    "default_backend",
    "idle_rss",
    "label",
    "lower_is_better",
    "mask",
    "measure",
    "percentile",
    "processed_rate",
    "publish_rate",
    "round_trip",
    "run",
]

#: Messages a worker may hold unacknowledged, over all its pool slots.
PREFETCH = 1000
#: Signatures per ``send_many`` call in the batched publish figure.
BATCH = 1000
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
#: Seconds an idle worker settles after it is ready, before its RSS is read.
SETTLE = 1.0
#: Round trips before the timed ones (connections, caches, reply queues).
WARMUP = 20
#: Seconds results stay in the result store.
RESULT_EXPIRES = 600
_POLL = 0.005

PRELUDE = """\
import os, time
from pathlib import Path

NAME = {name!r}
HOME = Path({home!r})
QUEUE = {queue!r}
BROKER = {broker!r}
BACKEND = {backend!r}
RESULT_EXPIRES = {expires!r}


def _ready(**kwargs):
    (HOME / f"ready-{{os.getpid()}}").write_text(repr(time.time()))
"""

QUEUE_META_APP = """
from queue_meta import App, signals

app = App(
    NAME, broker=BROKER, backend=BACKEND, task_default_queue=QUEUE,
    task_acks_late=True, task_ignore_result=True, result_expires=RESULT_EXPIRES,
)


@app.task(name="bench.noop")
def noop():
    return None


@app.task(name="bench.noop_async")
async def noop_async():
    return None


@app.task(name="bench.mark")
def mark(path):
    Path(path).write_text("done")


@app.task(name="bench.mark_async")
async def mark_async(path):
    Path(path).write_text("done")


@app.task(name="bench.echo", ignore_result=False)
def echo(value):
    return value


signals.worker_ready.connect(_ready)
"""


class BenchError(CommandError):
    """A measurement could not be made; the message says what happened."""


def default_backend(broker: str) -> str | None:
    """The result store the round trip uses on *broker*: its Redis, or ``rpc://``.

    None for other brokers: the app's default.
    """
    scheme = broker.split(":", 1)[0]
    if scheme in ("redis", "rediss"):
        return broker
    if scheme in ("amqp", "amqps", "pyamqp"):
        return "rpc://"
    return None


def mask(url: str | None) -> str:
    """*url* without its password."""
    if url is None:
        return "(default)"
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


class BenchTarget(abc.ABC):
    """A task queue the measurements drive: its app module, worker and client.

    A subclass writes an app module (the :data:`PRELUDE` names, then its own
    code) that calls ``_ready`` when a worker is ready, and implements the
    client side with the module imported in this process.

    Args:
        broker: The broker URL.
        backend: The result store URL (None: the app's default).
        home: A directory for the module, ready files and worker logs.
    """

    #: Shown in progress messages and tables.
    name = "target"

    def __init__(self, broker: str, backend: str | None, home: Path) -> None:
        self.broker = broker
        self.backend = backend
        self.home = home
        token = secrets.token_hex(4)
        self.module_name = f"qm_bench_{self.name.replace('-', '_')}_{token}"
        self.queue = f"qm_bench_{token}"
        self.module: Any = None
        self._runs = 0

    @abc.abstractmethod
    def app_source(self) -> str:
        """The module's code after the prelude."""

    @abc.abstractmethod
    def worker_command(
        self, pool: str, concurrency: int, module: str, hostname: str
    ) -> list[str]:
        """The command that starts a worker on *module* consuming :attr:`queue`."""

    @abc.abstractmethod
    def send(self, count: int, *, batched: bool, pool: str = "solo") -> None:
        """Publish *count* no-op tasks (the ``async def`` kind for asyncio)."""

    @abc.abstractmethod
    def send_marker(self, path: Path, *, pool: str = "solo") -> None:
        """Publish the task that writes *path* when it runs."""

    @abc.abstractmethod
    def size(self) -> int:
        """Messages ready in :attr:`queue`."""

    @abc.abstractmethod
    def purge(self) -> None:
        """Remove every ready message from :attr:`queue`."""

    @abc.abstractmethod
    def call(self, value: int) -> None:
        """One round trip: ``echo.delay(value).get()``."""

    @abc.abstractmethod
    def delete(self) -> None:
        """Delete :attr:`queue` and close the client's connections."""

    def open(self) -> None:
        """Write the app module and import it (the client side)."""
        prelude = PRELUDE.format(
            name=self.module_name,
            home=str(self.home),
            queue=self.queue,
            broker=self.broker,
            backend=self.backend,
            expires=RESULT_EXPIRES,
        )
        path = self.home / f"{self.module_name}.py"
        path.write_text(prelude + self.app_source())
        if str(self.home) not in sys.path:
            sys.path.insert(0, str(self.home))
        importlib.invalidate_caches()
        self.module = importlib.import_module(self.module_name)

    def close(self) -> None:
        """Delete the queue and forget the module."""
        if self.module is None:
            return
        try:
            self.delete()
        finally:
            sys.modules.pop(self.module_name, None)
            self.module = None

    def environment(self) -> dict[str, str]:
        """The workers' environment: this one, with :attr:`home` on the path."""
        path = [str(self.home), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(path),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    @contextlib.contextmanager
    def worker(self, pool: str, concurrency: int) -> Iterator[BenchWorker]:
        """Start a worker; stop it with SIGTERM after; the clock starts at spawn."""
        self._runs += 1
        tag = f"{pool}-{self._runs}"
        command = self.worker_command(
            pool, concurrency, self.module_name, f"{self.module_name}-{tag}@%h"
        )
        log_path = self.home / f"worker-{tag}.log"
        with log_path.open("wb") as log:
            started = time.perf_counter()
            wall = time.time()
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.home,
            )
        worker = BenchWorker(self, proc, log_path, started, wall, " ".join(command[1:]))
        try:
            yield worker
            worker.stop()
        finally:
            worker.kill()


class BenchWorker:
    """A worker process started by :meth:`BenchTarget.worker`."""

    def __init__(
        self,
        target: BenchTarget,
        proc: subprocess.Popen[bytes],
        log_path: Path,
        started: float,
        wall: float,
        command: str,
    ) -> None:
        self.target = target
        self.proc = proc
        self.log_path = log_path
        self.started = started
        self.wall = wall
        self.command = command

    def tail(self, lines: int = 3) -> str:
        """The last lines of the worker's log, joined on one line."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.splitlines()[-lines:])

    def fail(self, what: str) -> BenchError:
        """An error naming the worker and the end of its log."""
        tail = self.tail()
        return BenchError(
            f"{self.target.name} worker ({self.command}) {what}"
            + (f"; its log ends: {tail}" if tail else "")
        )

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll *check* until true; fail if the worker exits or *timeout* passes."""
        deadline = time.monotonic() + timeout
        while not check():
            if self.proc.poll() is not None:
                raise self.fail(f"exited with status {self.proc.returncode} {what}")
            if time.monotonic() > deadline:
                raise self.fail(f"did not finish {what} within {timeout:g} s")
            time.sleep(_POLL)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Wait until the worker is ready; return seconds since its start."""
        path = self.target.home / f"ready-{self.proc.pid}"
        self.wait_for(path.exists, "before it was ready", timeout)
        with contextlib.suppress(OSError, ValueError):
            for _ in range(100):
                text = path.read_text()
                if text:
                    return max(float(text) - self.wall, 0.0)
                time.sleep(_POLL)
        return time.perf_counter() - self.started

    def stop(self) -> None:
        """Warm shutdown (SIGTERM); fail unless it exits with status 0 in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise self.fail(
                f"did not stop within {STOP_TIMEOUT:g} s of SIGTERM"
            ) from None
        if status != 0:
            raise self.fail(f"exited with status {status} after SIGTERM")

    def kill(self) -> None:
        """Stop the worker and its children now (after a failure)."""
        if self.proc.poll() is None:
            for pid in descendants(self.proc.pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(timeout=10)


class QueueMetaTarget(BenchTarget):
    """queue-meta itself: ``python -m queue_meta ... worker``."""

    name = "queue-meta"

    def app_source(self) -> str:
        return QUEUE_META_APP

    def worker_command(
        self, pool: str, concurrency: int, module: str, hostname: str
    ) -> list[str]:
        size = 1 if pool == "solo" else concurrency
        return [
            sys.executable, "-m", "queue_meta", "-A", module, "worker",
            "-P", pool, "-c", str(size),
            "--prefetch-multiplier", str(max(1, PREFETCH // size)),
            "-l", "warning", "-n", hostname,
        ]  # fmt: skip

    def _noop(self, pool: str) -> Any:
        return self.module.noop_async if pool == "asyncio" else self.module.noop

    def send(self, count: int, *, batched: bool, pool: str = "solo") -> None:
        task = self._noop(pool)
        if not batched:
            delay = task.delay
            for _ in range(count):
                delay()
        else:
            send_many = self.module.app.send_many
            signature = task.s
            for start in range(0, count, BATCH):
                send_many([signature() for _ in range(min(BATCH, count - start))])
        # Timed until the broker confirmed every one (RabbitMQ's streaming
        # confirms), not only until they were written.
        self.module.app.transport.flush()

    def send_marker(self, path: Path, *, pool: str = "solo") -> None:
        task = self.module.mark_async if pool == "asyncio" else self.module.mark
        task.delay(str(path))

    def size(self) -> int:
        return int(self.module.app.transport.size(self.queue))

    def purge(self) -> None:
        self.module.app.transport.purge(self.queue)

    def call(self, value: int) -> None:
        got = self.module.echo.delay(value).get(timeout=30.0)
        if got != value:
            raise BenchError(f"echo({value}) returned {got!r}")

    def delete(self) -> None:
        app = self.module.app
        try:
            app.transport.delete_queue(self.queue)
        finally:
            app.close()


# -- /proc -------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """The processes below *pid* (children, grandchildren, ...), from ``/proc``."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces: split after it.
        fields = stat.rpartition(")")[2].split()
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found.extend(children)
        todo.extend(children)
    return found


def rss_kib(pid: int) -> int:
    """``VmRSS`` of *pid* in KiB (0 if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


# -- measurements -------------------------------------------------------------------


def processed_rate(
    target: BenchTarget, pool: str, concurrency: int, tasks: int
) -> tuple[float, float]:
    """Tasks/s of one worker draining *tasks* queued tasks; and its startup, s.

    Raises:
        BenchError: The worker failed, or left messages behind.
    """
    target.purge()
    target.send(tasks - 1, batched=True, pool=pool)
    marker = target.home / f"done-{secrets.token_hex(4)}"
    target.send_marker(marker, pool=pool)
    with target.worker(pool, concurrency) as worker:
        timeout = 60.0 + tasks / 100
        worker.wait_for(marker.exists, "the tasks", timeout)
        worker.wait_for(lambda: target.size() == 0, "draining the queue", timeout)
        elapsed = time.perf_counter() - worker.started
        startup = worker.wait_ready()
    left = target.size()
    if left:
        raise BenchError(
            f"{target.name} {pool} worker left {left} of {tasks} messages in "
            f"{target.queue} after a warm shutdown"
        )
    return tasks / elapsed, startup


def publish_rate(target: BenchTarget, tasks: int, *, batched: bool) -> float:
    """Tasks/s published one by one (``delay()``) or batched; the queue is purged."""
    target.purge()
    started = time.perf_counter()
    target.send(tasks, batched=batched)
    elapsed = time.perf_counter() - started
    target.purge()
    return tasks / elapsed


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending sequence (*fraction* in 0..1)."""
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def round_trip(target: BenchTarget, calls: int) -> dict[str, float]:
    """p50/p90/p99 in ms of *calls* sequential round trips through a solo worker."""
    target.purge()
    samples = []
    with target.worker("solo", 1) as worker:
        worker.wait_ready()
        for value in range(WARMUP):
            target.call(value)
        clock = time.perf_counter
        for value in range(calls):
            begun = clock()
            target.call(value)
            samples.append(clock() - begun)
    samples.sort()
    return {
        f"round_trip_{name}_ms": percentile(samples, fraction) * 1000.0
        for name, fraction in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
    }


def idle_rss(target: BenchTarget, pool: str, concurrency: int) -> tuple[float, float]:
    """MiB resident in a ready, idle worker: its main process, and its children."""
    with target.worker(pool, concurrency) as worker:
        worker.wait_ready()
        time.sleep(SETTLE)
        main = rss_kib(worker.proc.pid)
        children = sum(rss_kib(pid) for pid in descendants(worker.proc.pid))
    return main / 1024.0, children / 1024.0


def measure(
    target: BenchTarget,
    *,
    tasks: int,
    pools: Sequence[str],
    concurrency: int,
    latency: int,
    rss: bool = True,
    progress: Callable[[str], None] | None = None,
    details: dict[str, float] | None = None,
) -> dict[str, float]:
    """Run every measurement once on an opened *target*; return the figures.

    Args:
        target: The queue to measure (:meth:`BenchTarget.open` called).
        tasks: Tasks per processed and publish figure.
        pools: Pool kinds for the processed figures.
        concurrency: Pool size of prefork (and threads, asyncio).
        latency: Timed round trips (0: none).
        rss: Measure idle RSS (solo, and prefork when in *pools*).
        progress: Called with a line before each measurement.
        details: Filled with the startup seconds of each pool's worker.

    Raises:
        BenchError: A worker failed or left messages behind.
    """
    say = progress or (lambda line: None)
    figures: dict[str, float] = {}
    say(f"{target.name}: publishing {tasks} tasks one by one")
    figures["publish_one_by_one_per_s"] = publish_rate(target, tasks, batched=False)
    say(f"{target.name}: publishing {tasks} tasks with the batch API")
    figures["publish_batched_per_s"] = publish_rate(target, tasks, batched=True)
    for pool in pools:
        say(f"{target.name}: {tasks} tasks through a worker, {pool} pool")
        rate, startup = processed_rate(target, pool, concurrency, tasks)
        figures[f"processed_{pool}_per_s"] = rate
        if details is not None:
            key = f"startup_{pool}_s"
            details[key] = min(details.get(key, startup), startup)
    if latency:
        say(f"{target.name}: {latency} round trips through a solo worker")
        figures.update(round_trip(target, latency))
    if rss:
        say(f"{target.name}: idle worker RSS")
        figures["idle_rss_solo_mib"] = idle_rss(target, "solo", 1)[0]
        if "prefork" in pools:
            main, children = idle_rss(target, "prefork", concurrency)
            figures["idle_rss_prefork_main_mib"] = main
            figures["idle_rss_prefork_children_mib"] = children
    return figures


def lower_is_better(key: str) -> bool:
    """Whether a smaller value of figure *key* is the better one (ms, MiB)."""
    return not key.endswith("_per_s")


def best(runs: Iterable[dict[str, float]]) -> dict[str, float]:
    """The best value of each figure over several runs of :func:`measure`."""
    result: dict[str, float] = {}
    for figures in runs:
        for key, value in figures.items():
            if key not in result:
                result[key] = value
            elif lower_is_better(key):
                result[key] = min(result[key], value)
            else:
                result[key] = max(result[key], value)
    return result


def label(key: str) -> str:
    """A figure's name for tables: ``processed/s, solo`` and so on."""
    fixed = {
        "publish_one_by_one_per_s": "publish/s, one by one",
        "publish_batched_per_s": "publish/s, batched",
        "round_trip_p50_ms": "round trip p50, ms",
        "round_trip_p90_ms": "round trip p90, ms",
        "round_trip_p99_ms": "round trip p99, ms",
        "idle_rss_solo_mib": "idle RSS solo, MiB",
        "idle_rss_prefork_main_mib": "idle RSS prefork main, MiB",
        "idle_rss_prefork_children_mib": "idle RSS prefork children, MiB",
    }
    if key in fixed:
        return fixed[key]
    match = re.fullmatch(r"processed_(\w+)_per_s", key)
    if match:
        return f"processed/s, {match.group(1)}"
    return key


def _format(key: str, value: float) -> str:
    if key.endswith("_per_s"):
        return f"{value:,.0f}"
    if key.endswith("_ms"):
        return f"{value:.2f}"
    return f"{value:.1f}"


def _pools(text: str) -> list[str]:
    pools = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in pools if name not in POOLS]
    if unknown or not pools:
        raise BenchError(
            f"--pools takes a comma-separated list of {', '.join(POOLS)}; got {text!r}"
        )
    return pools


def run(options: argparse.Namespace) -> int:
    """``queue bench``: measure, then print a table or (``--json``) the figures."""
    pools = _pools(options.pools)
    if options.tasks < 2:
        raise BenchError(f"--tasks must be 2 or more, got {options.tasks}")
    backend = options.backend or default_backend(options.broker)
    runs: list[dict[str, float]] = []
    details: dict[str, float] = {}

    def progress(line: str) -> None:
        sys.stderr.write(f"{line}\n")
        sys.stderr.flush()

    with tempfile.TemporaryDirectory(prefix="queue-bench-") as home:
        target = QueueMetaTarget(options.broker, backend, Path(home))
        try:
            target.open()
            for number in range(options.repeat):
                if options.repeat > 1:
                    progress(f"run {number + 1} of {options.repeat}")
                runs.append(
                    measure(
                        target,
                        tasks=options.tasks,
                        pools=pools,
                        concurrency=options.concurrency,
                        latency=options.latency,
                        rss=number == 0,
                        progress=None if options.json else progress,
                        details=details,
                    )
                )
        except Exception as exc:
            # Deleting the queue may fail the same way: report the first error.
            with contextlib.suppress(Exception):
                target.close()
            if isinstance(exc, CommandError):
                raise
            raise BenchError(f"{type(exc).__name__}: {exc}") from None
        target.close()
    figures = best(runs)
    if options.json:
        report = {
            "target": "queue-meta",
            "broker": mask(options.broker),
            "backend": mask(backend),
            "tasks": options.tasks,
            "round_trips": options.latency,
            "pools": pools,
            "concurrency": options.concurrency,
            "prefetch": PREFETCH,
            "repeat": options.repeat,
            "acks_late": True,
            "ignore_result": True,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "figures": figures,
            "details": details,
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    sys.stdout.write(
        f"queue-meta on {mask(options.broker)} (results: {mask(backend)}), "
        f"{options.tasks} no-op tasks, acks late, best of {options.repeat}\n"
    )
    width = max(len(label(key)) for key in figures)
    for key, value in figures.items():
        sys.stdout.write(f"  {label(key):<{width}}  {_format(key, value):>10}\n")
    return 0
