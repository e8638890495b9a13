"""queue-meta beside Celery, in the same run, on Redis and on RabbitMQ.

Run with ``nox -s bench -- queue-meta`` (options pass through:
``nox -s bench -- queue-meta --tasks 5000 --brokers redis``), or with
``python benchmarks/bench_queue_meta.py`` where queue-meta and Celery are
installed. Servers come from ``REDIS_URL`` (default
``redis://127.0.0.1:6379/0``) and ``AMQP_URL`` (default
``amqp://guest:guest@127.0.0.1:5672//``); each side uses a queue of its own,
deleted afterwards.

Both sides run the measurements of :mod:`queue_meta.bench` (``queue bench``)
with no-op tasks: processed tasks/s from worker start until the queue is
drained, publish rate one by one and batched, sequential round trips, idle
RSS. Both acknowledge tasks after they ran (``task_acks_late=True``: the
at-least-once figures the issue asks for) and ignore results while
processing. Celery runs with its fastest single-process settings::

    celery -A <module> worker --pool=solo --prefetch-multiplier=1000
        --without-gossip --without-mingle --without-heartbeat -c 1 -l warning

and with ``--pool=prefork -c 2 --prefetch-multiplier=500`` beside our
prefork pool. Our solo, threads and asyncio pools are compared with Celery's
solo pool. Celery has no batch publish API, so its batched figure sends
through one producer (``apply_async(producer=...)``, what its ``group``
does). Its round trip uses the Redis result backend on Redis and ``rpc://``
on RabbitMQ, as ours does.

The ratio is ours / Celery for rates and Celery / ours for milliseconds and
MiB, so a ratio above 1 always means queue-meta is better. The target column
is the issue's. Each figure is the best of ``--repeat`` runs (3 by default),
the two sides taking turns so that noise from others on the machine hits
both; RSS is read once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from queue_meta.bench import (
    BATCH,
    PREFETCH,
    BenchTarget,
    QueueMetaTarget,
    best,
    default_backend,
    label,
    lower_is_better,
    mask,
    measure,
)

BROKERS = {
    "redis": ("REDIS_URL", "redis://127.0.0.1:6379/0"),
    "amqp": ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
}

CELERY_APP = """
from celery import Celery
from celery.signals import worker_ready

app = Celery(NAME, broker=BROKER, backend=BACKEND)
app.conf.update(
    task_default_queue=QUEUE, task_acks_late=True, task_ignore_result=True,
    result_expires=RESULT_EXPIRES, broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop():
    return None


@app.task(name="bench.mark")
def mark(path):
    Path(path).write_text("done")


@app.task(name="bench.echo", ignore_result=False)
def echo(value):
    return value


worker_ready.connect(_ready, weak=False)
"""


class CeleryTarget(BenchTarget):
    """Celery with its fastest settings, acks late, results ignored."""

    name = "celery"

    def __init__(self, broker: str, backend: str | None, home: Path) -> None:
        super().__init__(broker, backend, home)
        self._connection: Any = None

    def app_source(self) -> str:
        return CELERY_APP

    def worker_command(
        self, pool: str, concurrency: int, module: str, hostname: str
    ) -> list[str]:
        size = 1 if pool == "solo" else concurrency
        return [
            sys.executable, "-m", "celery", "-A", module, "worker",
            f"--pool={pool}", f"--prefetch-multiplier={max(1, PREFETCH // size)}",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-c", str(size), "-l", "warning", "-n", hostname,
        ]  # fmt: skip

    def open(self) -> None:
        super().open()
        app = self.module.app
        # One connection for size/purge/delete: kombu's virtual transports keep
        # the bindings they declared in the connection's state.
        self._connection = app.connection_for_write()
        app.amqp.queues[self.queue].bind(self._connection.default_channel).declare()

    @property
    def _channel(self) -> Any:
        return self._connection.default_channel

    def send(self, count: int, *, batched: bool, pool: str = "solo") -> None:
        noop = self.module.noop
        if not batched:
            delay = noop.delay
            for _ in range(count):
                delay()
            return
        app = self.module.app
        apply_async = noop.apply_async
        for start in range(0, count, BATCH):
            with app.producer_or_acquire() as producer:
                for _ in range(min(BATCH, count - start)):
                    apply_async(producer=producer)

    def send_marker(self, path: Path, *, pool: str = "solo") -> None:
        self.module.mark.delay(str(path))

    def size(self) -> int:
        channel = self._channel
        if hasattr(channel, "_size"):
            # kombu's virtual transports (Redis): an empty queue has no key, so a
            # passive declare would say it does not exist.
            return int(channel._size(self.queue))
        return int(channel.queue_declare(queue=self.queue, passive=True).message_count)

    def purge(self) -> None:
        self._channel.queue_purge(self.queue)

    def call(self, value: int) -> None:
        got = self.module.echo.delay(value).get(timeout=30.0)
        if got != value:
            raise RuntimeError(f"Celery echo({value}) returned {got!r}")

    def delete(self) -> None:
        try:
            self._channel.queue_delete(self.queue)
            if self.broker.startswith(("redis://", "rediss://")):
                self._forget_pidbox_bindings()
        finally:
            self._connection.close()
            self.module.app.close()

    def _forget_pidbox_bindings(self) -> None:
        """Remove our workers' remote-control bindings Celery leaves in Redis."""
        client = self._channel.client
        key = "_kombu.binding.celery.pidbox"
        ours = list(client.sscan_iter(key, match=f"*{self.module_name}*"))
        if ours:
            client.srem(key, *ours)


# Which Celery figure each of ours is compared with, and the target:
# ("ratio", x): at least x times Celery; ("min", x): at least x; ("max", x): under x.
COMPARE = {
    "processed_solo_per_s": "processed_solo_per_s",
    "processed_threads_per_s": "processed_solo_per_s",
    "processed_asyncio_per_s": "processed_solo_per_s",
    "processed_prefork_per_s": "processed_prefork_per_s",
    "publish_one_by_one_per_s": "publish_one_by_one_per_s",
    "publish_batched_per_s": "publish_batched_per_s",
    "round_trip_p50_ms": "round_trip_p50_ms",
    "round_trip_p90_ms": "round_trip_p90_ms",
    "round_trip_p99_ms": "round_trip_p99_ms",
    "idle_rss_solo_mib": "idle_rss_solo_mib",
    "idle_rss_prefork_main_mib": "idle_rss_prefork_main_mib",
    "idle_rss_prefork_children_mib": "idle_rss_prefork_children_mib",
}


def target_of(broker: str, key: str) -> tuple[str, float] | None:
    """The issue's target for figure *key* on *broker* (``redis``/``amqp``)."""
    if key in ("processed_solo_per_s", "processed_threads_per_s"):
        return ("ratio", 5.0 if broker == "redis" else 3.0)
    fixed: dict[str, tuple[str, float]] = {
        "processed_prefork_per_s": ("ratio", 3.0),
        "publish_one_by_one_per_s": ("ratio", 2.0),
        "publish_batched_per_s": ("min", 20_000.0),
        "round_trip_p50_ms": ("max", 1.0 if broker == "redis" else 0.8),
        "idle_rss_solo_mib": ("max", 40.0),
    }
    return fixed.get(key)


@dataclass
class Row:
    """One line of the table."""

    broker: str
    key: str
    ours: float
    celery: float | None
    celery_key: str

    @property
    def ratio(self) -> float | None:
        if self.celery is None or not self.ours or not self.celery:
            return None
        if lower_is_better(self.key):
            return self.celery / self.ours
        return self.ours / self.celery

    @property
    def target(self) -> tuple[str, float] | None:
        return target_of(self.broker, self.key)

    def target_text(self) -> str:
        target = self.target
        if target is None:
            return "-"
        kind, value = target
        if kind == "ratio":
            return f">= {value:g}x Celery"
        unit = self.key.rsplit("_", 1)[-1]
        if kind == "min":
            return f">= {value:,.0f}/s"
        return f"< {value:g} {'MiB' if unit == 'mib' else 'ms'}"

    def met(self) -> str:
        target = self.target
        if target is None:
            return ""
        kind, value = target
        if kind == "ratio":
            ratio = self.ratio
            return "" if ratio is None else ("yes" if ratio >= value else "NO")
        if kind == "min":
            return "yes" if self.ours >= value else "NO"
        return "yes" if self.ours < value else "NO"

    def as_dict(self) -> dict[str, Any]:
        return {
            "broker": self.broker,
            "figure": self.key,
            "queue_meta": self.ours,
            "celery": self.celery,
            "celery_figure": self.celery_key,
            "ratio": self.ratio,
            "target": self.target_text(),
            "met": self.met(),
        }


def _format(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key.endswith("_per_s"):
        return f"{value:,.0f}"
    if key.endswith("_ms"):
        return f"{value:.2f}"
    return f"{value:.1f}"


def _compare_label(key: str, celery_key: str) -> str:
    text = label(key)
    if key.startswith("processed_") and celery_key != key:
        pool = celery_key.removeprefix("processed_").removesuffix("_per_s")
        text += f" (Celery {pool})"
    return text


def run_broker(
    broker: str, url: str, options: argparse.Namespace, pools: list[str]
) -> tuple[list[Row], dict[str, Any]]:
    """Measure both sides on one broker, taking turns; return rows and details."""
    backend = default_backend(url)
    celery_pools = ["solo", *(["prefork"] if "prefork" in pools else [])]
    ours_runs: list[dict[str, float]] = []
    celery_runs: list[dict[str, float]] = []
    startup: dict[str, dict[str, float]] = {"queue-meta": {}, "celery": {}}

    def progress(line: str) -> None:
        print(f"  [{broker}] {line}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-queue-meta-") as home:
        ours = QueueMetaTarget(url, backend, Path(home))
        celery = CeleryTarget(url, backend, Path(home))
        try:
            ours.open()
            celery.open()
            for number in range(options.repeat):
                progress(f"run {number + 1} of {options.repeat}")
                for target, runs, chosen in (
                    (ours, ours_runs, pools),
                    (celery, celery_runs, celery_pools),
                ):
                    runs.append(
                        measure(
                            target,
                            tasks=options.tasks,
                            pools=chosen,
                            concurrency=options.concurrency,
                            latency=options.latency,
                            rss=number == 0,
                            progress=progress,
                            details=startup[target.name],
                        )
                    )
        finally:
            for target in (ours, celery):
                try:
                    target.close()
                except Exception as exc:  # noqa: BLE001 - cleanup is best effort, reported
                    progress(f"could not delete {target.name}'s queue: {exc}")
    ours_best, celery_best = best(ours_runs), best(celery_runs)
    rows = [
        Row(broker, key, value, celery_best.get(COMPARE[key]), COMPARE[key])
        for key, value in ours_best.items()
        if key in COMPARE
    ]
    details = {
        "url": mask(url),
        "backend": mask(backend),
        "queue_meta": ours_best,
        "celery": celery_best,
        "startup_s": startup,
    }
    return rows, details


def print_table(rows: list[Row]) -> None:
    """The figures, ratios and targets as one table."""
    header = ("broker", "figure", "queue-meta", "Celery", "ratio", "target", "met")
    lines = [
        (
            row.broker,
            _compare_label(row.key, row.celery_key),
            _format(row.key, row.ours),
            _format(row.key, row.celery),
            "-" if row.ratio is None else f"{row.ratio:.2f}x",
            row.target_text(),
            row.met(),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(7)]
    align = ("<", "<", ">", ">", ">", "<", "<")

    def show(line: tuple[str, ...]) -> None:
        cells = [
            f"{cell:{a}{w}}" for cell, a, w in zip(line, align, widths, strict=True)
        ]
        print("  ".join(cells).rstrip())

    show(header)
    print("  ".join("-" * w for w in widths))
    for line in lines:
        show(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--latency", type=int, default=1000, help="round trips")
    parser.add_argument("--brokers", default="redis,amqp", help="redis, amqp")
    parser.add_argument("--pools", default="solo,threads,prefork,asyncio")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    brokers = [name.strip() for name in options.brokers.split(",") if name.strip()]
    unknown = sorted(set(brokers) - set(BROKERS))
    if unknown:
        parser.error(f"unknown brokers {unknown}; choose from {', '.join(BROKERS)}")
    pools = [name.strip() for name in options.pools.split(",") if name.strip()]

    versions = {name: version(name) for name in ("queue-meta", "celery", "kombu")}
    print(
        f"queue-meta {versions['queue-meta']} vs Celery {versions['celery']} "
        f"(kombu {versions['kombu']}); Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; {options.tasks} no-op tasks, "
        f"{options.latency} round trips, best of {options.repeat}",
        file=sys.stderr,
    )
    rows: list[Row] = []
    details: dict[str, Any] = {}
    failed = []
    for broker in brokers:
        variable, default = BROKERS[broker]
        url = os.environ.get(variable, default)
        try:
            got, details[broker] = run_broker(broker, url, options, pools)
        except Exception as exc:  # noqa: BLE001 - one broker failing is reported
            print(f"{broker}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(broker)
            continue
        rows.extend(got)

    if options.json:
        report = {
            "versions": versions,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "tasks": options.tasks,
            "round_trips": options.latency,
            "repeat": options.repeat,
            "prefetch": PREFETCH,
            "acks_late": True,
            "rows": [row.as_dict() for row in rows],
            "details": details,
            "failed": failed,
        }
        print(json.dumps(report, indent=2))
        return 1 if failed else 0

    print()
    print(
        f"queue-meta {versions['queue-meta']} vs Celery {versions['celery']}, "
        f"{options.tasks:,} no-op tasks, {options.latency:,} round trips, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"best of {options.repeat}"
    )
    print(
        "Both acknowledge late (task_acks_late=True, at-least-once) and ignore "
        f"results while processing; prefetch {PREFETCH} messages per worker. "
        "Celery: --without-gossip --without-mingle --without-heartbeat."
    )
    print(
        "ratio = queue-meta / Celery for rates, Celery / queue-meta for ms and "
        "MiB: above 1 means queue-meta is better."
    )
    print()
    print_table(rows)
    for broker, info in details.items():
        parts = [
            f"{name} {pool.removeprefix('startup_').removesuffix('_s')} {value:.2f}"
            for name, times in info["startup_s"].items()
            for pool, value in times.items()
        ]
        print(
            f"\n{broker} ({info['url']}, results {info['backend']}): seconds from "
            f"worker start to ready (included in processed/s): {', '.join(parts)}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
