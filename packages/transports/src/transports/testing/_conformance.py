"""The conformance suite every transport passes: :class:`TransportConformance`."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from transports._registry import connect
from transports.base import Consumer, Delivery, Message, Transport
from transports.errors import (
    DeclarationMismatchError,
    TransportClosedError,
    UnroutableError,
)

__all__ = ["TransportConformance", "collect", "unique_name"]


def unique_name(label: str = "q") -> str:
    """Return a queue or exchange name no other test uses: ``qm_<label>_<hex>``."""
    return f"qm_{label}_{uuid.uuid4().hex[:10]}"


def collect(consumer: Consumer, count: int, timeout: float = 5.0) -> list[Delivery]:
    """Fetch until *count* deliveries arrived or *timeout* passed; return them."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        got.extend(consumer.fetch(count - len(got), timeout=min(remaining, 0.5)))
    return got


def _hold_then_die(url: str, options: dict[str, Any], queue: str, ready: Any) -> None:
    """Child process: receive every message of *queue*, report, then hang unacked."""
    transport = connect(url, **options)
    consumer = transport.consumer([queue], prefetch=10)
    got = collect(consumer, 3, timeout=20.0)
    ready.put(len(got))
    time.sleep(600)


class TransportConformance:
    """The behaviour every transport shares; subclass it as ``Test<Broker>``.

    Implement :meth:`transport_url` (and :meth:`transport_options` for
    options); tests a transport's :class:`~transports.Capabilities` rule
    out are skipped with the reason. Every test uses fresh queue names from
    :meth:`name` and deletes its queues afterwards.
    """

    #: Multiplies every wait of the suite (raise it for slow brokers).
    time_scale: ClassVar[float] = 1.0
    #: Lease options for the tests that let leases run out.
    short_lease: ClassVar[float] = 1.0

    # -- hooks -------------------------------------------------------------------------

    def transport_url(self) -> str:
        """Return the URL of the broker under test."""
        raise TypeError(
            f"{type(self).__name__} must define transport_url() returning the "
            "broker URL"
        )

    def transport_options(self) -> dict[str, Any]:
        """Return the keyword options the transport is opened with."""
        return {}

    def inject_malformed(self, transport: Transport, queue: str) -> bool:
        """Store a damaged message in *queue* by the broker's own means.

        Return ``False`` (the default) where the transport cannot hold a
        malformed message; the poison test is then skipped.
        """
        return False

    # -- helpers -----------------------------------------------------------------------

    def open_transport(self, **options: Any) -> Transport:
        """Open the transport under test with its options, overridden by *options*."""
        transport = connect(
            self.transport_url(), **{**self.transport_options(), **options}
        )
        self._opened.append(transport)
        return transport

    def name(self, label: str = "q") -> str:
        """Return a fresh queue or exchange name, deleted after the test."""
        value = unique_name(label)
        self._names.append(value)
        return value

    def wait(self, seconds: float) -> None:
        """Sleep *seconds* times :attr:`time_scale`."""
        time.sleep(seconds * self.time_scale)

    def lease_transport(self, **options: Any) -> Transport:
        """Open a transport with a short lease and no automatic renewal."""
        return self.open_transport(
            lease=self.short_lease, renew_interval=None, **options
        )

    @pytest.fixture(autouse=True)
    def _bookkeeping(self) -> Iterator[None]:
        self._opened: list[Transport] = []
        self._names: list[str] = []
        yield
        cleaner: Transport | None = None
        try:
            cleaner = connect(self.transport_url(), **self.transport_options())
            for queue in self._names:
                cleaner.delete_queue(queue)
        finally:
            for transport in [
                *self._opened,
                *([cleaner] if cleaner is not None else []),
            ]:
                transport.close()

    @pytest.fixture
    def transport(self) -> Transport:
        """The transport under test, closed after the test."""
        return self.open_transport()

    def _skip_unless(self, transport: Transport, capability: str) -> None:
        if not getattr(transport.capabilities, capability):
            pytest.skip(f"{transport.name} declares no {capability}")

    def _queue(self, transport: Transport, **arguments: Any) -> str:
        queue = self.name()
        transport.declare_queue(queue, **arguments)
        return queue

    # -- publish, consume, settle ------------------------------------------------------

    def test_publish_then_consume_keeps_body_headers_and_properties(
        self, transport: Transport
    ) -> None:
        queue = self._queue(transport)
        body = bytes(range(256)) * 4
        headers = {"task": "proj.add", "id": "1", "retries": 0, "nested": {"a": [1, 2]}}
        properties = {"content_type": "application/json", "correlation_id": "c-1"}
        transport.publish(queue, body, headers=headers, properties=properties)
        with transport.consumer([queue], prefetch=5) as consumer:
            (delivery,) = collect(consumer, 1)
            assert delivery.body == body
            assert {k: delivery.headers[k] for k in headers} == headers
            assert delivery.properties["content_type"] == "application/json"
            assert delivery.properties["correlation_id"] == "c-1"
            assert (delivery.queue, delivery.exchange, delivery.routing_key) == (
                queue, "", queue,
            )  # fmt: skip
            assert delivery.redelivered is False
            assert delivery.delivery_count == 1
            delivery.ack()
            assert delivery.settled == "ack"

    def test_an_acked_message_is_never_delivered_again(self) -> None:
        transport = self.lease_transport()
        queue = self._queue(transport)
        transport.publish(queue, b"once")
        with transport.consumer([queue]) as consumer:
            (delivery,) = collect(consumer, 1)
            delivery.ack()
        self.wait(self.short_lease + 0.5)
        with transport.consumer([queue]) as consumer:
            assert consumer.fetch(timeout=0.5 * self.time_scale) == []
        assert transport.size(queue) == 0

    def test_reject_with_requeue_delivers_it_again_flagged(
        self, transport: Transport
    ) -> None:
        queue = self._queue(transport)
        transport.publish(queue, b"again")
        with transport.consumer([queue]) as consumer:
            (first,) = collect(consumer, 1)
            first.reject(requeue=True)
            (second,) = collect(consumer, 1)
            assert second.body == b"again"
            assert second.redelivered is True
            if transport.capabilities.delivery_count:
                assert second.delivery_count == 2
            second.ack()

    def test_reject_without_requeue_removes_it(self, transport: Transport) -> None:
        queue = self._queue(transport)
        transport.publish(queue, b"bad")
        with transport.consumer([queue]) as consumer:
            (delivery,) = collect(consumer, 1)
            delivery.reject(requeue=False)
            assert consumer.fetch(timeout=0.3 * self.time_scale) == []
        assert transport.size(queue) == 0

    def test_settling_twice_is_ignored(self, transport: Transport) -> None:
        queue = self._queue(transport)
        transport.publish(queue, b"x")
        with transport.consumer([queue]) as consumer:
            (delivery,) = collect(consumer, 1)
            delivery.ack()
            delivery.reject(requeue=True)
            delivery.ack()
            assert delivery.settled == "ack"
            assert consumer.unacked == 0
            assert consumer.fetch(timeout=0.3 * self.time_scale) == []

    def test_ack_many_settles_a_batch_in_one_call(self, transport: Transport) -> None:
        queue = self._queue(transport)
        transport.publish_many(Message(queue, b"%d" % n) for n in range(20))
        with transport.consumer([queue], prefetch=20) as consumer:
            got = collect(consumer, 20)
            assert len(got) == 20
            transport.ack_many(got)
            assert consumer.unacked == 0
            assert all(d.settled == "ack" for d in got)
        assert transport.size(queue) == 0

    def test_ack_from_another_thread(self, transport: Transport) -> None:
        queue = self._queue(transport)
        transport.publish_many(Message(queue, b"%d" % n) for n in range(10))
        with transport.consumer([queue], prefetch=10) as consumer:
            got = collect(consumer, 10)
            threads = [threading.Thread(target=d.ack) for d in got]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert consumer.unacked == 0
            assert consumer.fetch(timeout=0.3 * self.time_scale) == []
        assert transport.size(queue) == 0

    def test_unsettled_deliveries_return_when_the_consumer_closes(
        self, transport: Transport
    ) -> None:
        queue = self._queue(transport)
        transport.publish(queue, b"warm")
        consumer = transport.consumer([queue])
        (delivery,) = collect(consumer, 1)
        consumer.close()
        delivery.ack()  # too late: it went back on close
        with transport.consumer([queue]) as again:
            (returned,) = collect(again, 1)
            assert returned.body == b"warm"
            # Released: as never delivered where releases are not counted.
            if transport.capabilities.uncounted_release:
                assert returned.redelivered is False
                assert returned.delivery_count == 1
            else:
                assert returned.redelivered is True
            returned.ack()

    # -- consumer death ----------------------------------------------------------------

    def test_a_consumer_that_dies_loses_nothing(self) -> None:
        transport = self.lease_transport()
        queue = self._queue(transport)
        transport.publish(queue, b"survivor")
        dying = transport.consumer([queue])
        (delivery,) = collect(dying, 1)
        dying.close(requeue=False)  # gone without settling: like a crash
        with transport.consumer([queue]) as consumer:
            (again,) = collect(consumer, 1, timeout=self.short_lease * 4 + 5)
            assert again.body == b"survivor"
            assert again.redelivered is True
            if transport.capabilities.delivery_count:
                assert again.delivery_count == 2
            again.ack()
        delivery.ack()  # the dead consumer's late ack changes nothing
        assert transport.size(queue) == 0

    def test_a_killed_consumer_process_loses_nothing(self) -> None:
        transport = self.open_transport()
        if not transport.capabilities.multiprocess:
            pytest.skip(f"{transport.name} lives in one process")
        queue = self._queue(transport)
        transport.publish_many(Message(queue, b"%d" % n) for n in range(3))
        options = {
            **self.transport_options(),
            "lease": self.short_lease,
            "renew_interval": self.short_lease / 4,
        }
        context = multiprocessing.get_context("spawn")
        ready = context.Queue()
        child = context.Process(
            target=_hold_then_die, args=(self.transport_url(), options, queue, ready)
        )
        child.start()
        try:
            assert ready.get(timeout=60) == 3
            assert transport.size(queue) == 0
        finally:
            child.kill()
            child.join()
        with transport.consumer([queue], prefetch=10) as consumer:
            got = collect(consumer, 3, timeout=self.short_lease * 4 + 10)
            assert sorted(d.body for d in got) == [b"0", b"1", b"2"]
            assert all(d.redelivered for d in got)
            transport.ack_many(got)

    # -- prefetch, purge, size ---------------------------------------------------------

    def test_prefetch_bounds_unacked_deliveries_broker_side(
        self, transport: Transport
    ) -> None:
        queue = self._queue(transport)
        prefetch = 10
        transport.publish_many(Message(queue, b"%d" % n) for n in range(prefetch + 50))
        with transport.consumer([queue], prefetch=prefetch) as consumer:
            got = collect(consumer, prefetch + 50, timeout=0.5 * self.time_scale)
            assert len(got) == prefetch
            assert consumer.unacked == prefetch
            self.wait(0.3)
            assert transport.size(queue) == 50  # the broker holds back the rest
            got[0].ack()
            more = collect(consumer, 2, timeout=0.5 * self.time_scale)
            assert len(more) == 1
            assert transport.size(queue) == 49
            transport.ack_many(got[1:] + more)

    def test_purge_removes_ready_messages_and_counts_them(
        self, transport: Transport
    ) -> None:
        queue = self._queue(transport)
        transport.publish_many(Message(queue, b"x") for _ in range(7))
        with transport.consumer([queue], prefetch=2) as consumer:
            held = collect(consumer, 2)
            assert len(held) == 2
            self.wait(0.2)
            assert transport.purge(queue) == 5
            assert transport.size(queue) == 0
            transport.ack_many(held)
        assert transport.purge(queue) == 0

    def test_size_counts_ready_messages(self, transport: Transport) -> None:
        queue = self._queue(transport)
        assert transport.size(queue) == 0
        transport.publish_many(Message(queue, b"x") for _ in range(12))
        assert transport.size(queue) == 12

    # -- ordering ----------------------------------------------------------------------

    def test_fifo_within_one_priority(self, transport: Transport) -> None:
        queue = self._queue(transport)
        for number in range(30):
            transport.publish(queue, b"%d" % number)
        with transport.consumer([queue], prefetch=1) as consumer:
            seen = []
            for _ in range(30):
                (delivery,) = collect(consumer, 1)
                seen.append(int(delivery.body))
                delivery.ack()
        assert seen == list(range(30))

    def test_a_higher_priority_is_served_first(self, transport: Transport) -> None:
        if transport.capabilities.priority_levels < 4:
            pytest.skip(f"{transport.name} has fewer than 4 priority levels")
        queue = self._queue(transport, max_priority=9)
        order = [(0, "a"), (9, "b"), (3, "c"), (6, "d"), (9, "e"), (0, "f"), (6, "g")]
        for priority, label in order:
            transport.publish(queue, label.encode(), properties={"priority": priority})
        with transport.consumer([queue], prefetch=1) as consumer:
            seen = []
            for _ in order:
                (delivery,) = collect(consumer, 1)
                seen.append(delivery.body.decode())
                delivery.ack()
        assert seen == ["b", "e", "d", "g", "c", "a", "f"]

    def test_a_backlog_in_one_queue_does_not_starve_another(
        self, transport: Transport
    ) -> None:
        busy, other = self._queue(transport), self._queue(transport)
        transport.publish_many(Message(busy, b"%d" % n) for n in range(300))
        transport.publish(other, b"urgent")
        with transport.consumer([busy, other], prefetch=10) as consumer:
            taken = 0
            while taken < 300:
                batch = consumer.fetch(timeout=5.0 * self.time_scale)
                assert batch, "the consumer stopped receiving"
                for delivery in batch:
                    delivery.ack()
                if any(delivery.queue == other for delivery in batch):
                    break
                taken += len(batch)
        # Served while most of the backlog still waits (kombu rotates the
        # queues a worker consumes; RabbitMQ serves each queue's consumer).
        assert taken < 100, f"{taken} of the backlog were delivered first"

    # -- exchanges ---------------------------------------------------------------------

    def test_fanout_reaches_three_subscribers(self, transport: Transport) -> None:
        self._skip_unless(transport, "fanout")
        exchange = self.name("fan")
        transport.declare_exchange(exchange, "fanout")
        consumers = [transport.consumer(subscriptions=[exchange]) for _ in range(3)]
        try:
            for number in range(5):
                transport.publish("any", b"%d" % number, exchange=exchange)
            for consumer in consumers:
                got = collect(consumer, 5)
                assert sorted(d.body for d in got) == [b"0", b"1", b"2", b"3", b"4"]
                assert all(d.exchange == exchange for d in got)
                transport.ack_many(got)
        finally:
            for consumer in consumers:
                consumer.close()

    def test_topic_star_matches_one_word_and_hash_any(
        self, transport: Transport
    ) -> None:
        self._skip_unless(transport, "topic")
        exchange = self.name("topic")
        transport.declare_exchange(exchange, "topic")
        patterns = {"star": "a.*", "hash": "a.#", "all": "#", "tail": "*.b"}
        queues = {label: self._queue(transport) for label in patterns}
        for label, pattern in patterns.items():
            transport.bind(queues[label], exchange, pattern)
        for key in ("a.b", "a.b.c", "a", "x.b", "b"):
            transport.publish(key, key.encode(), exchange=exchange)
        expected = {
            "star": ["a.b"],
            "hash": ["a", "a.b", "a.b.c"],
            "all": ["a", "a.b", "a.b.c", "b", "x.b"],
            "tail": ["a.b", "x.b"],
        }
        for label, keys in expected.items():
            with transport.consumer([queues[label]], prefetch=10) as consumer:
                got = collect(consumer, len(keys))
                got += consumer.fetch(timeout=0.1 * self.time_scale)
                assert sorted(d.routing_key for d in got) == keys, label
                transport.ack_many(got)

    def test_a_direct_exchange_routes_by_key(self, transport: Transport) -> None:
        exchange = self.name("direct")
        transport.declare_exchange(exchange, "direct")
        red, blue = self._queue(transport), self._queue(transport)
        transport.bind(red, exchange, "red")
        transport.bind(blue, exchange, "blue")
        transport.publish("red", b"r", exchange=exchange)
        transport.publish("blue", b"b", exchange=exchange)
        transport.publish("green", b"g", exchange=exchange)
        with transport.consumer([red, blue], prefetch=10) as consumer:
            got = collect(consumer, 3, timeout=1.0 * self.time_scale)
            assert sorted((d.queue == red, d.body) for d in got) == [
                (False, b"b"), (True, b"r"),
            ]  # fmt: skip
            transport.ack_many(got)

    def test_a_mandatory_publish_that_reaches_no_queue_fails(
        self, transport: Transport
    ) -> None:
        exchange = self.name("direct")
        transport.declare_exchange(exchange, "direct")
        with pytest.raises(UnroutableError, match="nobody"):
            transport.publish("nobody", b"x", exchange=exchange, mandatory=True)
        transport.publish("nobody", b"x", exchange=exchange)  # silently dropped

    # -- time --------------------------------------------------------------------------

    def test_delayed_delivery_waits_broker_side(self, transport: Transport) -> None:
        self._skip_unless(transport, "delayed_delivery")
        queue = self._queue(transport)
        delay = 1.0 * self.time_scale
        started = time.monotonic()
        transport.publish(queue, b"later", delay=delay)
        transport.publish(queue, b"now")
        with transport.consumer([queue], prefetch=5) as consumer:
            first = collect(consumer, 2, timeout=delay * 0.5)
            assert [d.body for d in first] == [b"now"]
            (later,) = collect(consumer, 1, timeout=delay + 5)
            waited = time.monotonic() - started
            assert later.body == b"later"
            assert delay * 0.9 <= waited <= delay + 3
            transport.ack_many([*first, later])

    def test_remembered_keys_are_recalled_until_they_expire(
        self, transport: Transport
    ) -> None:
        self._skip_unless(transport, "expiring_sets")
        # One set name for every run (a stream or table row stays behind on
        # some brokers); the keys are fresh, so runs do not see each other's.
        name = "transports-conformance"
        short, kept, cut = unique_name("short"), unique_name("kept"), unique_name("cut")
        transport.remember(name, [short], 0.5 * self.time_scale)
        transport.remember(name, [kept], 600)
        other = connect(self.transport_url(), **self.transport_options())
        self._opened.append(other)
        assert {short, kept} <= set(other.recall(name))  # seen by another client
        self.wait(0.7)
        recalled = other.recall(name)
        assert kept in recalled
        assert short not in recalled
        assert recalled[kept] == pytest.approx(time.time() + 600, abs=30)
        # Beyond the limit, the keys expiring first give way.
        transport.remember(name, [cut], 60, limit=1)
        assert cut not in transport.recall(name)
        with pytest.raises(ValueError, match="ttl"):
            transport.remember(name, [kept], 0)

    def test_a_delay_beyond_the_limit_is_refused(self, transport: Transport) -> None:
        limit = transport.capabilities.max_delay
        if not transport.capabilities.delayed_delivery or limit is None:
            pytest.skip(f"{transport.name} has no delay limit")
        queue = self._queue(transport)
        with pytest.raises(ValueError, match="delay"):
            transport.publish(queue, b"x", delay=limit + 1)

    def test_an_expired_message_is_not_delivered(self, transport: Transport) -> None:
        self._skip_unless(transport, "message_ttl")
        queue = self._queue(transport)
        transport.publish(queue, b"stale", ttl=0.3 * self.time_scale)
        transport.publish(queue, b"stale too", properties={"expiration": "300"})
        transport.publish(queue, b"fresh")
        self.wait(0.8)
        with transport.consumer([queue], prefetch=5) as consumer:
            got = collect(consumer, 3, timeout=1.0 * self.time_scale)
            assert [d.body for d in got] == [b"fresh"]
            transport.ack_many(got)

    def test_a_queue_message_ttl_expires_its_messages(
        self, transport: Transport
    ) -> None:
        self._skip_unless(transport, "message_ttl")
        queue = self._queue(transport, message_ttl=0.3 * self.time_scale)
        transport.publish(queue, b"stale")
        self.wait(0.8)
        with transport.consumer([queue]) as consumer:
            assert collect(consumer, 1, timeout=0.5 * self.time_scale) == []

    # -- leases ------------------------------------------------------------------------

    def test_extend_keeps_a_delivery_past_its_lease(self) -> None:
        transport = self.lease_transport()
        self._skip_unless(transport, "leases")
        queue = self._queue(transport)
        transport.publish_many([Message(queue, b"long"), Message(queue, b"short")])
        with transport.consumer([queue], prefetch=2) as holder:
            long_task, short_task = collect(holder, 2)
            long_task.extend(self.short_lease * 4)
            self.wait(self.short_lease * 2)
            with transport.consumer([queue]) as other:
                (again,) = collect(other, 2, timeout=self.short_lease / 2)
                assert again.body == b"short"  # its lease ran out; long's did not
                again.ack()
            long_task.ack()
            short_task.ack()  # lost its lease: ignored by the broker
        assert transport.size(queue) == 0

    def test_a_live_consumer_renews_its_leases(self) -> None:
        transport = self.open_transport(
            lease=self.short_lease, renew_interval=self.short_lease / 4
        )
        self._skip_unless(transport, "leases")
        queue = self._queue(transport)
        transport.publish(queue, b"slow task")
        with transport.consumer([queue]) as holder:
            (delivery,) = collect(holder, 1)
            self.wait(self.short_lease * 3)
            with transport.consumer([queue]) as other:
                assert other.fetch(timeout=0.2) == []
            delivery.ack()

    def test_the_delivery_count_grows_with_each_delivery(
        self, transport: Transport
    ) -> None:
        self._skip_unless(transport, "delivery_count")
        queue = self._queue(transport)
        transport.publish(queue, b"x")
        counts = []
        with transport.consumer([queue]) as consumer:
            for _ in range(4):
                (delivery,) = collect(consumer, 1)
                counts.append((delivery.delivery_count, delivery.redelivered))
                delivery.reject(requeue=True)
        assert counts == [(1, False), (2, True), (3, True), (4, True)]

    def test_a_released_delivery_is_not_counted(self, transport: Transport) -> None:
        self._skip_unless(transport, "uncounted_release")
        queue = self._queue(transport)
        transport.publish(queue, b"x")
        with transport.consumer([queue]) as consumer:
            (delivery,) = collect(consumer, 1)
            delivery.reject(requeue=True)  # counted
            (delivery,) = collect(consumer, 1)
            assert delivery.delivery_count == 2
            delivery.release()  # not counted
            (delivery,) = collect(consumer, 1)
            assert delivery.delivery_count == 2
        # A consumer closed with its deliveries unsettled (a warm shutdown)
        # releases them.
        with transport.consumer([queue]) as other:
            (delivery,) = collect(other, 1)
            assert delivery.delivery_count == 2
        with transport.consumer([queue]) as last:
            (delivery,) = collect(last, 1)
            assert delivery.delivery_count == 2
            delivery.ack()

    # -- dead-lettering ----------------------------------------------------------------

    def test_a_rejected_message_is_dead_lettered_with_the_reason(
        self, transport: Transport
    ) -> None:
        self._skip_unless(transport, "dead_lettering")
        dead = self._queue(transport)
        queue = self._queue(transport, dead_letter=dead)
        transport.publish(queue, b"bad", headers={"task": "t"})
        with transport.consumer([queue]) as consumer:
            (delivery,) = collect(consumer, 1)
            delivery.reject(requeue=False)
        with transport.consumer([dead]) as consumer:
            (moved,) = collect(consumer, 1)
            assert moved.body == b"bad"
            assert moved.headers["task"] == "t"
            assert moved.headers["x-death-reason"] == "rejected"
            assert moved.headers["x-death-queue"] == queue
            moved.ack()

    def test_a_poison_message_is_dead_lettered_after_max_deliveries(
        self, transport: Transport
    ) -> None:
        self._skip_unless(transport, "max_deliveries")
        dead = self._queue(transport)
        queue = self._queue(transport, dead_letter=dead, max_deliveries=3)
        transport.publish(queue, b"poison")
        transport.publish(queue, b"fine")
        seen = []
        with transport.consumer([queue], prefetch=1) as consumer:
            for _ in range(5):
                got = collect(consumer, 1, timeout=1.0 * self.time_scale)
                if not got:
                    break
                seen.append(got[0].body)
                if got[0].body == b"poison":
                    got[0].reject(requeue=True)
                else:
                    got[0].ack()
        assert seen == [b"poison"] * 3 + [b"fine"]
        with transport.consumer([dead]) as consumer:
            (moved,) = collect(consumer, 1)
            assert moved.body == b"poison"
            assert "3" in str(moved.headers["x-death-reason"])
            assert moved.headers["x-death-queue"] == queue
            moved.ack()

    def test_a_malformed_message_is_moved_aside_and_the_queue_goes_on(
        self, transport: Transport
    ) -> None:
        dead = self._queue(transport)
        queue = self._queue(transport, dead_letter=dead)
        transport.publish(queue, b"before")
        if not self.inject_malformed(transport, queue):
            pytest.skip(f"{transport.name} cannot hold a malformed message")
        transport.publish(queue, b"after")
        with transport.consumer([queue], prefetch=10) as consumer:
            got = collect(consumer, 3, timeout=1.0 * self.time_scale)
            assert [d.body for d in got] == [b"before", b"after"]
            transport.ack_many(got)
        with transport.consumer([dead]) as consumer:
            (moved,) = collect(consumer, 1)
            assert "malformed" in moved.headers["x-death-reason"]
            moved.ack()

    # -- declarations ------------------------------------------------------------------

    def test_redeclaring_with_other_arguments_names_both(
        self, transport: Transport
    ) -> None:
        queue = self.name()
        dead = self.name()
        transport.declare_queue(queue, max_priority=9, dead_letter=dead)
        transport.declare_queue(queue, max_priority=9, dead_letter=dead)  # idempotent
        with pytest.raises(DeclarationMismatchError) as info:
            transport.declare_queue(queue, max_priority=5)
        message = str(info.value)
        assert "'max_priority': 9" in message
        assert "'max_priority': 5" in message
        assert repr(dead) in message

    def test_redeclaring_an_exchange_as_another_kind_fails(
        self, transport: Transport
    ) -> None:
        exchange = self.name("ex")
        transport.declare_exchange(exchange, "direct")
        transport.declare_exchange(exchange, "direct")
        kind = "topic" if transport.capabilities.topic else "fanout"
        with pytest.raises(DeclarationMismatchError, match=kind):
            transport.declare_exchange(exchange, kind)

    # -- the consume loop --------------------------------------------------------------

    def test_one_loop_serves_queues_and_broadcasts_together(
        self, transport: Transport
    ) -> None:
        self._skip_unless(transport, "fanout")
        first, second = self._queue(transport), self._queue(transport)
        exchange = self.name("bcast")
        transport.declare_exchange(exchange, "fanout")
        seen = []
        timeout = 1.0 * self.time_scale
        stream = transport.consume(
            [first, second], subscriptions=[exchange], prefetch=10, timeout=timeout
        )
        transport.publish(first, b"1")
        transport.publish(second, b"2")
        for delivery in stream:
            seen.append(delivery.body)
            delivery.ack()
            if len(seen) == 2:
                transport.publish("", b"3", exchange=exchange)
        assert sorted(seen) == [b"1", b"2", b"3"]

    def test_the_consume_loop_ends_after_its_idle_timeout(
        self, transport: Transport
    ) -> None:
        queue = self._queue(transport)
        started = time.monotonic()
        assert list(transport.consume([queue], timeout=0.3)) == []
        assert time.monotonic() - started < 0.3 + 2.0 * self.time_scale

    def test_queues_are_added_and_cancelled_on_a_live_consumer(
        self, transport: Transport
    ) -> None:
        first, second = self._queue(transport), self._queue(transport)
        transport.publish(second, b"from second")
        with transport.consumer([first]) as consumer:
            assert consumer.fetch(timeout=0.2) == []
            consumer.add_queue(second)
            (delivery,) = collect(consumer, 1)
            assert delivery.queue == second
            delivery.ack()
            consumer.cancel_queue(first)
            assert consumer.queues == (second,)
            transport.publish(first, b"ignored")
            assert consumer.fetch(timeout=0.3) == []
        assert transport.size(first) == 1

    def test_a_waiting_fetch_wakes_when_a_message_arrives(
        self, transport: Transport
    ) -> None:
        queue = self._queue(transport)
        publisher = self.open_transport()
        timer = threading.Timer(0.3, publisher.publish, (queue, b"wake"))
        with transport.consumer([queue]) as consumer:
            started = time.monotonic()
            timer.start()
            got = consumer.fetch(timeout=10.0)
            elapsed = time.monotonic() - started
            timer.join()
            assert [d.body for d in got] == [b"wake"]
            assert elapsed < 0.3 + 2.5 * self.time_scale
            got[0].ack()

    def test_interrupt_makes_a_waiting_fetch_return(self, transport: Transport) -> None:
        queue = self._queue(transport)
        with transport.consumer([queue]) as consumer:
            timer = threading.Timer(0.2, consumer.interrupt)
            started = time.monotonic()
            timer.start()
            assert consumer.fetch(timeout=10.0) == []
            timer.join()
            assert time.monotonic() - started < 3.0 * self.time_scale

    def test_drain_buffers_deliveries_for_a_later_fetch(
        self, transport: Transport
    ) -> None:
        queue = self._queue(transport)
        transport.publish_many(Message(queue, b"%d" % n) for n in range(3))
        with transport.consumer([queue], prefetch=3) as consumer:
            deadline = time.monotonic() + 5
            while consumer.drain(timeout=0.5) < 3 and time.monotonic() < deadline:
                pass
            got = consumer.fetch(timeout=0)
            assert [d.body for d in got] == [b"0", b"1", b"2"]
            transport.ack_many(got)

    def test_publish_many_delivers_every_message(self, transport: Transport) -> None:
        queue = self._queue(transport)
        transport.publish_many(
            Message(queue, b"%d" % n, headers={"n": n}) for n in range(100)
        )
        assert transport.size(queue) == 100
        with transport.consumer([queue], prefetch=100) as consumer:
            got = collect(consumer, 100)
            assert [d.headers["n"] for d in got] == list(range(100))
            transport.ack_many(got)

    # -- bad input and lifecycle -------------------------------------------------------

    def test_bad_input_is_refused_with_a_clear_error(
        self, transport: Transport
    ) -> None:
        queue = self._queue(transport)
        with pytest.raises(TypeError, match="bytes"):
            transport.publish(queue, "text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="delay"):
            transport.publish(queue, b"x", delay=-1)
        with pytest.raises(ValueError, match="priority"):
            transport.publish(queue, b"x", properties={"priority": -3})
        with pytest.raises(ValueError, match="must not be empty"):
            transport.declare_queue("")
        with pytest.raises(ValueError, match="prefetch"):
            transport.consumer([queue], prefetch=0)
        with pytest.raises(TypeError, match=repr(queue)):
            transport.consumer(queue)
        with pytest.raises(ValueError, match="kind"):
            transport.declare_exchange(self.name("ex"), "headers")
        assert transport.size(queue) == 0

    def test_a_closed_transport_refuses_work(self) -> None:
        transport = self.open_transport()
        queue = self._queue(transport)
        consumer = transport.consumer([queue])
        transport.close()
        assert consumer.closed
        with pytest.raises(TransportClosedError):
            transport.publish(queue, b"x")
        with pytest.raises(TransportClosedError):
            consumer.fetch()
        transport.close()  # idempotent
