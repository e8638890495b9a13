"""The SIGKILL reliability harness: consumers killed at random, nothing lost.

Consumers run in subprocesses started from a fork server that has already
imported transports, so a replacement starts in milliseconds. Each consumer
appends the id of every message it handled to its own file with one
``write`` per batch *before* acknowledging the batch, so a kill at any point
can cause a duplicate but never hide a handled message.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transports._registry import connect
from transports.base import Message

__all__ = ["SigkillReport", "run_sigkill_test"]


@dataclass(frozen=True)
class SigkillReport:
    """What a SIGKILL run found.

    Attributes:
        published: Messages published (ids ``0 .. published-1``).
        handled: Distinct ids consumers recorded (before acking them).
        deliveries: Every record, duplicates included.
        duplicates: ``deliveries - handled``: allowed by at-least-once.
        missing: Published ids never handled (must be empty).
        leftover: Messages still in the queue after the run (must be 0).
        kills: Consumer processes killed with SIGKILL.
        crashes: Consumer processes that died on their own (must be 0).
        elapsed: Seconds the run took.
    """

    published: int
    handled: int
    deliveries: int
    duplicates: int
    missing: frozenset[int]
    leftover: int
    kills: int
    crashes: int
    elapsed: float

    @property
    def ok(self) -> bool:
        """Every published message was handled and acked; nothing is left."""
        return (
            not self.missing and self.leftover == 0 and self.handled == self.published
        )

    def __str__(self) -> str:
        return (
            f"{self.published} published, {self.handled} handled and acked, "
            f"{len(self.missing)} missing, {self.duplicates} duplicates, "
            f"{self.leftover} left in the queue, {self.kills} SIGKILLs, "
            f"{self.crashes} crashes, "
            f"{self.elapsed:.1f} s"
        )


def _consume(
    url: str,
    options: dict[str, Any],
    queue: str,
    path: str,
    prefetch: int,
    seed: int,
    work: float,
) -> None:
    """A consumer process: record each batch, then ack it (one way or another)."""
    rng = random.Random(seed)  # noqa: S311 - test timing, not cryptography
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    transport = connect(url, **options)
    consumer = transport.consumer([queue], prefetch=prefetch)
    os.write(fd, b"ready\n")
    while True:
        batch = consumer.fetch(rng.randint(1, prefetch), timeout=1.0)
        if not batch:
            continue
        os.write(fd, b"".join(delivery.body + b"\n" for delivery in batch))
        time.sleep(work * len(batch))  # the tasks run: a kill now redelivers them
        if rng.random() < 0.5:
            transport.ack_many(batch)
        else:
            for delivery in batch:
                delivery.ack()


def _read(path: Path) -> tuple[bool, list[int]]:
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return False, []
    ready = bool(lines) and lines[0] == b"ready"
    return ready, [int(line) for line in lines if line and line != b"ready"]


def run_sigkill_test(
    url: str,
    *,
    options: dict[str, Any] | None = None,
    messages: int = 10_000,
    kills: int = 100,
    consumers: int = 4,
    prefetch: int = 20,
    kill_interval: tuple[float, float] = (0.02, 0.06),
    lease: float = 1.0,
    work: float = 0.001,
    timeout: float = 240.0,
    queue: str | None = None,
    seed: int | None = None,
) -> SigkillReport:
    """Publish *messages* while killing consumers *kills* times; report the outcome.

    Publishing is spread over the kills (``messages / kills`` between two
    kills), so the kills are spread over the messages. Afterwards the
    remaining consumers finish, are killed too, and a last consumer in this
    process drains whatever their deaths left (counted as duplicates).

    Args:
        url: The broker (any installed transport that works across processes).
        options: Transport options (table or key prefixes...); ``lease`` and
            ``renew_interval`` are set by the harness.
        messages: How many messages to publish.
        kills: How many SIGKILLs to deliver.
        consumers: Consumer processes alive at once.
        prefetch: Each consumer's prefetch.
        kill_interval: Range of the random pause before each kill, in seconds.
        lease: The lease of the consumers, so a dead one's messages come back soon.
        work: Seconds each message takes to handle, between recording it and
            acking it, so kills land while work is in flight.
        timeout: Give up after this many seconds.
        queue: The queue to use (a fresh unique name by default; it is deleted).
        seed: Seed of the random choices, for a repeatable run.

    Returns:
        The report; ``report.ok`` is what a test asserts.

    Consumers start from a ``forkserver``, which imports the caller's main
    module: call this from a test, or under ``if __name__ == "__main__":``.
    """
    rng = random.Random(seed)  # noqa: S311 - test timing, not cryptography
    options = {**(options or {}), "lease": lease, "renew_interval": lease / 4}
    queue = queue or f"qm_sigkill_{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    deadline = started + timeout
    transport = connect(url, **options)
    context = _fresh_forkserver(
        [
            "transports",
            "transports.testing._sigkill",
            type(transport).__module__,
            *transport.driver_modules,
        ]
    )
    transport.declare_queue(queue)
    with tempfile.TemporaryDirectory(prefix="qm-sigkill-") as folder:
        workdir = Path(folder)
        alive: list[tuple[Any, Path]] = []
        spawned = 0

        def spawn() -> None:
            nonlocal spawned
            spawned += 1
            path = workdir / f"consumer-{spawned}.log"
            process = context.Process(
                target=_consume,
                args=(
                    url,
                    options,
                    queue,
                    str(path),
                    prefetch,
                    rng.randrange(2**32),
                    work,
                ),
                daemon=True,
            )
            process.start()
            alive.append((process, path))

        for _ in range(consumers):
            spawn()
        done_kills = 0
        crashes = 0
        chunk = max(1, messages // max(kills, 1))
        next_id = 0
        try:
            while done_kills < kills or next_id < messages:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the SIGKILL run against {transport.url} did not finish in "
                        f"{timeout:g} s"
                    )
                if next_id < messages:
                    count = min(chunk, messages - next_id)
                    transport.publish_many(
                        Message(queue, b"%d" % n)
                        for n in range(next_id, next_id + count)
                    )
                    next_id += count
                if done_kills >= kills:
                    continue
                time.sleep(rng.uniform(*kill_interval))
                for item in [item for item in alive if not item[0].is_alive()]:
                    crashes += 1  # died on its own: a consumer must never crash
                    alive.remove(item)
                    spawn()
                ready = [item for item in alive if _read(item[1])[0]]
                if not ready:
                    continue
                victim = rng.choice(ready)
                os.kill(victim[0].pid, signal.SIGKILL)
                victim[0].join()
                alive.remove(victim)
                done_kills += 1
                spawn()
            while time.monotonic() < deadline:
                seen = {n for _, path in _files(workdir) for n in path}
                if len(seen) >= messages:
                    break
                time.sleep(0.1)
        finally:
            for process, _ in alive:
                if process.is_alive():
                    os.kill(process.pid, signal.SIGKILL)
                process.join()
        with transport.consumer([queue], prefetch=100) as last:
            extra: list[int] = []
            while True:
                got = last.fetch(timeout=lease + 1.0)
                if not got:
                    break
                extra.extend(int(d.body) for d in got)
                transport.ack_many(got)
        records = [n for _, ids in _files(workdir) for n in ids] + extra
        leftover = transport.size(queue)
        transport.delete_queue(queue)
    transport.close()
    handled = set(records)
    return SigkillReport(
        published=messages,
        handled=len(handled & set(range(messages))),
        deliveries=len(records),
        duplicates=len(records) - len(handled),
        missing=frozenset(set(range(messages)) - handled),
        leftover=leftover,
        kills=done_kills,
        crashes=crashes,
        elapsed=time.monotonic() - started,
    )


def _fresh_forkserver(preload: list[str]) -> Any:
    """The forkserver context, its server (re)started with *preload* imported.

    The forkserver is one per process and takes its preload list only when it
    starts: after an earlier run against another broker every consumer would
    import its driver itself (a second or so per start, 100 times). So a
    server already running is stopped first (``ForkServer._stop``, which the
    standard library keeps for its own tests; without it the old server stays).
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is not None:
        stop()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    return context


def _files(workdir: Path) -> list[tuple[Path, list[int]]]:
    return [(path, _read(path)[1]) for path in sorted(workdir.glob("consumer-*.log"))]
