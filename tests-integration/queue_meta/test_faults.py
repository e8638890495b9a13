"""Fault tests of the worker (the reliability issue), with real worker processes
on the embedded default, Redis and RabbitMQ.

A worker killed with SIGKILL mid-task: its task runs again on a second worker,
exactly once more, and no child of the killed worker survives.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import EndToEnd

BROKERS = ["embedded", "redis_broker", "amqp_broker"]

LONG = """
app = App(NAME, **APP_OPTIONS)

@app.task
def long(path, seconds):
    with open(path, "a") as f:
        f.write(f"start {os.getpid()}\\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"end {os.getpid()}\\n")
    return os.getpid()
"""


def _where(request: pytest.FixtureRequest, broker: str) -> dict[str, Any]:
    if broker == "embedded":
        return {}
    url = request.getfixturevalue(broker)
    return {"broker": url, "backend": url if broker == "redis_broker" else None}


def _descendants(pid: int) -> list[int]:
    """Processes below *pid* in the process tree (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
    found, frontier = [], {pid}
    while frontier:
        below = [child for child, parent in parents.items() if parent in frontier]
        found += below
        frontier = set(below)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie is not running
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s")
        time.sleep(0.05)


@pytest.mark.parametrize("broker", BROKERS)
def test_sigkill_mid_task_runs_it_again_exactly_once(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> None:
    where = _where(request, broker)
    if broker == "embedded":
        # A short lease so that the test does not wait a minute for redelivery.
        source = LONG.replace(
            "App(NAME, **APP_OPTIONS)",
            "App(NAME, **APP_OPTIONS, broker_transport_options="
            "{'lease': 3.0, 'renew_interval': 1.0})",
        )
    else:
        source = LONG
    trace = e2e.home / "trace.txt"
    with e2e.worker(source, **where, concurrency=1) as first:
        module = first.module
        result = module.long.delay(str(trace), 2.0)
        _wait_for(trace.exists, 10, "the task did not start")
        child = int(trace.read_text().split()[1])
        family = _descendants(first.proc.pid)
        assert child in family
        first.sigkill()
        # No process of the killed worker (pool children, fork server) survives.
        for pid in family:
            _wait_for(lambda p=pid: not _alive(p), 5, f"process {pid} outlived it")
    with e2e.worker("", module=module, concurrency=1) as second:
        assert result.get(timeout=30) != child
        lines = trace.read_text().split("\n")
        starts = [line for line in lines if line.startswith("start")]
        ends = [line for line in lines if line.startswith("end")]
        assert len(starts) == 2, lines  # the killed run, then exactly one more
        assert len(ends) == 1, lines
        assert second.module.long.delay(str(trace), 0).get(timeout=10)
