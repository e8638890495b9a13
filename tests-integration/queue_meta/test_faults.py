"""Fault tests of the worker (the reliability issue), with real worker processes
on the embedded default, Redis and RabbitMQ.

A worker killed with SIGKILL mid-task: its task runs again on a second worker,
exactly once more, and no child of the killed worker survives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from e2e_helpers import BROKERS, alive, descendants, wait_for, where

if TYPE_CHECKING:
    from conftest import EndToEnd

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


@pytest.mark.parametrize("broker", BROKERS)
def test_sigkill_mid_task_runs_it_again_exactly_once(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> None:
    place = where(request, broker)
    if broker in ("embedded", "postgres_url"):
        # A short lease so that the test does not wait a minute for redelivery.
        source = LONG.replace(
            "App(NAME, **APP_OPTIONS)",
            "App(NAME, **APP_OPTIONS, broker_transport_options="
            "{'lease': 3.0, 'renew_interval': 1.0})",
        )
    else:
        source = LONG
    trace = e2e.home / "trace.txt"
    with e2e.worker(source, **place, concurrency=1) as first:
        module = first.module
        result = module.long.delay(str(trace), 2.0)
        # The file appears before its line is written: wait for the line.
        wait_for(
            lambda: trace.exists() and trace.read_text().endswith("\n"),
            10,
            "the task did not start",
        )
        child = int(trace.read_text().split()[1])
        family = descendants(first.proc.pid)
        assert child in family
        first.sigkill()
        # No process of the killed worker (pool children, fork server) survives.
        for pid in family:
            wait_for(lambda p=pid: not alive(p), 5, f"process {pid} outlived it")
    with e2e.worker("", module=module, concurrency=1) as second:
        assert result.get(timeout=30) != child
        lines = trace.read_text().split("\n")
        starts = [line for line in lines if line.startswith("start")]
        ends = [line for line in lines if line.startswith("end")]
        assert len(starts) == 2, lines  # the killed run, then exactly one more
        assert len(ends) == 1, lines
        assert second.module.long.delay(str(trace), 0).get(timeout=10)
