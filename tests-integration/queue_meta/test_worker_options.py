"""``queue worker`` options end to end: pid and log files, the state file,
child recycling, autoscale, queues, hostname, autodiscovery and shared tasks.

Each test runs real worker processes on the embedded default broker.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import EndToEnd

TASKS = """
app = App(NAME, **APP_OPTIONS)

@app.task(bind=True)
def where(self):
    return {"pid": os.getpid(), "hostname": self.request.hostname,
            "queue": self.request.delivery_info.get("routing_key")}

@app.task
def touch(path):
    Path(path).write_text("ran")
    return "touched"

_hoard = []

@app.task
def grow(mib):
    _hoard.append(bytearray(mib * 1024 * 1024))
    return os.getpid()

@app.task
def rendezvous(folder, me, count):
    # Returns True only if *count* of these run at the same time.
    Path(folder, me).touch()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if len(list(Path(folder).iterdir())) >= count:
            return True
        time.sleep(0.05)
    return False

@app.task
def log_something():
    from queue_meta import get_task_logger
    get_task_logger(__name__).warning("a line from inside the task")
    return "logged"
"""


def test_pidfile_and_logfile(e2e: EndToEnd) -> None:
    pidfile = e2e.home / "worker.pid"
    logfile = e2e.home / "worker.log"
    with e2e.worker(
        TASKS, "--pidfile", str(pidfile), "--logfile", str(logfile)
    ) as worker:
        assert int(pidfile.read_text().strip()) == worker.proc.pid
        result = worker.module.log_something.delay()
        assert result.get(timeout=10) == "logged"
        # A second worker with the same pid file refuses to start: one clear line.
        clash = e2e.cli(
            "-A", worker.module.__name__, "worker", "--pidfile", str(pidfile)
        )
        assert clash.returncode != 0
        assert "Traceback" not in clash.stderr
        assert str(pidfile) in clash.stderr
        assert "already running" in clash.stderr or str(worker.proc.pid) in clash.stderr
    assert not pidfile.exists(), "the pid file is removed at shutdown"
    text = logfile.read_text()
    # Task log lines carry the task's name and id.
    line = next(x for x in text.splitlines() if "a line from inside the task" in x)
    assert "log_something" in line
    assert result.id in line
    assert f"Task {worker.module.NAME}.log_something[{result.id}] succeeded" in text


def test_statedb_keeps_revocations_across_restarts(e2e: EndToEnd) -> None:
    statedb = e2e.home / "worker.state"
    marker = e2e.home / "revoked-ran"
    task_id = str(uuid.uuid4())
    with e2e.worker(TASKS, "--statedb", str(statedb)) as first:
        module = first.module
        module.app.control.revoke(task_id)
        first.wait_for_log(f"revoked task {task_id}")
    # The task is sent while no worker runs; the next worker reads the state file.
    result = module.touch.apply_async((str(marker),), task_id=task_id)
    with e2e.worker("", "--statedb", str(statedb), module=module) as second:
        second.wait_for_log(f"discarding revoked task {module.NAME}.touch[{task_id}]")
        assert module.where.delay().get(timeout=10)["pid"]  # still serving
        assert result.state == "REVOKED"
    assert not marker.exists()


def test_max_tasks_per_child_recycles_children(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS, "--max-tasks-per-child", "1", concurrency=1) as worker:
        pids = [worker.module.where.delay().get(timeout=15)["pid"] for _ in range(4)]
    assert len(set(pids)) == 4, pids


def test_max_memory_per_child_recycles_a_grown_child(e2e: EndToEnd) -> None:
    # 150 MiB: above any fresh child, below one holding 200 MiB more.
    with e2e.worker(TASKS, "--max-memory-per-child", "153600", concurrency=1) as w:
        module = w.module
        before = module.where.delay().get(timeout=10)["pid"]
        assert module.where.delay().get(timeout=10)["pid"] == before  # small: kept
        assert module.grow.delay(200).get(timeout=20) == before
        after = module.where.delay().get(timeout=20)["pid"]
    assert after != before


def test_autoscale_grows_the_pool_under_load(e2e: EndToEnd) -> None:
    folder = e2e.home / "meeting"
    folder.mkdir()
    with e2e.worker(TASKS, "--autoscale", "3,1", concurrency=1) as worker:
        results = [
            worker.module.rendezvous.delay(str(folder), str(i), 3) for i in range(3)
        ]
        # Each waits until all three run at once: only a pool of 3 gets there.
        assert [r.get(timeout=30) for r in results] == [True, True, True]


def test_queues_and_hostname(e2e: EndToEnd) -> None:
    name = e2e.unique_name("q")
    queues = f"{name},{name}.a,{name}.b"
    with e2e.worker(TASKS, "-Q", queues, queue=name) as worker:
        module = worker.module
        for queue in (f"{name}.a", f"{name}.b"):
            info = module.where.apply_async(queue=queue).get(timeout=10)
            assert info["queue"] == queue
            # -n NAME@%h: %h became this machine's host name.
            assert info["hostname"] == f"{module.NAME}@{os.uname().nodename}"
        # A queue not in -Q is not consumed by this worker.
        waiting = module.where.apply_async(queue=f"{name}.c")
        time.sleep(0.5)
        assert waiting.state == "PENDING"


def test_autodiscover_tasks_and_shared_task(e2e: EndToEnd) -> None:
    package = e2e.unique_name("pkg")
    (e2e.home / package).mkdir()
    (e2e.home / package / "__init__.py").write_text("")
    (e2e.home / package / "tasks.py").write_text(
        "from queue_meta import shared_task\n\n"
        "@shared_task\n"
        "def mul(x, y):\n"
        "    return x * y\n"
    )
    source = (
        TASKS + f"\napp.autodiscover_tasks([{package!r}, 'no_such_package_here'])\n"
    )
    with e2e.worker(source) as worker:
        assert f"{package}.tasks.mul" in worker.log()  # listed in the banner
        shared = __import__(f"{package}.tasks", fromlist=["mul"]).mul
        assert shared.delay(6, 7).get(timeout=10) == 42  # bound to the current app
        sent = worker.module.app.send_task(f"{package}.tasks.mul", (3, 4))
        assert sent.get(timeout=10) == 12


def test_sigint_is_a_warm_shutdown_too(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS) as worker:
        worker.signal(signal.SIGINT)
        assert worker.proc.wait(timeout=10) == 0
        assert worker.lines("warm shutdown")


def test_heartbeat_file_is_a_liveness_probe(e2e: EndToEnd) -> None:
    beat = e2e.home / "worker.alive"
    with e2e.worker(TASKS, "--heartbeat-file", str(beat)) as worker:
        time.sleep(1.2)
        alive = e2e.cli("status", "--local", "--heartbeat-file", str(beat))
        assert alive.returncode == 0, alive.stdout + alive.stderr
        assert alive.stdout.startswith("ok: ")
        assert str(worker.proc.pid) in alive.stdout
        # A worker that stops coming back from the broker (here: stopped by
        # SIGSTOP) goes stale, and the probe says so with a non-zero status.
        worker.signal(signal.SIGSTOP)
        try:
            time.sleep(2.5)
            stale = e2e.cli(
                "status", "--local", "--heartbeat-file", str(beat), "--max-age", "2"
            )
        finally:
            worker.signal(signal.SIGCONT)
        assert stale.returncode == 1
        assert stale.stdout.startswith("stale: ")
        worker.wait_for_log("ready")  # still fine after SIGCONT
    assert not beat.exists(), "the heartbeat file goes with the worker"
    gone = e2e.cli("status", "--local", "--heartbeat-file", str(beat))
    assert gone.returncode == 1
    assert "not running" in gone.stdout
    cluster = e2e.cli("status")
    assert cluster.returncode != 0
    assert "--local" in cluster.stderr
    assert "Traceback" not in cluster.stderr


def test_several_workers_share_the_embedded_files(e2e: EndToEnd) -> None:
    with e2e.worker(TASKS, concurrency=1) as first:
        module = first.module
        with e2e.worker("", module=module, concurrency=1) as second:
            second.wait_for_log("ready.")  # the first worker may answer the ping
            results = [module.where.delay() for _ in range(40)]
            pids = {r.get(timeout=20)["pid"] for r in results}
            home = str(e2e.home / module.NAME)
            assert home in first.log()
            assert home in second.log()
    # Both workers' children ran some of them (prefork -c 1 each).
    assert len(pids) == 2, pids


def test_cli_errors_are_one_line(e2e: EndToEnd) -> None:
    missing = e2e.cli("-A", "no_such_module_here", "worker")
    assert missing.returncode != 0
    assert "no_such_module_here" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    name = e2e.write_module(TASKS, broker="redis://127.0.0.1:1/0")
    unreachable = e2e.cli("worker", "-A", name, timeout=60)  # the other order
    assert unreachable.returncode != 0
    assert "Traceback" not in unreachable.stderr
    assert "127.0.0.1:1" in unreachable.stderr
    assert "unreachable" in unreachable.stderr or "refused" in unreachable.stderr
    good = e2e.write_module(TASKS)
    nowhere = e2e.cli("-A", good, "worker", "--heartbeat-file", "/no/such/dir/alive")
    assert nowhere.returncode != 0
    assert "Traceback" not in nowhere.stderr
    assert "cannot write the heartbeat file /no/such/dir/alive" in nowhere.stderr
