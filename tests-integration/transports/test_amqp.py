"""The AMQP transport against RabbitMQ: conformance, reconnects, failover, SIGKILL.

The shared RabbitMQ on 5672 is never restarted: tests use unique queue names
and close only their own connections (found by the unique token each
transport puts in its ``connection_name`` client property). Tests that stop
a broker start a private RabbitMQ node of their own (``_rabbit_node``).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from transports import Message, Transport, connect
from transports.testing import TransportConformance, collect, run_sigkill_test

Names = Callable[..., str]


def _helper(name: str) -> ModuleType:
    """Import a helper module beside this file (pytest runs in importlib mode)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).with_name(f"{name}.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


rabbit_node = _helper("_rabbit_node")

RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"


def _ctl(*args: str) -> str:
    done = subprocess.run(
        [RABBITMQCTL, "-q", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def close_our_connections(transport: Transport, reason: str = "test") -> int:
    """Close, through rabbitmqctl, every connection of *transport*; return how many."""
    token = transport.token  # type: ignore[attr-defined]
    pids = [
        line.split("\t", 1)[0]
        for line in _ctl("list_connections", "pid", "client_properties").splitlines()
        if token in line
    ]
    for pid in pids:
        _ctl("close_connection", pid, reason)
    return len(pids)


@pytest.fixture
def rabbitmqctl(amqp_url: str) -> str:
    """The path of rabbitmqctl, or skip when it cannot reach the shared node."""
    try:
        _ctl("status")
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"rabbitmqctl cannot reach the shared RabbitMQ: {exc}")
    return RABBITMQCTL


class TestRabbitMQ(TransportConformance):
    """Classic queues by default (RabbitMQ only flags redeliveries)."""

    @pytest.fixture(autouse=True)
    def _server(self, amqp_url: str) -> None:
        self.url = amqp_url

    def transport_url(self) -> str:
        return self.url


class TestRabbitMQQuorum(TestRabbitMQ):
    """Quorum queues by default: RabbitMQ counts every delivery."""

    def transport_options(self) -> dict[str, Any]:
        return {"queue_type": "quorum"}


# -- threads and heartbeats ------------------------------------------------------------


def test_heartbeats_flow_while_the_consuming_thread_is_busy(
    amqp_url: str, unique_name: Names, rabbitmqctl: str
) -> None:
    """A task holding the consuming thread for 4 heartbeat intervals keeps its link."""
    queue = unique_name("amqp_hb")
    with connect(amqp_url, heartbeat=1) as transport:
        transport.declare_queue(queue)
        try:
            transport.publish(queue, b"long task")
            with transport.consumer([queue]) as consumer:
                (delivery,) = collect(consumer, 1)
                busy_until = time.monotonic() + 4.0
                while time.monotonic() < busy_until:
                    sum(range(1000))  # CPU-bound work in the consuming thread
                delivery.ack()
                assert consumer.fetch(timeout=0.5) == []
                assert consumer._link_generation == 1  # type: ignore[attr-defined]
            transport.publish(queue, b"after")  # the idle producer link lived too
            assert transport.size(queue) == 1
            token = transport.token  # type: ignore[attr-defined]
            listed = _ctl("list_connections", "client_properties", "timeout")
            assert any(token in line and "\t1" in line for line in listed.splitlines())
        finally:
            transport.delete_queue(queue)


def test_many_threads_publish_and_ack_safely(amqp_url: str, unique_name: Names) -> None:
    queue = unique_name("amqp_threads")
    with connect(amqp_url) as transport:
        transport.declare_queue(queue)
        try:

            def produce(first: int) -> None:
                for n in range(first, first + 250):
                    transport.publish(queue, b"%d" % n)

            producers = [
                threading.Thread(target=produce, args=(i * 250,)) for i in range(8)
            ]
            for thread in producers:
                thread.start()
            seen: list[int] = []
            with transport.consumer([queue], prefetch=50) as consumer:
                while len(seen) < 2000:
                    batch = consumer.fetch(timeout=10.0)
                    assert batch, f"stalled after {len(seen)} messages"
                    seen.extend(int(d.body) for d in batch)
                    ackers = [threading.Thread(target=d.ack) for d in batch]
                    for thread in ackers:
                        thread.start()
                    for thread in ackers:
                        thread.join()
            for thread in producers:
                thread.join()
            assert sorted(seen) == list(range(2000))
            assert transport.size(queue) == 0
        finally:
            transport.delete_queue(queue)


# -- reconnects ------------------------------------------------------------------------


def test_producer_and_consumer_survive_close_connection(
    amqp_url: str, unique_name: Names, rabbitmqctl: str
) -> None:
    queue = unique_name("amqp_close")
    with connect(amqp_url, retry_backoff_max=0.5) as transport:
        transport.declare_queue(queue)
        try:
            transport.publish_many(Message(queue, b"%d" % n) for n in range(100))
            seen: list[int] = []
            with transport.consumer([queue], prefetch=20) as consumer:
                first = collect(consumer, 20)
                transport.ack_many(first[:10])
                seen.extend(int(d.body) for d in first[:10])
                held = first[10:]  # unacked when the connections close
                assert close_our_connections(transport, "transports test") == 2
                transport.publish_many(
                    Message(queue, b"%d" % n) for n in range(100, 200)
                )  # reconnects, then publishes with confirms
                for delivery in held:
                    delivery.ack()  # acks of the old connection: dropped
                deadline = time.monotonic() + 30
                while len(set(seen)) < 200 and time.monotonic() < deadline:
                    for delivery in consumer.fetch(timeout=1.0):
                        seen.append(int(delivery.body))
                        delivery.ack()
            assert sorted(set(seen)) == list(range(200))
            assert len(seen) == 200  # the held ones came back once, the rest once
            assert transport.size(queue) == 0
        finally:
            transport.delete_queue(queue)


def test_failover_skips_a_dead_first_url(amqp_url: str, unique_name: Names) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{rabbit_node.free_port()}//"
    queue = unique_name("amqp_failover")
    with connect(f"{dead};{amqp_url}") as transport:
        transport.declare_queue(queue)
        try:
            transport.publish_many(Message(queue, b"%d" % n) for n in range(50))
            with transport.consumer([queue], prefetch=50) as consumer:
                got = collect(consumer, 50)
                transport.ack_many(got)
            assert sorted(int(d.body) for d in got) == list(range(50))
        finally:
            transport.delete_queue(queue)


@pytest.mark.parametrize(
    ("change", "word"),
    [(("guest:guest@", "guest:wrong-secret@"), "refused user"), (None, "vhost")],
)
def test_a_refused_login_or_vhost_is_a_clear_error_at_once(
    amqp_url: str, unique_name: Names, change: tuple[str, str] | None, word: str
) -> None:
    from transports import TransportConnectionError, TransportError

    if change is None:  # a virtual host that does not exist
        url = amqp_url.rsplit("/", 1)[0] + "/" + unique_name("no_vhost")
    else:
        if change[0] not in amqp_url:
            pytest.skip("AMQP_URL does not log in as guest:guest")
        url = amqp_url.replace(*change)
    started = time.monotonic()
    with pytest.raises(TransportError, match=word) as caught:
        connect(url).publish("anything", b"x")  # connect() logs in
    assert not isinstance(caught.value, TransportConnectionError)
    assert "wrong-secret" not in str(caught.value)
    assert time.monotonic() - started < 5  # not retried


# -- a private node: restart and failover ----------------------------------------------


@pytest.fixture(scope="module")
def private_node() -> Iterator[Any]:
    server = rabbit_node.RABBITMQ_SERVER
    if not Path(server).exists():
        pytest.skip(f"{server} is not installed")
    node = rabbit_node.RabbitNode()
    try:
        node.start()
        yield node
    finally:
        node.cleanup()


def _drain_into(consumer: Any, seen: list[int], want: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(set(seen)) < want and time.monotonic() < deadline:
        for delivery in consumer.fetch(timeout=1.0):
            seen.append(int(delivery.body))
            delivery.ack()


def test_a_broker_restart_loses_nothing_confirmed(private_node: Any) -> None:
    options = {"max_retries": 80, "retry_backoff_max": 0.5, "heartbeat": 5}
    with connect(private_node.url, **options) as transport:
        transport.declare_queue("restart")
        transport.publish_many(Message("restart", b"%d" % n) for n in range(100))
        seen: list[int] = []
        with transport.consumer(["restart"], prefetch=10) as consumer:
            _drain_into(consumer, seen, 30, 10)
            private_node.stop()
            private_node.start()
            transport.publish_many(
                Message("restart", b"%d" % n) for n in range(100, 200)
            )
            _drain_into(consumer, seen, 200, 60)
        assert sorted(set(seen)) == list(range(200))
        assert transport.size("restart") == 0
        transport.delete_queue("restart")


def test_failover_moves_to_the_second_broker(
    private_node: Any, amqp_url: str, unique_name: Names
) -> None:
    queue = unique_name("amqp_moves")
    with connect(amqp_url) as shared:
        shared.declare_queue(queue)
    options = {"max_retries": 40, "retry_backoff_max": 0.5}
    try:
        with connect(f"{private_node.url};{amqp_url}", **options) as transport:
            transport.declare_queue(queue)  # on the private node
            seen: list[int] = []
            with transport.consumer([queue], prefetch=10) as consumer:
                private_node.stop()
                transport.publish_many(Message(queue, b"%d" % n) for n in range(50))
                _drain_into(consumer, seen, 50, 30)
            assert sorted(set(seen)) == list(range(50))
    finally:
        with connect(amqp_url) as shared:
            shared.delete_queue(queue)


# -- SIGKILL ---------------------------------------------------------------------------


def test_amqp_loses_nothing_to_sigkill(amqp_url: str, unique_name: Names) -> None:
    report = run_sigkill_test(amqp_url, queue=unique_name("sigkill"))
    print(f"SIGKILL amqp: {report}")
    assert report.kills >= 100
    assert report.missing == frozenset()
    assert report.ok, str(report)
