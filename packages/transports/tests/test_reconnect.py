"""Lost broker connections: one warning per outage, one info line when it is back."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from transports import Message, TransportConnectionError
from transports._memory import MemoryTransport
from transports.base import _Outage


class _FlakyTransport(MemoryTransport):
    """Loses the connection on the next *failures* publishes."""

    connection_errors = (ConnectionError,)

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.failures = 0
        self.attempts = 0

    def _publish(self, messages: Any, mandatory: bool) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection to s3cr3t-host reset by peer.")
        super()._publish(messages, mandatory)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr("transports.base.time.monotonic", clock)
    return clock


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> _FlakyTransport:
    monkeypatch.setattr("transports.base.time.sleep", lambda seconds: None)
    transport = _FlakyTransport("memory://", max_retries=10)
    transport._secrets = ("s3cr3t",)
    transport.declare_queue("q")
    return transport


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


class TestRetrying:
    def test_an_outage_logs_one_warning_and_one_info_however_many_retries(
        self, flaky: _FlakyTransport, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="transports")
        flaky.failures = 4
        flaky.publish("q", b"x")
        assert flaky.attempts == 5
        (warning,) = _records(caplog, logging.WARNING)
        assert warning == (
            "memory transport: lost the connection to memory://: ConnectionError: "
            "connection to ***-host reset by peer; reconnecting"
        )
        (info,) = _records(caplog, logging.INFO)
        assert info.startswith("memory transport: reconnected to memory:// after ")
        assert "s3cr3t" not in caplog.text
        assert flaky.size("q") == 1

    def test_an_outage_longer_than_the_retries_stays_one_outage(
        self, flaky: _FlakyTransport, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="transports")
        flaky.failures = 30
        for _ in range(2):
            with pytest.raises(TransportConnectionError, match="failed 11 time"):
                flaky.publish("q", b"x")
        assert _records(caplog, logging.INFO) == []
        flaky.publish("q", b"x")
        assert len(_records(caplog, logging.WARNING)) == 1
        assert len(_records(caplog, logging.INFO)) == 1

    def test_each_outage_is_logged_once(
        self,
        flaky: _FlakyTransport,
        caplog: pytest.LogCaptureFixture,
        clock: _Clock,
    ) -> None:
        caplog.set_level(logging.INFO, logger="transports")
        for _ in range(3):
            flaky.failures = 2
            flaky.publish_many([Message("q", b"x")])
            clock.now += 1.0  # a link that failed before fails again: a new outage
        assert len(_records(caplog, logging.WARNING)) == 3
        assert len(_records(caplog, logging.INFO)) == 3


class TestOutage:
    @pytest.fixture
    def outage(self, clock: _Clock) -> _Outage:
        self.transport = MemoryTransport("memory://")
        return self.transport._outage

    def test_links_that_notice_together_are_one_outage(
        self, outage: _Outage, caplog: pytest.LogCaptureFixture, clock: _Clock
    ) -> None:
        caplog.set_level(logging.INFO, logger="transports")
        outage.lost("commands", ConnectionError("reset"))
        outage.lost("consumer", ConnectionError("reset"))
        outage.lost("consumer", ConnectionError("refused"))
        clock.now += 2.5
        outage.back("commands")
        assert outage.active
        assert _records(caplog, logging.INFO) == []
        outage.back("consumer")
        assert not outage.active
        assert len(_records(caplog, logging.WARNING)) == 1
        assert _records(caplog, logging.INFO) == [
            "memory transport: reconnected to memory:// after 2.5 s"
        ]
        assert outage.count == 1

    def test_an_idle_link_noticing_late_is_the_same_outage(
        self, outage: _Outage, caplog: pytest.LogCaptureFixture, clock: _Clock
    ) -> None:
        caplog.set_level(logging.INFO, logger="transports")
        outage.lost("consumer", ConnectionError("reset"))
        outage.back("consumer")
        clock.now += 1.0
        outage.lost("producer", ConnectionError("reset"))
        outage.back("producer")
        assert outage.count == 1
        assert len(_records(caplog, logging.WARNING)) == 1
        assert len(_records(caplog, logging.INFO)) == 1

    def test_a_late_loss_that_lasts_is_warned_about(
        self, outage: _Outage, caplog: pytest.LogCaptureFixture, clock: _Clock
    ) -> None:
        caplog.set_level(logging.INFO, logger="transports")
        outage.lost("consumer", ConnectionError("reset"))
        outage.back("consumer")
        clock.now += 1.0
        outage.lost("producer", ConnectionError("reset"))
        clock.now += outage.GRACE
        outage.lost("producer", ConnectionError("refused"))
        assert outage.count == 2
        assert len(_records(caplog, logging.WARNING)) == 2

    def test_a_loss_after_the_grace_period_is_a_new_outage(
        self, outage: _Outage, caplog: pytest.LogCaptureFixture, clock: _Clock
    ) -> None:
        caplog.set_level(logging.INFO, logger="transports")
        outage.lost("consumer", ConnectionError("reset"))
        outage.back("consumer")
        clock.now += outage.GRACE
        outage.lost("producer", ConnectionError("reset"))
        assert outage.count == 2

    def test_a_link_that_is_gone_is_not_waited_for(
        self, outage: _Outage, caplog: pytest.LogCaptureFixture, clock: _Clock
    ) -> None:
        outage.lost("consumer", ConnectionError("reset"))
        outage.forget("consumer")
        assert not outage.active
        outage.back("consumer")
        assert not outage.active


class _FlakySettleTransport(MemoryTransport):
    """Loses the connection on the next *failures* settlements."""

    connection_errors = (ConnectionError,)

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.failures = 0

    def _settle(self, consumer: Any, deliveries: Any, outcome: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection reset by peer")
        super()._settle(consumer, deliveries, outcome)


class TestSettlementsOverAnOutage:
    @pytest.fixture
    def transport(self, monkeypatch: pytest.MonkeyPatch) -> _FlakySettleTransport:
        monkeypatch.setattr("transports.base.time.sleep", lambda seconds: None)
        transport = _FlakySettleTransport("memory://", max_retries=2)
        transport.declare_queue("q")
        transport.publish_many([Message("q", b"a"), Message("q", b"b")])
        return transport

    def test_an_ack_that_cannot_reach_the_broker_is_sent_after_reconnecting(
        self, transport: _FlakySettleTransport
    ) -> None:
        consumer = transport.consumer(["q"], prefetch=1)
        (first,) = consumer.fetch(timeout=1)
        transport.failures = 3  # more than the retries: the broker is away
        first.ack()  # kept, not raised
        assert first.settled == "ack"
        transport.failures = 3
        with pytest.raises(TransportConnectionError):
            consumer.fetch(timeout=0)  # still away: the ack is still kept
        stored = transport._broker.queues["q"].messages
        assert len(stored) == 2
        (second,) = consumer.fetch(timeout=1)  # back: the ack went out first
        assert len(stored) == 1
        second.ack()
        assert not stored
        consumer.close()

    def test_without_leases_a_failed_ack_still_raises(
        self, transport: _FlakySettleTransport, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(
            transport, "capabilities", transport.capabilities.__class__(leases=False)
        )
        consumer = transport.consumer(["q"], prefetch=1)
        (first,) = consumer.fetch(timeout=1)
        transport.failures = 3
        with pytest.raises(TransportConnectionError):
            first.ack()
