"""The app, tasks and the worker in one process, on memory:// (fast unit tests).

The real brokers, worker processes and every pool are covered end to end in
tests-integration/queue_meta/.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from queue_meta import (
    App,
    ConfigurationError,
    Ignore,
    MaxRetriesExceededError,
    Task,
    TimeoutError,
    signals,
)
from queue_meta.canvas import Signature, signature
from queue_meta.errors import Retry
from queue_meta.testing import memory_app, start_worker
from queue_meta.worker import expand_hostname
from queue_meta.worker._ratelimit import TokenBucket, parse_rate


def test_the_smallest_app_runs_a_task(queue_app: App) -> None:
    @queue_app.task
    def hello() -> str:
        return "hello world"

    with start_worker(queue_app):
        assert hello.delay().get(timeout=10) == "hello world"


def test_task_names_follow_the_module(queue_app: App) -> None:
    @queue_app.task
    def add(x: int, y: int) -> int:
        return x + y

    @queue_app.task(name="custom.name")
    def other() -> None:
        return None

    assert add.name == f"{__name__}.add"
    assert other.name == "custom.name"
    assert queue_app.tasks["custom.name"] is other
    assert add(2, 3) == 5  # calling runs here and now


def test_arguments_are_checked_before_anything_is_sent(queue_app: App) -> None:
    @queue_app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError, match="missing a required argument: 'y'"):
        add.delay(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="too many positional arguments"):
        add.apply_async((1, 2, 3))
    assert queue_app.transport.size("celery") == 0


def test_an_unknown_call_option_names_the_closest(queue_app: App) -> None:
    @queue_app.task
    def noop() -> None:
        return None

    with pytest.raises(TypeError, match="did you mean 'countdown'"):
        noop.apply_async(countdwn=3)


def test_an_unknown_task_option_is_refused(queue_app: App) -> None:
    with pytest.raises(TypeError, match="did you mean 'max_retries'"):

        @queue_app.task(max_retrys=3)
        def noop() -> None:
            return None


def test_a_misspelled_setting_names_the_closest() -> None:
    with pytest.raises(ConfigurationError, match="task_acks_late"):
        App("typo", broker="memory://typo", task_ack_late=True)


def test_failures_come_back_as_the_same_exception(queue_app: App) -> None:
    @queue_app.task
    def fail() -> None:
        raise KeyError("missing")

    with start_worker(queue_app):
        result = fail.delay()
        with pytest.raises(KeyError, match="missing"):
            result.get(timeout=10)
        assert result.state == "FAILURE"
        assert result.failed()
        assert "KeyError" in (result.traceback or "")
        assert isinstance(result.get(timeout=1, propagate=False), KeyError)


def test_retry_keeps_the_id_and_counts(queue_app: App) -> None:
    seen: list[tuple[str, int]] = []

    @queue_app.task(bind=True, max_retries=3)
    def flaky(self: Task[Any, Any]) -> int:
        seen.append((self.request.id, self.request.retries))
        if self.request.retries < 2:
            raise self.retry(countdown=0.05)
        return self.request.retries

    with start_worker(queue_app):
        result = flaky.delay()
        assert result.get(timeout=10) == 2
    assert [r for _, r in seen] == [0, 1, 2]
    assert {i for i, _ in seen} == {result.id}


def test_max_retries_fails_with_the_original_exception(queue_app: App) -> None:
    @queue_app.task(autoretry_for=(ConnectionError,), max_retries=2, retry_backoff=0.01)
    def down() -> None:
        raise ConnectionError("still down")

    with start_worker(queue_app), pytest.raises(ConnectionError, match="still down"):
        down.delay().get(timeout=10)


def test_backoff_grows_and_is_capped(queue_app: App) -> None:
    @queue_app.task(retry_backoff=2, retry_backoff_max=10, retry_jitter=False)
    def noop() -> None:
        return None

    assert [noop.backoff_countdown(n) for n in range(5)] == [2, 4, 8, 10, 10]


def test_countdown_runs_later(queue_app: App) -> None:
    @queue_app.task
    def stamp() -> float:
        return time.time()

    with start_worker(queue_app):
        sent = time.time()
        result = stamp.apply_async(countdown=0.5)
        assert result.get(timeout=10) - sent >= 0.45


def test_an_expired_task_is_not_run(queue_app: App) -> None:
    ran = threading.Event()

    @queue_app.task
    def late() -> None:
        ran.set()

    result = late.apply_async(expires=0.01)
    time.sleep(0.05)
    with start_worker(queue_app):
        result_state = _wait_state(result, "REVOKED")
    assert result_state == "REVOKED"
    assert not ran.is_set()


def test_revoke_stops_a_scheduled_task(queue_app: App) -> None:
    ran = threading.Event()

    @queue_app.task
    def later() -> None:
        ran.set()

    with start_worker(queue_app):
        result = later.apply_async(countdown=0.6)
        time.sleep(0.2)
        result.revoke()
        assert _wait_state(result, "REVOKED") == "REVOKED"
    assert not ran.is_set()


def test_custom_states_report_progress(queue_app: App) -> None:
    go = threading.Event()

    @queue_app.task(bind=True)
    def long(self: Task[Any, Any]) -> str:
        self.update_state(state="PROGRESS", meta={"done": 1, "total": 2})
        go.wait(5)
        return "finished"

    with start_worker(queue_app):
        result = long.delay()
        assert _wait_state(result, "PROGRESS") == "PROGRESS"
        assert result.info == {"done": 1, "total": 2}
        go.set()
        assert result.get(timeout=10) == "finished"


def test_ignore_result_stores_nothing(queue_app: App) -> None:
    done = threading.Event()

    @queue_app.task(ignore_result=True)
    def quiet() -> int:
        done.set()
        return 1

    with start_worker(queue_app):
        result = quiet.delay()
        assert done.wait(5)
        time.sleep(0.1)
    assert result.state == "PENDING"
    assert not result.exists()


def test_get_times_out_with_queue_meta_timeout(queue_app: App) -> None:
    @queue_app.task
    def never() -> None:
        return None

    result = never.delay()
    with pytest.raises(TimeoutError, match="did not finish within"):
        result.get(timeout=0.1)


def test_signals_fire_and_a_failing_receiver_is_only_logged(
    queue_app: App, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[str] = []

    @queue_app.task
    def add(x: int, y: int) -> int:
        return x + y

    def on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
        got.append(f"success {result}")

    def broken(**_: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.task_success.connect(on_success)
    signals.task_prerun.connect(broken)
    try:
        with start_worker(queue_app):
            assert add.delay(2, 2).get(timeout=10) == 4
    finally:
        signals.task_success.disconnect(on_success)
        signals.task_prerun.disconnect(broken)
    assert got == ["success 4"]
    assert "receiver bug" in caplog.text


def test_task_hooks_run_when_overridden_in_a_base_class(queue_app: App) -> None:
    calls: list[str] = []

    class Hooked(Task):  # type: ignore[type-arg]
        def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(f"before {args}")

        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(f"success {retval}")

        def on_failure(self, exc: BaseException, *rest: Any) -> None:
            calls.append(f"failure {exc}")

        def after_return(self, status: str, retval: Any, *rest: Any) -> None:
            calls.append(f"return {status}")

    @queue_app.task(base=Hooked)
    def half(x: int) -> float:
        return 1 / x

    @queue_app.task
    def plain() -> int:  # Task's own hooks: nothing to call
        return 1

    with start_worker(queue_app):
        assert half.delay(2).get(timeout=10) == 0.5
        with pytest.raises(ZeroDivisionError):
            half.delay(0).get(timeout=10)
        assert plain.delay().get(timeout=10) == 1
    assert calls == [
        "before [2]", "success 0.5", "return SUCCESS",
        "before [0]", "failure division by zero", "return FAILURE",
    ]  # fmt: skip


def test_eager_mode_runs_in_the_calling_thread(queue_eager: App) -> None:
    @queue_eager.task(bind=True, max_retries=2)
    def flaky(self: Task[Any, Any]) -> int:
        if self.request.retries < 2:
            raise self.retry(countdown=100)
        return threading.get_ident()

    assert flaky.delay().get() == threading.get_ident()


def test_apply_runs_now_and_reports_failures(queue_app: App) -> None:
    @queue_app.task
    def fail() -> None:
        raise ValueError("no")

    queue_app.conf.task_eager_propagates = False
    result = fail.apply()
    assert result.state == "FAILURE"
    assert isinstance(result.result, ValueError)

    @queue_app.task(bind=True, max_retries=0)
    def once(self: Task[Any, Any]) -> None:
        raise self.retry()

    queue_app.conf.task_eager_propagates = True
    with pytest.raises(MaxRetriesExceededError):
        once.apply()


def test_ignore_and_routes(queue_app: App) -> None:
    @queue_app.task
    def skipped() -> None:
        raise Ignore()

    queue_app.conf.task_routes = {"*.routed": {"queue": "special"}}

    @queue_app.task
    def routed() -> str:
        return "here"

    routed.delay()
    assert queue_app.transport.size("special") == 1
    with start_worker(queue_app, queues=["special", "celery"]):
        result = skipped.delay()
        time.sleep(0.3)
        assert result.state == "PENDING"


def test_links_send_callbacks_with_the_result(queue_app: App) -> None:
    got: list[int] = []
    done = threading.Event()

    @queue_app.task
    def add(x: int, y: int) -> int:
        return x + y

    @queue_app.task
    def record(value: int) -> None:
        got.append(value)
        done.set()

    with start_worker(queue_app):
        add.apply_async((1, 2), link=record.s())
        assert done.wait(10)
    assert got == [3]


def test_signatures_use_celerys_dict_form(queue_app: App) -> None:
    @queue_app.task
    def add(x: int, y: int) -> int:
        return x + y

    sig = add.s(1)
    assert dict(sig) == {
        "task": add.name, "args": [1], "kwargs": {}, "options": {},
        "subtask_type": None, "immutable": False,
    }  # fmt: skip
    clone = sig.clone((5,))
    assert clone.args == [5, 1]
    assert add.si(1).clone((5,)).args == [1]
    assert isinstance(signature(dict(sig)), Signature)
    assert repr(add.si(1, y=2)) == f"%{add.name}(1, y=2)"


def test_send_many_publishes_a_batch(queue_app: App) -> None:
    @queue_app.task
    def add(x: int, y: int) -> int:
        return x + y

    results = queue_app.send_many(add.s(i, i) for i in range(50))
    assert queue_app.transport.size("celery") == 50
    with start_worker(queue_app):
        assert [r.get(timeout=10) for r in results] == [2 * i for i in range(50)]


def test_rate_limits() -> None:
    assert parse_rate("10/s") == 10
    assert parse_rate("60/m") == 1
    assert parse_rate("36/h") == pytest.approx(0.01)
    assert parse_rate(None) is None
    with pytest.raises(ConfigurationError, match="'100/s'"):
        parse_rate("fast")
    bucket = TokenBucket(1000.0)
    assert bucket.take()
    assert bucket.wait_time() <= 0.002


def test_a_rate_limit_delays_only_its_task(queue_app: App) -> None:
    @queue_app.task(rate_limit="10/s")
    def slow() -> float:
        return time.monotonic()

    @queue_app.task
    def fast() -> float:
        return time.monotonic()

    with start_worker(queue_app, concurrency=4):
        started = time.monotonic()
        limited = [slow.delay() for _ in range(6)]
        quick = fast.delay()
        assert quick.get(timeout=10) - started < 0.4
        last = max(r.get(timeout=10) for r in limited)
    assert last - started >= 0.4


def test_hostname_expansion() -> None:
    import socket

    assert expand_hostname("w1@%h") == f"w1@{socket.gethostname()}"


def test_retry_outside_a_task_is_a_clear_error(queue_app: App) -> None:
    @queue_app.task(bind=True)
    def task(self: Task[Any, Any]) -> None:
        raise self.retry()

    with pytest.raises(RuntimeError, match="outside a running task"):
        task.retry()


def test_retry_exception_pickles() -> None:
    import pickle

    retry = pickle.loads(pickle.dumps(Retry(exc=ValueError("x"), when=5)))
    assert str(retry) == "Retry in 5s: ValueError('x')"


def test_a_second_app_keeps_its_own_tasks() -> None:
    first, second = memory_app(), memory_app()

    @first.task
    def only_first() -> None:
        return None

    assert only_first.name in first.tasks
    assert only_first.name not in second.tasks


def _wait_state(result: Any, state: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = result.state
        if current == state:
            return str(current)
        time.sleep(0.02)
    return str(result.state)


def test_publish_retry_and_retry_policy_reach_the_transport(
    queue_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transports import RetryPolicy

    @queue_app.task
    def add(x: int, y: int) -> int:
        return x + y

    seen: list[RetryPolicy] = []
    real = queue_app.transport.publish

    def publish(*args: Any, retry: RetryPolicy, **kwargs: Any) -> None:
        seen.append(retry)
        real(*args, retry=retry, **kwargs)

    monkeypatch.setattr(queue_app.transport, "publish", publish)
    queue_app.conf.update(task_publish_retry_policy={"max_retries": 7})
    add.delay(1, 2)
    add.apply_async((1, 2), retry=False)
    add.apply_async((1, 2), retry_policy={"interval_start": 1, "interval_max": 3})
    assert seen == [
        RetryPolicy(7, 0, 0.2, 0.2),
        RetryPolicy(0),
        RetryPolicy(7, 1, 0.2, 3),
    ]
    with pytest.raises(ValueError, match="did you mean 'max_retries'"):
        add.apply_async((1, 2), retry_policy={"max_retrys": 1})
    with pytest.raises(ValueError, match="interval_max must be a number"):
        add.apply_async((1, 2), retry_policy={"interval_max": -1})
    assert len(seen) == 3  # nothing was sent for the bad policies


@pytest.mark.parametrize(
    ("broker", "expected"),
    [
        ("redis://h:6379/1", "redis://h:6379/1"),
        ("amqp://guest@h//", "rpc://"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlalchemy+mysql://u@h/db", "mysql://u@h/db"),
        ("memory://", "memory://"),
    ],
)
def test_results_go_to_the_brokers_server_unless_configured(
    broker: str, expected: str
) -> None:
    app = App("defaults", broker=broker)
    assert app.result_backend_url == expected
    app.conf.update(result_backend="redis://other/2")
    assert app.result_backend_url == "redis://other/2"


def test_without_a_broker_results_use_the_embedded_sqlite_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEUE_HOME", str(tmp_path))
    app = App("embedded")
    assert app.result_backend_url == f"sqlite:///{tmp_path / 'embedded' / 'results.db'}"
    assert app.uses_embedded_default
    broker_only = App("sqlite-broker", broker=f"sqlite:///{tmp_path / 'b.db'}")
    assert broker_only.result_backend_url.endswith("sqlite-broker/results.db")
