"""The demo: a worker on the embedded default broker doing real work.

``python -m queue_meta.demo`` (or ``nox -s demo`` in a checkout) starts
``queue worker`` for the tasks below in a fresh ``$QUEUE_HOME`` (SQLite broker
and result store, nothing else needed), sends a few hundred tasks, among them
a retry, a countdown and a failure, prints their results and the throughput,
then stops the worker with SIGTERM (a warm shutdown) and checks it exited
cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from queue_meta import App, Task

app = App("queue_meta.demo")


@app.task
def add(x: int, y: int) -> int:
    """Add two numbers."""
    return x + y


@app.task(bind=True, max_retries=3)
def flaky(self: Task[Any, Any], attempts: int) -> str:
    """Fail *attempts* times, retrying after 0.2 s, then succeed."""
    retries = self.request.retries
    if retries < attempts:
        raise self.retry(
            exc=ConnectionError(f"attempt {retries + 1} failed"), countdown=0.2
        )
    return f"succeeded after {retries} retries"


@app.task
def divide(x: float, y: float) -> float:
    """Divide; dividing by zero fails the task."""
    return x / y


def _wait_ready(worker: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    probe = add.delay(0, 0)
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited early with status {worker.returncode}")
        try:
            probe.get(timeout=1.0)
            return
        except TimeoutError:
            continue
    raise SystemExit("the worker did not start within 30 s")


def main(count: int = 300) -> int:
    """Run the demo; return the exit status."""
    with tempfile.TemporaryDirectory(prefix="queue-meta-demo-") as home:
        os.environ["QUEUE_HOME"] = home
        app.conf.queue_home = home
        print(f"queue-meta demo: embedded default broker and results in {app.home}")
        worker = subprocess.Popen(
            [sys.executable, "-m", "queue_meta", "-A", "queue_meta.demo", "worker",
             "-l", "info", "-c", "2", "-n", "demo@%h"],
            env={**os.environ, "QUEUE_HOME": home},
        )  # fmt: skip
        try:
            _wait_ready(worker)
            started = time.perf_counter()
            results = app.send_many(add.s(i, i) for i in range(count))
            retried = flaky.delay(2)
            later = add.apply_async((20, 22), countdown=2)
            failed = divide.delay(1, 0)
            total = sum(result.get(timeout=60) for result in results)
            elapsed = time.perf_counter() - started
            expected = sum(2 * i for i in range(count))
            print(f"\n{count} additions: sum of results {total} (expected {expected})")
            print(f"retry:     {retried.get(timeout=30)!r}")
            print(f"countdown: {later.get(timeout=30)!r} (sent with countdown=2)")
            try:
                failed.get(timeout=30)
            except ZeroDivisionError as exc:
                print(f"failure:   {exc!r} raised here, as in the task")
            rate = count / elapsed
            print(
                f"throughput: {count} tasks in {elapsed:.2f} s = {rate:,.0f} tasks/s "
                "(prefork pool, 2 processes, SQLite)"
            )
            ok = total == expected
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                status = worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                status = worker.wait()
        print(f"worker stopped with status {status}")
        app.close()
        return 0 if ok and status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
