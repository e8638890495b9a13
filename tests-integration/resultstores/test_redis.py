"""What is particular to the Redis store: Celery's layout, pushed wait, reconnects."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from resultstores import ResultStoreConnectionError, TaskInfo, connect, states
from resultstores._redis import RedisResultStore
from resultstores.testing import new_id

Names = Callable[..., str]


@pytest.fixture
def prefix(redis_url: str, unique_name: Names) -> Iterator[str]:
    value = unique_name("rs") + ":"
    yield value
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=value + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_results_use_celerys_key_value_and_expiry(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    store = connect(redis_url, global_keyprefix=prefix)
    task_id = new_id()
    info = TaskInfo(
        name="proj.add",
        args=[1, 2],
        kwargs={"k": "v"},
        worker="w1@vm",
        retries=0,
        queue="celery",
    )
    store.mark_success(task_id, 3, info=info)
    value = raw.get(f"{prefix}celery-task-meta-{task_id}")
    assert value is not None
    document = json.loads(value)
    assert list(document) == [
        "status", "result", "traceback", "children", "date_done",
        "name", "args", "kwargs", "worker", "retries", "queue", "task_id",
    ]  # fmt: skip
    assert value.startswith(
        b'{"status": "SUCCESS", "result": 3, "traceback": null, "children": [], '
        b'"date_done": "'
    )
    assert document["date_done"].endswith("+00:00")
    assert 86300 < raw.ttl(f"{prefix}celery-task-meta-{task_id}") <= 86400
    store.close()


def test_failures_hold_celerys_exception_dict(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    store = connect(redis_url, global_keyprefix=prefix)
    task_id = new_id()
    store.mark_failure(
        task_id,
        ValueError("boom"),
        "Traceback (most recent call last):\nValueError: boom\n",
    )
    document = json.loads(raw.get(f"{prefix}celery-task-meta-{task_id}") or b"")
    assert document["status"] == "FAILURE"
    assert document["result"] == {
        "exc_type": "ValueError",
        "exc_message": ["boom"],
        "exc_module": "builtins",
    }
    assert document["traceback"].endswith("ValueError: boom\n")
    store.close()


@pytest.mark.parametrize(
    ("given", "used"),
    [("app1", "app1_"), ("app1:", "app1:"), ("a.", "a."), ("a-", "a-")],
)
def test_global_keyprefix_follows_celerys_underscore_rule(
    redis_url: str, given: str, used: str
) -> None:
    store = connect(f"{redis_url}?global_keyprefix={given}")
    assert isinstance(store, RedisResultStore)
    assert store.task_key("t") == f"{used}celery-task-meta-t"
    store.close()


def test_every_write_is_published_on_the_keys_channel(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    store = connect(redis_url, global_keyprefix=prefix)
    task_id = new_id()
    pubsub = raw.pubsub()
    pubsub.subscribe(f"{prefix}celery-task-meta-{task_id}")
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    store.set_state(task_id, states.STARTED)
    store.mark_success(task_id, "done")
    messages = [pubsub.get_message(timeout=2) for _ in range(2)]
    assert [json.loads(m["data"])["status"] for m in messages if m] == [
        "STARTED",
        "SUCCESS",
    ]
    # A refused overwrite publishes nothing.
    store.mark_success(task_id, "again")
    assert pubsub.get_message(timeout=0.3) is None
    pubsub.close()
    store.close()


def test_groups_and_chords_use_celerys_keys(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    store = connect(redis_url, global_keyprefix=prefix)
    group_id = new_id()
    store.save_group(group_id, ["t1", "t2"])
    assert json.loads(raw.get(f"{prefix}celery-taskset-meta-{group_id}") or b"") == {
        "result": [[group_id, None], [[["t1", None], None], [["t2", None], None]]]
    }
    store.set_chord_size(group_id, 2)
    assert raw.get(f"{prefix}celery-taskset-meta-{group_id}.s") == b"2"
    assert store.chord_part_return(group_id, "t1", states.SUCCESS, 3, index=0) is None
    members = raw.zrange(
        f"{prefix}celery-taskset-meta-{group_id}.j", 0, -1, withscores=True
    )
    assert [(json.loads(member), score) for member, score in members] == [
        ([1, "t1", "SUCCESS", 3], 0.0)
    ]
    # Task.replace adds to the header through .t, as Celery's add_to_chord does.
    raw.incr(f"{prefix}celery-taskset-meta-{group_id}.t")
    assert store.chord_part_return(group_id, "t2", states.SUCCESS, 4, index=1) is None
    done = store.chord_part_return(group_id, "t3", states.SUCCESS, 5, index=2)
    assert done is not None
    assert done.values() == [3, 4, 5]
    assert not raw.exists(
        *(f"{prefix}celery-taskset-meta-{group_id}{s}" for s in (".j", ".t", ".s"))
    )
    store.close()


def _client_of(raw: redis.Redis, name: str, pubsub: bool) -> dict[str, Any]:
    for client in raw.client_list():
        if client.get("name") == name and (int(client.get("sub", 0)) > 0) == pubsub:
            return client
    raise AssertionError(f"no {'pub/sub ' if pubsub else ''}connection named {name}")


def test_wait_does_not_poll(
    redis_url: str, prefix: str, raw: redis.Redis, unique_name: Names
) -> None:
    """MONITOR sees the same few commands for a 2-second wait as for an instant one."""
    name = unique_name("nopoll")
    store = connect(redis_url, global_keyprefix=prefix, client_name=name)
    store.get(new_id())  # open the command connection
    seen: list[str] = []
    ready = threading.Event()
    stop = threading.Event()

    def monitor() -> None:
        with raw.monitor() as mon:
            ready.set()
            for event in mon.listen():
                if prefix in event["command"]:
                    seen.append(event["command"])
                if stop.is_set() and "qm-monitor-stop" in event["command"]:
                    return

    thread = threading.Thread(target=monitor, daemon=True)
    thread.start()
    assert ready.wait(5)
    time.sleep(0.2)

    def count_during_wait(seconds: float) -> int:
        before = len(seen)
        task_id = new_id()
        with pytest.raises(TimeoutError):
            store.wait(task_id, timeout=seconds)
        time.sleep(0.2)
        # The UNSUBSCRIBE of a finished wait goes out with the next SUBSCRIBE.
        return len([c for c in seen[before:] if not c.startswith("UNSUBSCRIBE")])

    short = count_during_wait(0.1)
    long = count_during_wait(2.0)
    stop.set()
    raw.get("qm-monitor-stop")
    thread.join(10)
    # SUBSCRIBE and GET: nothing proportional to the wait.
    assert short == long <= 2, seen
    assert any(c.startswith("UNSUBSCRIBE") for c in seen), seen
    store.close()


def test_wait_survives_client_kill_of_its_pubsub_connection(
    redis_url: str, prefix: str, raw: redis.Redis, unique_name: Names
) -> None:
    name = unique_name("kill")
    store = connect(redis_url, global_keyprefix=prefix, client_name=name)
    writer = connect(redis_url, global_keyprefix=prefix)
    task_id = new_id()
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            outcome["meta"] = store.wait(task_id, timeout=20.0)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc

    thread = threading.Thread(target=wait)
    thread.start()
    deadline = time.monotonic() + 5
    while True:
        try:
            victim = _client_of(raw, name, pubsub=True)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the wait never subscribed"
            time.sleep(0.02)
    raw.execute_command("CLIENT", "KILL", "ID", victim["id"])  # our own connection only
    writer.mark_success(task_id, "after the kill")
    thread.join(20)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["meta"].result == "after the kill"
    listener = store._listener
    assert listener is not None
    assert listener.reconnects >= 1
    # Pushes arrive again on the new connection.
    second = new_id()
    threading.Timer(0.3, writer.mark_success, (second, 2)).start()
    assert store.wait(second, timeout=10.0).result == 2
    store.close()
    writer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def private_redis(
    tmp_path: Path,
) -> Iterator[tuple[int, Callable[[], None], Callable[[], None]]]:
    """A redis-server of our own on a free port, with stop() and start()."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop() -> None:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)

    start()
    yield port, stop, start
    stop()


def test_wait_resubscribes_after_the_server_restarts(
    private_redis: tuple[int, Callable[[], None], Callable[[], None]],
) -> None:
    port, stop, start = private_redis
    url = f"redis://127.0.0.1:{port}/0"
    store = connect(url, max_retries=8, retry_backoff_max=0.5)
    task_id = new_id()
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            outcome["meta"] = store.wait(task_id, timeout=30.0)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.5)
    stop()
    time.sleep(0.3)
    start()
    with connect(url) as writer:
        writer.mark_success(task_id, "after restart")
    thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["meta"].result == "after restart"
    store.close()


def test_get_and_set_retry_a_dropped_connection(
    redis_url: str, prefix: str, raw: redis.Redis, unique_name: Names
) -> None:
    name = unique_name("drop")
    store = connect(redis_url, global_keyprefix=prefix, client_name=name)
    task_id = new_id()
    store.mark_success(task_id, 1)
    raw.execute_command(
        "CLIENT", "KILL", "ID", _client_of(raw, name, pubsub=False)["id"]
    )
    assert store.get(task_id).result == 1
    raw.execute_command(
        "CLIENT", "KILL", "ID", _client_of(raw, name, pubsub=False)["id"]
    )
    assert store.mark_success(new_id(), 2) is True
    store.close()


def test_an_unreachable_server_raises_after_bounded_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{_free_port()}/0"
    store = connect(
        url, max_retries=3, retry_backoff_max=0.2, socket_connect_timeout=1.0
    )
    started = time.monotonic()
    for call in (
        lambda: store.get("t"),
        lambda: store.mark_success("t", 1),
        lambda: store.wait("t", timeout=5),
    ):
        with pytest.raises(ResultStoreConnectionError) as caught:
            call()
        message = str(caught.value)
        assert "redis result store at redis://:***@127.0.0.1" in message
        assert "hunter2" not in message
    assert time.monotonic() - started < 20
    assert "hunter2" not in caplog.text
    assert "retry 3/3" in caplog.text
    assert "hunter2" not in repr(store)
    store.close()


def test_one_pubsub_connection_serves_every_wait_of_the_process(
    redis_url: str, prefix: str, raw: redis.Redis, unique_name: Names
) -> None:
    name = unique_name("shared")
    stores = [
        connect(redis_url, global_keyprefix=prefix, client_name=name) for _ in range(2)
    ]
    ids = [new_id() for _ in range(6)]
    results: dict[str, Any] = {}

    def wait(store: Any, task_id: str) -> None:
        results[task_id] = store.wait(task_id, timeout=20.0).result

    threads = [
        threading.Thread(target=wait, args=(stores[n % 2], task_id))
        for n, task_id in enumerate(ids)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    pubsub_clients = [
        c
        for c in raw.client_list()
        if c.get("name") == name and int(c.get("sub", 0)) > 0
    ]
    assert len(pubsub_clients) == 1
    assert int(pubsub_clients[0]["sub"]) == 6
    for task_id in ids:
        stores[0].mark_success(task_id, task_id)
    for thread in threads:
        thread.join(20)
    assert results == {task_id: task_id for task_id in ids}
    for store in stores:
        store.close()


@pytest.mark.sentinel
def test_sentinel_urls_find_the_master(
    redis_sentinel_url: str, redis_sentinel_master: str, unique_name: Names
) -> None:
    prefix = unique_name("rs") + ":"
    store = connect(
        redis_sentinel_url, master_name=redis_sentinel_master, global_keyprefix=prefix
    )
    task_id = new_id()
    threading.Timer(0.2, store.mark_success, (task_id, "via sentinel")).start()
    assert store.wait(task_id, timeout=10.0).result == "via sentinel"
    store.forget(task_id)
    kombu_form = redis_sentinel_url.replace(",", ";sentinel://")
    with connect(
        f"{kombu_form}?master_name={redis_sentinel_master}", global_keyprefix=prefix
    ) as other:
        assert other.get(task_id).state == states.PENDING
    store.close()


def test_a_sentinel_url_without_master_name_is_refused() -> None:
    from resultstores import InvalidURLError

    with pytest.raises(InvalidURLError, match="master_name"):
        connect("sentinel://127.0.0.1:26379")
