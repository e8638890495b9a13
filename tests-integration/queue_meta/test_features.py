"""End-to-end tests of the worker's features (issue 7's acceptance list).

Each test starts a real ``queue worker`` process on the embedded default
(SQLite under the test's ``$QUEUE_HOME``) unless it says otherwise, sends
tasks from this process and reads their results.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from e2e_helpers import wait_for

from queue_meta import (
    ConfigurationError,
    NotRegisteredError,
    TaskRevokedError,
    TimeLimitExceeded,
)

if TYPE_CHECKING:
    from conftest import EndToEnd, RunningWorker

TASKS = """
from queue_meta import SoftTimeLimitExceeded

app = App(NAME, **APP_OPTIONS)
MARKS = Path(HOME) / "marks"
MARKS.mkdir(exist_ok=True)


def mark(name, text="ran"):
    (MARKS / name).write_text(text)


@app.task
def hello():
    return "hello world"


@app.task
def add(x, y):
    return x + y


@app.task
def marker(name):
    mark(name)
    return name


@app.task
def now():
    return time.time()


@app.task(bind=True, autoretry_for=(ValueError,), retry_backoff=0.25,
          retry_jitter=False, max_retries=3)
def backoff(self):
    with (Path(HOME) / "attempts").open("a") as file:
        file.write(f"{time.time()} {self.request.id} {self.request.retries}\\n")
    if self.request.retries < 3:
        raise ValueError("not yet")
    return {"id": self.request.id, "retries": self.request.retries}


@app.task(bind=True, max_retries=2, default_retry_delay=30)
def manual(self):
    if self.request.retries < 2:
        raise self.retry(exc=KeyError("again"), countdown=0.3)
    return {"id": self.request.id, "retries": self.request.retries}


@app.task(bind=True, max_retries=1)
def always_fails(self):
    raise self.retry(exc=ZeroDivisionError("never"), countdown=0.1)


@app.task(rate_limit="5/s")
def limited(i):
    return time.time()


@app.task(soft_time_limit=0.5)
def soft():
    try:
        time.sleep(10)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "slept"


@app.task(time_limit=1)
def hard():
    time.sleep(10)
    return "finished"


@app.task(bind=True)
def progress(self, total):
    go = Path(HOME) / "go"
    for done in range(1, total + 1):
        self.update_state(state="PROGRESS", meta={"done": done, "total": total})
        deadline = time.time() + 20
        while done == 1 and not go.exists() and time.time() < deadline:
            time.sleep(0.05)
    return {"done": total}


@app.task(ignore_result=True)
def quiet(name):
    mark(name)
    return "not stored"


@app.task
def slow(seconds):
    mark("slow-started")
    time.sleep(seconds)
    return "finished"
"""


def _marks(e2e: EndToEnd) -> Path:
    return e2e.home / "marks"


# -- retries -------------------------------------------------------------------------


def test_autoretry_with_exponential_backoff(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS, clean_log=False) as worker:
        result = worker.module.backoff.delay()
        assert result.get(timeout=20) == {"id": result.id, "retries": 3}
        attempts = (e2e.home / "attempts").read_text().split("\n")[:-1]
        times = [float(line.split()[0]) for line in attempts]
        assert [line.split()[1:] for line in attempts] == [
            [result.id, str(retries)] for retries in range(4)
        ]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # countdowns 0.25, 0.5, 1.0 (retry_backoff=0.25, no jitter)
        for gap, countdown in zip(gaps, [0.25, 0.5, 1.0], strict=True):
            assert countdown * 0.9 <= gap < countdown + 1.0, gaps
        assert len(worker.lines(f"[{result.id}] retry")) == 3


def test_self_retry_keeps_the_id_and_counts_retries(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS, clean_log=False) as worker:
        module = worker.module
        started = time.monotonic()
        result = module.manual.delay()
        assert result.get(timeout=20) == {"id": result.id, "retries": 2}
        assert time.monotonic() - started >= 0.55  # two countdowns of 0.3 s
        failing = module.always_fails.delay()
        with pytest.raises(ZeroDivisionError, match="never"):
            failing.get(timeout=20)
        assert failing.state == "FAILURE"


# -- scheduling ----------------------------------------------------------------------


def test_countdown_and_eta(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS) as worker:
        now = worker.module.now
        sent = time.time()
        later = now.apply_async(countdown=1.5)
        at = now.apply_async(eta=datetime.now(timezone.utc) + timedelta(seconds=1))
        at_once = now.delay()
        assert at_once.get(timeout=10) - sent < 1.0  # not held up by the others
        assert at.get(timeout=10) - sent >= 0.95
        assert later.get(timeout=10) - sent >= 1.45
        assert worker.lines(f"[{later.id}] scheduled for")


def test_expired_tasks_are_not_run(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS) as worker:
        marker = worker.module.marker
        past = datetime.now(timezone.utc) - timedelta(seconds=1)
        on_arrival = marker.apply_async(("on-arrival",), expires=past)
        while_waiting = marker.apply_async(("waiting",), countdown=1.0, expires=0.5)
        assert marker.delay("fresh").get(timeout=10) == "fresh"
        for result in (on_arrival, while_waiting):
            with pytest.raises(TaskRevokedError):
                result.get(timeout=10)
            assert result.state == "REVOKED"
        assert sorted(p.name for p in _marks(e2e).iterdir()) == ["fresh"]
        assert len(worker.lines("discarding expired task")) == 2


def test_revoke_before_a_countdown_task_runs(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS) as worker:
        module = worker.module
        result = module.marker.apply_async(("revoked",), countdown=2)
        worker.wait_for_log(f"[{result.id}] scheduled for")
        module.app.control.revoke(result.id)
        worker.wait_for_log(f"revoked task {result.id}")
        with pytest.raises(TaskRevokedError):
            result.get(timeout=10)
        assert result.state == "REVOKED"
        assert module.marker.delay("after").get(timeout=10) == "after"
        assert not (_marks(e2e) / "revoked").exists()


def test_rate_limit_does_not_block_other_tasks(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS, pool="threads", concurrency=4) as worker:
        module = worker.module
        sent = time.time()
        limited = [module.limited.delay(i) for i in range(10)]
        free = module.now.delay()
        ran_at = sorted(result.get(timeout=20) for result in limited)
        free_at = free.get(timeout=10)
        assert ran_at[-1] - sent >= 1.7  # 5/s: the 10th starts 1.8 s after the 1st
        assert ran_at[-1] - ran_at[0] >= 1.6
        assert free_at - sent < 1.0
        assert free_at < ran_at[-1] - 0.5


# -- time limits ---------------------------------------------------------------------


def test_soft_time_limit_lets_the_task_clean_up(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS) as worker:
        started = time.monotonic()
        assert worker.module.soft.delay().get(timeout=10) == "cleaned up"
        assert time.monotonic() - started < 5


def test_hard_time_limit_fails_the_task_and_the_pool_carries_on(
    e2e: EndToEnd,
) -> None:
    with e2e.worker(TASKS, concurrency=1, clean_log=False) as worker:
        module = worker.module
        result = module.hard.delay()
        with pytest.raises(TimeLimitExceeded):
            result.get(timeout=15)
        assert result.state == "FAILURE"
        assert [module.add.delay(i, i).get(timeout=10) for i in range(3)] == [0, 2, 4]


# -- states and results --------------------------------------------------------------


def test_custom_state_is_seen_while_the_task_runs(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS) as worker:
        result = worker.module.progress.delay(3)
        wait_for(lambda: result.state == "PROGRESS", what="state PROGRESS")
        assert result.info == {"done": 1, "total": 3}
        assert not result.ready()
        (e2e.home / "go").touch()
        assert result.get(timeout=10) == {"done": 3}
        assert result.state == "SUCCESS"


def test_ignore_result_stores_nothing(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS, concurrency=1) as worker:
        module = worker.module
        by_task = module.quiet.delay("by-task")
        by_call = module.marker.apply_async(("by-call",), ignore_result=True)
        # One process, one message at a time: when this is done, so are they.
        assert module.hello.delay().get(timeout=10) == "hello world"
        assert sorted(p.name for p in _marks(e2e).iterdir()) == ["by-call", "by-task"]
        for result in (by_task, by_call):
            assert result.state == "PENDING"
            assert result.exists() is False


@pytest.mark.parametrize("broker", ["postgres_url", "redis_broker", "amqp_broker"])
def test_rpc_results(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> None:
    url = request.getfixturevalue(broker)
    with e2e.worker(TASKS, broker=url, backend="rpc://", clean_log=False) as worker:
        module = worker.module
        results = [module.add.delay(i, i) for i in range(5)]
        assert [r.get(timeout=10) for r in reversed(results)] == [8, 6, 4, 2, 0]
        assert results[0].state == "SUCCESS"
        failing = module.always_fails.delay()
        with pytest.raises(ZeroDivisionError):
            failing.get(timeout=10)
        assert failing.state == "FAILURE"


# -- bad input -----------------------------------------------------------------------


def test_config_typo_is_one_clear_error(e2e: EndToEnd) -> None:
    from queue_meta import App

    with pytest.raises(ConfigurationError, match="did you mean 'task_acks_late'"):
        App(e2e.unique_name("typo"), task_ack_late=True)
    name = e2e.write_module(
        "app = App(NAME, **APP_OPTIONS, task_ack_late=True)", ping=False
    )
    started = time.monotonic()
    done = e2e.cli("-A", name, "worker", "-l", "info", timeout=30)
    assert time.monotonic() - started < 15
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "task_acks_late" in lines[0]
    assert "task_ack_late" in lines[0]


def test_unknown_task_is_rejected_and_the_worker_carries_on(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS) as worker:
        app = worker.app
        result = app.send_task("e2e.no_such_task", (1, 2))
        worker.wait_for_log("e2e.no_such_task")
        assert len(worker.lines("e2e.no_such_task")) == 1
        assert len(worker.lines("unregistered task 'e2e.no_such_task'")) == 1
        with pytest.raises(NotRegisteredError):
            result.get(timeout=10)
        # Garbage bytes pushed straight into the queue: one line, moved aside.
        _publish_raw(worker, b"\xff\x00 not a task", {}, {})
        worker.wait_for_log("cannot be used")
        # A pickled task: the content type is not accepted (JSON only).
        pickled = {"task": "e2e.add", "id": "pickled-1", "lang": "py"}
        _publish_raw(
            worker, b"\x80\x04N.", pickled,
            {"content_type": "application/x-python-serialize"},
        )  # fmt: skip
        worker.wait_for_log("cannot be used", count=2)
        assert worker.module.add.delay(2, 2).get(timeout=10) == 4
        dead = f"{app.conf.task_default_queue}.dead"
        assert len(worker.lines(f"moved to the dead-letter queue {dead!r}")) == 3
        reasons = _drain_dead_letters(app, dead)
        assert len(reasons) == 3
        assert "unregistered task 'e2e.no_such_task'" in reasons
        assert any("x-python-serialize" in r or "pickle" in r for r in reasons)


def _drain_dead_letters(app: Any, queue: str) -> list[str]:
    """The x-death-reason headers of the messages in *queue* (consumed)."""
    import transports
    from transports.testing import collect

    connection = transports.connect(app.broker_url)
    try:
        with connection.consumer([queue]) as consumer:
            deliveries = collect(consumer, connection.size(queue), timeout=10)
            for delivery in deliveries:
                delivery.ack()
        return [str(d.headers["x-death-reason"]) for d in deliveries]
    finally:
        connection.close()


def _signing_settings(e2e: EndToEnd) -> str:
    from signing.testing import make_identity

    keys = e2e.home / "keys"
    trusted = keys / "trusted"
    trusted.mkdir(parents=True)
    identity = make_identity("rsa", common_name="queue-meta e2e")
    key, cert = identity.write(keys, name="worker")
    (trusted / "worker.pem").write_bytes(cert.read_bytes())
    return (
        f"security_key={str(key)!r}, security_certificate={str(cert)!r}, "
        f"security_cert_store={str(trusted)!r}"
    )


def _publish_raw(
    worker: RunningWorker, body: bytes, headers: Any, properties: Any
) -> None:
    import transports

    app = worker.app
    connection = transports.connect(app.broker_url)
    try:
        connection.publish(
            app.conf.task_default_queue, body, headers=headers, properties=properties
        )
    finally:
        connection.close()


def test_signed_tasks_run_and_tampered_ones_are_rejected(e2e: EndToEnd) -> None:
    import base64
    import json

    from msgwire import Registry, TaskMessage
    from queue_meta.messaging import prepare

    source = TASKS.replace(
        "app = App(NAME, **APP_OPTIONS)",
        f"app = App(NAME, **APP_OPTIONS, {_signing_settings(e2e)})",
    )
    with e2e.worker(source) as worker:
        module, app = worker.module, worker.app
        add_name = module.add.name
        assert module.add.delay(2, 3).get(timeout=10) == 5
        # The body is signed (Celery's auth format): change the arguments.
        signed = prepare(app, add_name, (2, 3), {}, {}, module.add)
        assert signed.properties["content_type"] == "application/data"
        fields = base64.b64decode(signed.body).split(b"\x00\x01", 4)
        inner = json.loads(fields[4])
        assert inner[0] == [2, 3]
        inner[0] = [2, 4]
        fields[4] = json.dumps(inner).encode()
        tampered = base64.b64encode(b"\x00\x01".join(fields))
        _publish_raw(worker, tampered, signed.headers, signed.properties)
        # A plain JSON message, not signed at all.
        plain = TaskMessage.new(add_name, (5, 5)).encode(
            registry=Registry(accept=["json"]), serializer="json"
        )
        _publish_raw(worker, plain.body, plain.headers, plain.properties)
        worker.wait_for_log("rejected a message", count=2)
        rejected = worker.lines("rejected a message")
        assert len(rejected) == 2, rejected
        assert "ignature" in rejected[0], rejected[0]
        assert module.add.delay(1, 1).get(timeout=10) == 2
        # Neither 2 + 4 nor 5 + 5 was computed.
        ran = [line.rpartition(": ")[2] for line in worker.lines(f"{add_name}[")]
        assert "6" not in ran
        assert "10" not in ran
        assert len(worker.lines("rejected a message")) == 2


# -- the command line ----------------------------------------------------------------


def test_cli_call_result_and_purge(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS) as worker:
        app, name = worker.app, worker.module.__name__
        called = e2e.cli("-A", name, "call", f"{name}.add", "--args", "[2, 3]")
        assert called.returncode == 0, called.stderr
        task_id = called.stdout.strip()
        assert len(task_id) == 36, called.stdout
        shown = e2e.cli("-A", name, "result", task_id, "--wait", "--timeout", "10")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.strip() == "5"
        assert app.AsyncResult(task_id).get(timeout=1) == 5
        # Messages waiting in a queue no worker consumes, then purged.
        idle = e2e.unique_name("idle")
        queued = e2e.cli(
            "-A", name, "call", f"{name}.add", "--args", "[1, 1]", "--queue", idle
        )
        assert queued.returncode == 0, queued.stderr
        for _ in range(2):
            app.send_task(f"{name}.add", (1, 1), queue=idle)
        assert app.transport.size(idle) == 3
        purged = e2e.cli("-A", name, "purge", "-Q", idle, "-f")
        assert purged.returncode == 0, purged.stderr
        assert "3" in purged.stdout
        assert app.transport.size(idle) == 0


# -- shutdown ------------------------------------------------------------------------


def test_warm_shutdown_finishes_the_running_task(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS, concurrency=1) as worker:
        module = worker.module
        result = module.slow.delay(1.5)
        wait_for((_marks(e2e) / "slow-started").exists, what="the task to start")
        waiting = module.hello.delay()
        took = worker.stop(timeout=10)
        assert took >= 0.5  # it waited for the task
        assert worker.lines("warm shutdown")
        assert result.get(timeout=5) == "finished"
        # The message it had not started stays in the queue for the next worker.
        assert waiting.state == "PENDING"
        assert worker.app.transport.size(worker.app.conf.task_default_queue) == 1
