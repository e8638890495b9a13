"""The machinery every transport shares, shown on memory://."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from transports import (
    Capabilities,
    Delivery,
    Message,
    Outcome,
    RetryPolicy,
    Transport,
    TransportClosedError,
    TransportConnectionError,
    connect,
)
from transports._memory import MemoryConsumer, MemoryTransport
from transports.base import Consumer
from transports.testing import collect


class _IOThreadConsumer(MemoryConsumer):
    pass


class _IOThreadTransport(MemoryTransport):
    """A transport whose client is not thread-safe, like py-amqp."""

    settle_in_io_thread = True
    consumer_class = _IOThreadConsumer

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.settled_on: list[str] = []

    def _settle(
        self, consumer: Consumer, deliveries: list[Delivery], outcome: Outcome
    ) -> None:
        self.settled_on.append(threading.current_thread().name)
        super()._settle(consumer, deliveries, outcome)


def test_acks_from_pool_threads_are_sent_by_the_consuming_thread() -> None:
    transport = _IOThreadTransport("memory://io")
    transport.declare_queue("q")
    transport.publish_many(Message("q", b"%d" % n) for n in range(4))
    consumer = transport.consumer(["q"], prefetch=4)
    got = collect(consumer, 4)
    workers = [
        threading.Thread(target=d.ack, name=f"pool-{n}") for n, d in enumerate(got)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert transport.settled_on == []  # handed over, not sent from the pool threads
    assert consumer.fetch(timeout=0.1) == []  # the consuming thread sends them
    assert set(transport.settled_on) == {threading.current_thread().name}
    assert transport.size("q") == 0
    assert consumer.unacked == 0
    transport.close()


def test_acks_of_a_replaced_connection_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = connect("memory://gen", lease=0.3, renew_interval=None)
    transport.declare_queue("q")
    transport.publish("q", b"x")
    consumer = transport.consumer(["q"])
    (old,) = collect(consumer, 1)
    assert consumer._connection_lost() == 1
    assert consumer.unacked == 0
    caplog.set_level("DEBUG")
    old.ack()
    assert "dropping ack" in caplog.text
    (again,) = collect(consumer, 1, timeout=3)  # the broker delivers it again
    assert again.redelivered
    again.ack()
    transport.close()


def test_a_full_prefetch_window_waits_for_an_ack_from_another_thread() -> None:
    transport = connect("memory://window")
    transport.declare_queue("q")
    transport.publish_many(Message("q", b"%d" % n) for n in range(3))
    consumer = transport.consumer(["q"], prefetch=2)
    first = collect(consumer, 2)
    threading.Timer(0.2, first[0].ack).start()
    started = time.monotonic()
    (third,) = consumer.fetch(timeout=5)
    assert 0.15 < time.monotonic() - started < 2
    assert third.body == b"2"
    transport.close()


def test_a_consume_loop_left_early_returns_its_deliveries() -> None:
    transport = connect("memory://early")
    transport.declare_queue("q")
    transport.publish_many(Message("q", b"%d" % n) for n in range(5))
    stream = transport.consume(["q"], prefetch=5, timeout=1.0)
    first = next(stream)
    first.ack()
    stream.close()
    assert transport.size("q") == 4
    transport.close()


def test_the_lease_keeper_renews_from_its_own_thread() -> None:
    transport = connect("memory://keeper", lease=0.4, renew_interval=0.1)
    transport.declare_queue("q")
    transport.publish("q", b"x")
    consumer = transport.consumer(["q"])
    (delivery,) = collect(consumer, 1)
    time.sleep(0.5)
    assert transport._keeper is not None
    assert transport._keeper._running
    assert transport._keeper.renewals >= 3
    assert transport.size("q") == 0  # renewed past its 0.4 s lease
    delivery.ack()
    transport.close()
    time.sleep(0.7)
    assert not transport._keeper._running  # stopped with the transport


def test_capabilities_are_frozen_and_listed() -> None:
    caps = MemoryTransport.capabilities
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.fanout = False  # type: ignore[misc]
    assert {f.name for f in dataclasses.fields(Capabilities)} >= {
        "priority_levels", "delayed_delivery", "max_delay", "fanout", "topic",
        "dead_lettering", "leases", "publisher_confirms", "message_ttl",
    }  # fmt: skip


def test_quorum_is_refused_where_the_broker_has_none() -> None:
    transport: Transport = connect("memory://")
    with pytest.raises(ValueError, match="quorum queues are a RabbitMQ feature"):
        transport.declare_queue("q", quorum=True)
    with pytest.raises(ValueError, match="its own dead-letter target"):
        transport.declare_queue("q", dead_letter="q")
    with pytest.raises(TypeError, match=r"publish_many takes transports\.Message"):
        transport.publish_many([("q", b"x")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="expiration"):
        transport.publish("q", b"x", properties={"expiration": "soon"})
    transport.close()


def test_subscriptions_use_private_queues_removed_on_close() -> None:
    transport = connect("memory://subs")
    transport.declare_exchange("ev", "fanout")
    consumer = transport.consumer(subscriptions=["ev"])
    (private,) = consumer.queues
    assert private.startswith("ev.sub.")
    transport.publish("", b"hello", exchange="ev")
    (delivery,) = collect(consumer, 1)
    delivery.ack()
    consumer.unsubscribe("ev")
    assert consumer.queues == ()
    transport.publish("", b"nobody", exchange="ev", mandatory=False)
    assert private not in transport._broker.queues
    consumer.close()
    transport.close()


def test_deliveries_repr_and_settled_state() -> None:
    transport = connect("memory://repr")
    transport.declare_queue("q")
    transport.publish("q", b"x")
    consumer = transport.consumer(["q"])
    (delivery,) = collect(consumer, 1)
    assert "unsettled" in repr(delivery)
    assert delivery.settled is None
    delivery.reject(requeue=True)
    assert delivery.settled == "requeue"
    assert "memory://repr" in repr(consumer)
    with pytest.raises(ValueError, match="seconds"):
        delivery.extend(0)
    transport.close()


GEVENT_PROBE = """
import sys, time
from gevent import monkey
monkey.patch_all()
from transports import _native, connect
from transports.testing import collect

transport = connect(sys.argv[1], lease=1.0, renew_interval=0.25)
transport.declare_queue("q")
transport.publish("q", b"x")
consumer = transport.consumer(["q"])
(delivery,) = collect(consumer, 1)
end = time.monotonic() + 2.5
while time.monotonic() < end:  # a task computing without ever yielding to gevent
    pass
print(_native.patched(), transport._keeper.renewals, transport.size("q"))
delivery.ack()
transport.close()
"""


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_leases_are_renewed_under_gevent_while_a_task_hogs_the_cpu(
    tmp_path: Path, scheme: str
) -> None:
    pytest.importorskip("gevent")
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path / 'b.db'}"
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_PROBE, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    kind, renewals, ready = result.stdout.split()
    assert kind == "gevent"
    assert int(renewals) >= 5  # about one per 0.25 s, although no greenlet ran
    assert ready == "0"  # the message never went back to the queue


EVENTLET_PROBE = """
import time, warnings
warnings.simplefilter("ignore")
import eventlet
eventlet.monkey_patch()
from transports import _native

cond, event, lock = _native.condition(), _native.event(), _native.rlock()
woken = []

def waiter():
    with cond:
        woken.append(cond.wait(5.0))

def native():  # a real OS thread: wakes green threads, takes the shared lock
    _native.sleep(0.2)
    with cond:
        cond.notify_all()
    with lock:
        _native.sleep(0.1)
    event.set()

green = [eventlet.spawn(waiter) for _ in range(2)]
_native.start_thread(native)
ticks = 0
started = time.monotonic()
while not event.is_set():  # the hub keeps running: green threads are not blocked
    eventlet.sleep(0.01)
    ticks += 1
for thread in green:
    thread.wait()
with lock:
    pass
took = round(time.monotonic() - started, 1)
print(_native.patched(), woken, event.wait(1), took, ticks > 10)
"""


def test_native_threads_wake_green_threads_under_eventlet() -> None:
    # Not importorskip: importing eventlet here would make every later fork warn.
    if importlib.util.find_spec("eventlet") is None:
        pytest.skip("eventlet is not installed")
    result = subprocess.run(
        [sys.executable, "-c", EVENTLET_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Both waiters were notified (not timed out) in about 0.3 s, not 5 s.
    assert result.stdout.split() == [
        "eventlet",
        "[True,",
        "True]",
        "True",
        "0.3",
        "True",
    ]
    assert "Cannot switch" not in result.stderr


class _FlakyTransport(MemoryTransport):
    """Loses the connection on the first *failures* publishes."""

    connection_errors = (ConnectionError,)

    def __init__(self, url: str, failures: int, **options: Any) -> None:
        super().__init__(url, **options)
        self.failures = failures
        self.attempts = 0

    def _publish(self, messages: Any, mandatory: bool) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError("connection reset by peer")
        super()._publish(messages, mandatory)


def test_a_per_call_retry_policy_replaces_the_transport_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("transports.base.time.sleep", pauses.append)
    policy = RetryPolicy(max_retries=3, interval_start=0.5, interval_step=0.25,
                         interval_max=0.9)  # fmt: skip
    with _FlakyTransport("memory://", failures=3, max_retries=0) as transport:
        transport.declare_queue("q")
        transport.publish("q", b"x", retry=policy)
        assert transport.attempts == 4
        assert pauses == [0.5, 0.75, 0.9]
        assert transport.size("q") == 1
        transport.failures, transport.attempts = 10, 0
        with pytest.raises(TransportConnectionError, match="failed 1 time"):
            transport.publish_many([Message("q", b"y")], retry=RetryPolicy(0))
        assert transport.attempts == 1


def test_retry_policy_values_are_checked() -> None:
    with pytest.raises(ValueError, match="max_retries must be an int"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="interval_step must be a number"):
        RetryPolicy(interval_step=float("nan"))
    assert RetryPolicy(None).max_retries is None
    assert RetryPolicy().pause(5) == 0.2


def test_flush_returns_at_once_where_publish_waits_and_checks_its_timeout() -> None:
    transport = connect("memory://flush")
    transport.publish("q", b"x")
    assert transport.unconfirmed == 0
    transport.flush()
    transport.flush(timeout=0.5)
    with pytest.raises(ValueError, match="flush timeout must be a finite"):
        transport.flush(timeout=-1)
    with pytest.raises(TypeError, match="flush timeout must be a number"):
        transport.flush(timeout="soon")  # type: ignore[arg-type]
    transport.close()
    with pytest.raises(TransportClosedError):
        transport.flush()
