"""Celery and queue-meta run each other's tasks, on Redis and on RabbitMQ.

A Celery producer's ``send_task`` is executed by a queue-meta worker process and
Celery reads the result; a queue-meta producer's task is executed by a Celery
worker process and queue-meta reads the result; a failure on either side comes
back as the same exception type. Both sides use the same queue name and either
the Redis result store (Celery's key layout) or ``rpc://`` results (reply
messages over the broker). Celery is installed only in the ``interop``
session's virtualenv.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("celery")

Names = Callable[..., str]

TASKS = """
@app.task(name="interop.add")
def add(x, y):
    return x + y


@app.task(name="interop.fail")
def fail(text):
    raise ValueError(text)
"""

CELERY_MODULE = """
from celery import Celery

app = Celery("interop_celery", broker={broker!r}, backend={backend!r})
app.conf.task_default_queue = {queue!r}
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_hijack_root_logger = False
"""

QUEUE_META_MODULE = """
from queue_meta import App

app = App("interop_ours", broker={broker!r}, backend={backend!r},
          task_default_queue={queue!r})
"""


@contextmanager
def running(
    command: list[str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a worker process; stop it with SIGTERM; show its log on failure."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=out)
    try:
        yield process
    except BaseException:
        sys.stderr.write(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return str(request.getfixturevalue("amqp_url"))


@pytest.fixture(params=["redis-results", "rpc-results"])
def results(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def setup(
    broker: str, results: str, redis_url: str, unique_name: Names, tmp_path: Path
) -> dict[str, str]:
    queue = unique_name("interop")
    if results == "rpc-results":
        backend = "rpc://"
    else:
        backend = redis_url.rsplit("/", 1)[0] + "/3"
    values = {"broker": broker, "backend": backend, "queue": queue}
    (tmp_path / "celery_side.py").write_text(
        CELERY_MODULE.format(**values) + textwrap.dedent(TASKS)
    )
    (tmp_path / "our_side.py").write_text(
        QUEUE_META_MODULE.format(**values) + textwrap.dedent(TASKS)
    )
    return values


def test_our_worker_runs_a_celery_producers_tasks(
    setup: dict[str, str], tmp_path: Path
) -> None:
    sys.path.insert(0, str(tmp_path))
    try:
        import celery_side

        command = [sys.executable, "-m", "queue_meta", "-A", "our_side", "worker",
                   "-P", "threads", "-c", "2", "-l", "info"]  # fmt: skip
        with running(command, tmp_path, tmp_path / "ours.log"):
            result = celery_side.app.send_task("interop.add", (2, 3))
            assert result.get(timeout=60) == 5
            failed = celery_side.app.send_task("interop.fail", ("on our side",))
            with pytest.raises(ValueError, match="on our side"):
                failed.get(timeout=30)
        celery_side.app.close()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("celery_side", None)


def test_a_celery_worker_runs_our_producers_tasks(
    setup: dict[str, str], tmp_path: Path
) -> None:
    sys.path.insert(0, str(tmp_path))
    try:
        import our_side

        command = [sys.executable, "-m", "celery", "-A", "celery_side", "worker",
                   "-P", "solo", "--without-gossip", "--without-mingle",
                   "--without-heartbeat", "-l", "info"]  # fmt: skip
        with running(command, tmp_path, tmp_path / "celery.log"):
            result = our_side.app.send_task("interop.add", (20, 22))
            assert result.get(timeout=60) == 42
            failed = our_side.app.send_task("interop.fail", ("on Celery's side",))
            with pytest.raises(ValueError, match="on Celery's side"):
                failed.get(timeout=30)
        our_side.app.close()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("our_side", None)
