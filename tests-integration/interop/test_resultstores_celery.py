"""Celery and resultstores read each other's results on Redis.

Celery is installed only in the ``interop`` nox session's virtualenv. Celery's
``AsyncResult.get()`` reads what our store wrote (it waits on the key's pub/sub
channel as it does for its own workers), and our store reads what Celery's own
Redis backend object wrote; no worker is needed in either direction.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult, GroupResult

from resultstores import RemoteTaskError, connect, states
from resultstores.testing import new_id

pytestmark = [
    pytest.mark.redis,
    # Celery 5.7's Redis backend calls setex(), which redis-py 8 deprecates;
    # remove when Celery's backend stops calling it.
    pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning"),
    # Celery's Redis backend leaves a socket of its own to the garbage collector
    # when several apps come and go in one process (each test makes an app).
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture
def prefix(redis_url: str, unique_name: Callable[..., str]) -> Iterator[str]:
    value = unique_name("interop") + ":"
    yield value
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=value + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def app(redis_url: str, prefix: str) -> Iterator[Celery]:
    app = Celery("interop", set_as_current=False, broker="memory://", backend=redis_url)
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    app.conf.result_extended = True
    yield app
    # Celery keeps its result consumer's pub/sub connection open; close it and
    # the backend's pool so no socket outlives the test.
    backend = app.backend
    consumer = getattr(backend, "result_consumer", None)
    pubsub = getattr(consumer, "_pubsub", None)
    if pubsub is not None:
        pubsub.close()
    backend.client.connection_pool.disconnect()
    app.close()
    gc.collect()  # while this test's warning filter below still applies


@pytest.fixture
def store(redis_url: str, prefix: str) -> Iterator[Any]:
    store = connect(redis_url, global_keyprefix=prefix)
    yield store
    store.close()


def test_celery_reads_our_success(app: Celery, store: Any) -> None:
    task_id = new_id()
    store.mark_success(task_id, {"x": 1, "items": [1, 2.5, "é"]})
    result = AsyncResult(task_id, app=app)
    assert result.get(timeout=10) == {"x": 1, "items": [1, 2.5, "é"]}
    assert result.state == "SUCCESS"
    assert result.date_done is not None


def test_celery_waits_for_our_success_pushed_later(app: Celery, store: Any) -> None:
    import threading

    task_id = new_id()
    threading.Timer(0.5, store.mark_success, (task_id, 42)).start()
    assert AsyncResult(task_id, app=app).get(timeout=10) == 42


def test_celery_rebuilds_our_failure_as_the_same_exception(
    app: Celery, store: Any
) -> None:
    task_id = new_id()
    try:
        raise ValueError("boom")
    except ValueError as exc:
        store.mark_failure(task_id, exc)
    result = AsyncResult(task_id, app=app)
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=10)
    assert result.state == "FAILURE"
    assert isinstance(result.result, ValueError)
    assert "ValueError: boom" in (result.traceback or "")


def test_celery_sees_our_custom_state_and_extended_fields(
    app: Celery, store: Any
) -> None:
    from resultstores import TaskInfo

    task_id = new_id()
    store.set_state(
        task_id,
        "PROGRESS",
        meta={"done": 3},
        info=TaskInfo(name="proj.add", args=[1], kwargs={}),
    )
    result = AsyncResult(task_id, app=app)
    assert (result.state, result.info, result.name, result.args) == (
        "PROGRESS",
        {"done": 3},
        "proj.add",
        [1],
    )


def test_celery_restores_our_saved_group(app: Celery, store: Any) -> None:
    group_id, members = new_id(), [new_id(), new_id()]
    store.save_group(group_id, members)
    restored = GroupResult.restore(group_id, app=app)
    assert restored is not None
    assert [r.id for r in restored.results] == members


def test_we_read_celerys_success_failure_and_state(app: Celery, store: Any) -> None:
    backend = app.backend
    ok, bad, progress, revoked = new_id(), new_id(), new_id(), new_id()
    backend.store_result(ok, {"answer": 42}, states.SUCCESS)
    try:
        raise KeyError("missing")
    except KeyError as exc:
        backend.store_result(
            bad, exc, states.FAILURE, traceback="Traceback: KeyError\n"
        )
    backend.store_result(progress, {"step": 2}, "PROGRESS")
    from celery.exceptions import TaskRevokedError

    backend.store_result(revoked, TaskRevokedError("revoked"), states.REVOKED)
    metas = store.get_many([ok, bad, progress, revoked])
    assert (metas[ok].state, metas[ok].result) == (states.SUCCESS, {"answer": 42})
    assert metas[ok].date_done is not None
    assert metas[bad].state == states.FAILURE
    assert type(metas[bad].result) is KeyError
    assert metas[bad].traceback == "Traceback: KeyError\n"
    assert (metas[progress].state, metas[progress].result) == ("PROGRESS", {"step": 2})
    assert isinstance(metas[revoked].result, RemoteTaskError)
    assert metas[revoked].result.exc_type == "TaskRevokedError"
    assert store.wait(ok, timeout=5).result == {"answer": 42}
    with connect(
        store.url, global_keyprefix=store.global_keyprefix, exception_modules=["celery"]
    ) as trusting:
        assert type(trusting.get(revoked).result) is TaskRevokedError


def test_our_success_is_not_overwritten_by_celery_and_vice_versa(
    app: Celery, store: Any
) -> None:
    ours, theirs = new_id(), new_id()
    store.mark_success(ours, "first")
    app.backend.store_result(ours, "second", states.SUCCESS)
    assert store.get(ours).result == "first"
    app.backend.store_result(theirs, "celery's", states.SUCCESS)
    assert store.mark_success(theirs, "ours") is False
    assert AsyncResult(theirs, app=app).get(timeout=5) == "celery's"


def test_we_read_a_saved_celery_group(app: Celery, store: Any) -> None:
    ids = [new_id(), new_id()]
    group = GroupResult(
        new_id(), [AsyncResult(task_id, app=app) for task_id in ids], app=app
    )
    group.save(backend=app.backend)
    assert store.restore_group(group.id) == ids


def test_celery_chord_keys_complete_with_our_parts(app: Celery, store: Any) -> None:
    """Our chord_part_return writes the .j entries Celery's Redis backend counts."""
    group_id = new_id()
    store.set_chord_size(group_id, 2)
    assert store.chord_part_return(group_id, "a", states.SUCCESS, 1, index=0) is None
    client = app.backend.client
    key = app.backend.get_key_for_group(group_id, ".j")
    entries = [app.backend.decode(member) for member in client.zrange(key, 0, -1)]
    assert entries == [[1, "a", "SUCCESS", 1]]
    assert int(client.get(app.backend.get_key_for_group(group_id, ".s"))) == 2
    done = store.chord_part_return(group_id, "b", states.SUCCESS, 2, index=1)
    assert done is not None
    assert done.values() == [1, 2]
