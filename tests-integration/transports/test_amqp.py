"""The AMQP transport against RabbitMQ: conformance, reconnects, failover, SIGKILL.

The shared RabbitMQ on 5672 is never restarted: tests use unique queue names
and close only their own connections (found by the unique token each
transport puts in its ``connection_name`` client property). Tests that stop
a broker start a private RabbitMQ node of their own (``_rabbit_node``).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from transports import Message, Transport, TransportError, connect
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


def test_deliveries_of_every_size_arrive_whole(
    amqp_url: str, unique_name: Names
) -> None:
    """Bodies spanning many frames and socket reads, and empty ones, with headers.

    The consumer splits and decodes frames itself; a body larger than its
    64 KiB reads and RabbitMQ's frame size comes in many pieces.
    """
    queue = unique_name("amqp_sizes")
    sizes = [0, 1, 65_535, 131_064, 131_073, 1_048_579, 8 * 1_048_576 + 7]
    headers = {"n": 1, "text": "n\u00e9e", "list": [1, "two", None], "map": {"a": 1.5}}
    with connect(amqp_url) as transport:
        transport.declare_queue(queue)
        try:
            transport.publish_many(
                Message(
                    queue,
                    bytes([size % 251]) * size,
                    headers={**headers, "size": size},
                    properties={"content_type": "application/x-test", "priority": 3},
                )
                for size in sizes
            )
            with transport.consumer([queue], prefetch=len(sizes)) as consumer:
                got = collect(consumer, len(sizes), timeout=30.0)
                transport.ack_many(got)
            assert [len(d.body) for d in got] == sizes
            for delivery, size in zip(got, sizes, strict=True):
                assert delivery.body == bytes([size % 251]) * size
                assert delivery.headers == {**headers, "size": size}
                assert delivery.properties["content_type"] == "application/x-test"
                assert delivery.properties["priority"] == 3
            assert transport.size(queue) == 0
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


# -- delay levels ----------------------------------------------------------------------


@pytest.fixture
def private_levels(
    amqp_url: str, unique_name: Names
) -> Iterator[tuple[Transport, str, str]]:
    """A transport with delay levels of its own, a queue and the prefix."""
    prefix = unique_name("delay") + "."
    queue = unique_name("amqp_delay")
    with connect(amqp_url, delay_prefix=prefix) as transport:
        transport.declare_queue(queue)
        try:
            yield transport, queue, prefix
        finally:
            transport.delete_delay_levels()  # type: ignore[attr-defined]
            transport.delete_queue(queue)


def test_a_delay_prefix_gives_private_levels_that_can_be_deleted(
    private_levels: tuple[Transport, str, str], rabbitmqctl: str
) -> None:
    transport, queue, prefix = private_levels
    transport.publish(queue, b"soon", delay=1.0)
    transport.publish_many([Message(queue, b"late", delay=3600.0)] * 3)
    with transport.consumer([queue], prefetch=5) as consumer:
        (soon,) = collect(consumer, 1, timeout=6.0)
        assert soon.body == b"soon"
        assert (soon.exchange, soon.routing_key) == ("", queue)
        soon.ack()
    listed = _ctl("list_queues", "name", "messages").splitlines()
    mine = dict(line.split("\t") for line in listed if line.startswith(prefix))
    assert len(mine) == 28
    assert mine[f"{prefix}11"] == "3"  # 3600 s enters at 2048 s
    assert transport.delete_delay_levels() == 3  # type: ignore[attr-defined]
    listed = _ctl("list_queues", "name").splitlines()
    assert not any(line.startswith(prefix) for line in listed)
    exchanges = _ctl("list_exchanges", "name").splitlines()
    assert not any(line.startswith(prefix) for line in exchanges)
    # Publishing a delay again declares the levels again.
    transport.publish(queue, b"again", delay=1.0)
    with transport.consumer([queue], prefetch=5) as consumer:
        (again,) = collect(consumer, 1, timeout=6.0)
        again.ack()


def test_levels_declared_otherwise_are_a_clear_error(
    private_levels: tuple[Transport, str, str],
) -> None:
    transport, queue, prefix = private_levels
    transport.declare_queue(f"{prefix}3")  # a plain queue under a level's name
    with pytest.raises(TransportError, match="delete them or choose another"):
        transport.publish(queue, b"x", delay=8.0)
    transport.publish(queue, b"plain")  # the channel was reopened
    assert transport.size(queue) == 1


def test_a_level_busy_with_a_burst_does_not_hold_up_a_new_publisher(
    amqp_url: str, private_levels: tuple[Transport, str, str]
) -> None:
    # queue.declare-ok carries a message count that RabbitMQ asks the queue
    # for: a level dead-lettering a burst answers only when done (12 s seen
    # with 50,000 messages); the levels are declared nowait.
    transport, queue, prefix = private_levels
    started = time.monotonic()
    for _ in range(10):
        transport.publish_many([Message(queue, b"x" * 500, delay=20.0)] * 5000)
    took: list[float] = []
    while time.monotonic() < started + 21.0:
        time.sleep(0.1)
    while len(took) < 4 and transport.size(queue) < 50_000:
        with connect(amqp_url, delay_prefix=prefix) as second:
            begun = time.monotonic()
            second.publish(queue, b"probe", delay=1.0)
            took.append(time.monotonic() - begun)
        time.sleep(0.5)
    assert took, "the burst was over before a publisher came"
    assert max(took) < 1.5, f"a first delayed publish waited {max(took):.1f} s"


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


# -- streaming publisher confirms ----------------------------------------------------


def _ids(transport: Transport, queue: str, timeout: float = 30.0) -> list[int]:
    """Consume and ack every message of *queue*; return their bodies as ints."""
    seen: list[int] = []
    want = transport.size(queue)  # settles the confirms first
    with transport.consumer([queue], prefetch=500) as consumer:
        deadline = time.monotonic() + timeout
        while len(seen) < want and time.monotonic() < deadline:
            for delivery in consumer.fetch(timeout=1.0):
                seen.append(int(delivery.body))
                delivery.ack()
    return seen


def test_streamed_messages_a_cut_connection_left_unconfirmed_are_sent_again(
    amqp_url: str, unique_name: Names, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="transports")
    queue = unique_name("amqp_stream_cut")
    # heartbeat=0: no thread reads confirms behind the test's back.
    with connect(amqp_url, heartbeat=0, retry_backoff_max=0.5) as transport:
        transport.declare_queue(queue)
        try:
            transport.publish_many(Message(queue, b"%d" % n) for n in range(3000))
            unconfirmed = transport.unconfirmed  # type: ignore[attr-defined]
            assert unconfirmed > 0  # publish returned before RabbitMQ confirmed
            # Cut the connection under the transport, as a network failure
            # would: the confirms on their way never arrive.
            link = transport._link  # type: ignore[attr-defined]
            link.connection.sock.shutdown(socket.SHUT_RDWR)
            transport.flush()  # finds the connection dead, publishes them again
            assert transport.unconfirmed == 0  # type: ignore[attr-defined]
            assert f"publishing {unconfirmed} message(s) again" in caplog.text
            seen = _ids(transport, queue)
            assert sorted(set(seen)) == list(range(3000))  # none lost
            assert len(seen) <= 3000 + unconfirmed  # duplicates only of those
        finally:
            transport.delete_queue(queue)


def test_streaming_into_a_connection_rabbitmq_closed_loses_nothing(
    amqp_url: str, unique_name: Names, rabbitmqctl: str
) -> None:
    queue = unique_name("amqp_stream_closed")
    with connect(amqp_url, heartbeat=0, retry_backoff_max=0.5) as transport:
        transport.declare_queue(queue)
        try:
            assert close_our_connections(transport, "streaming test") == 1
            # Unnoticed (no heartbeats): the batch goes to the closed
            # connection, is kept, and is sent again on a new one.
            transport.publish_many(Message(queue, b"%d" % n) for n in range(3000))
            transport.flush()
            assert sorted(_ids(transport, queue)) == list(range(3000))  # once each
        finally:
            transport.delete_queue(queue)


@pytest.mark.parametrize("mode", ["stream", "true"])
def test_close_waits_for_the_confirms_and_true_waits_at_every_publish(
    amqp_url: str, unique_name: Names, mode: str
) -> None:
    queue = unique_name("amqp_stream_close")
    transport = connect(amqp_url, heartbeat=0, confirm_publish=mode)
    try:
        transport.declare_queue(queue)
        transport.publish_many(Message(queue, b"%d" % n) for n in range(2000))
        left = transport.unconfirmed  # type: ignore[attr-defined]
        assert (left > 0) if mode == "stream" else (left == 0)
        transport.publish(queue, b"2000")
    finally:
        transport.close()
    assert transport.unconfirmed == 0  # type: ignore[attr-defined]
    with connect(amqp_url) as other:
        try:
            assert sorted(_ids(other, queue)) == list(range(2001))
        finally:
            other.delete_queue(queue)


def test_flush_raises_for_messages_rabbitmq_refused(
    amqp_url: str, unique_name: Names, caplog: pytest.LogCaptureFixture
) -> None:
    import amqp

    queue = unique_name("amqp_stream_refused")
    with connect(amqp_url, heartbeat=0) as transport:
        link = transport._link  # type: ignore[attr-defined]
        # A full queue that refuses publishes: RabbitMQ nacks what overflows.
        link.channel.queue_declare(
            queue, durable=True, auto_delete=False,
            arguments={"x-max-length": 5, "x-overflow": "reject-publish"},
        )  # fmt: skip
        try:
            transport.publish_many(Message(queue, b"%d" % n) for n in range(8))
            with pytest.raises(TransportError, match="refused 3 published message"):
                transport.flush()
            transport.flush()  # reported once
            assert "refused" in caplog.text
            assert transport.size(queue) == 5
        finally:
            transport.delete_queue(queue)
    assert amqp  # py-amqp is the driver under test


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
