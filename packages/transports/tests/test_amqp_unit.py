"""The AMQP transport's server-free parts: URLs, arguments, delay levels, errors.

Behaviour against a real RabbitMQ is in tests-integration/transports/test_amqp.py.
"""

from __future__ import annotations

import socket
import sys

import pytest

from transports import (
    InvalidURLError,
    MissingDriverError,
    QueueSpec,
    TransportConnectionError,
    _registry,
    connect,
    mask_url,
)
from transports._amqp import (
    DELAY_EXCHANGE,
    DELAY_LEVELS,
    MAX_DELAY,
    AMQPTransport,
    Endpoint,
    _death_headers,
    _Ledger,
    _Link,
    _message,
    delay_levels,
    delay_routing_key,
    is_quorum,
    parse_url,
    queue_arguments,
)
from transports.base import DEATH_COUNT, DEATH_QUEUE, DEATH_REASON, Outgoing


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestParseURL:
    def test_the_full_form(self) -> None:
        (endpoint,), options = parse_url("amqp://user:s3cret@rabbit:5673/jobs")
        assert endpoint == Endpoint("rabbit", 5673, "user", "s3cret", "jobs", False)
        assert options == {}

    @pytest.mark.parametrize(
        ("url", "vhost"),
        [
            ("amqp://h//", "/"),
            ("amqp://h/", "/"),
            ("amqp://h", "/"),
            ("amqp://h/%2Fstaging", "/staging"),
            ("amqp://h/a%20b", "a b"),
        ],
    )
    def test_vhosts(self, url: str, vhost: str) -> None:
        assert parse_url(url)[0][0].vhost == vhost

    def test_defaults_guest_localhost_and_the_scheme_port(self) -> None:
        (plain,), _ = parse_url("amqp://")
        (tls,), _ = parse_url("amqps://h//")
        assert (plain.host, plain.port, plain.userid, plain.password) == (
            "localhost", 5672, "guest", "guest",
        )  # fmt: skip
        assert (tls.port, tls.tls) == (5671, True)

    def test_percent_encoded_credentials(self) -> None:
        (endpoint,), _ = parse_url("amqp://us%40er:p%3Ass@h//")
        assert (endpoint.userid, endpoint.password) == ("us@er", "p:ss")

    def test_semicolons_list_failover_urls_in_order(self) -> None:
        endpoints, _ = parse_url("amqp://a:1@h1:5672//; amqps://b:2@h2/v;")
        assert [(e.host, e.port, e.vhost, e.tls) for e in endpoints] == [
            ("h1", 5672, "/", False),
            ("h2", 5671, "v", True),
        ]

    def test_query_options(self) -> None:
        _, options = parse_url("amqp://h//?heartbeat=10&queue_type=quorum")
        assert options == {"heartbeat": "10", "queue_type": "quorum"}

    @pytest.mark.parametrize(
        ("url", "text"),
        [
            ("redis://h", "expected amqp://"),
            ("amqp://h:port//", "invalid port"),
            ("amqp://h//?hearbeat=1", "unknown option 'hearbeat'"),
            (";", "names no broker"),
        ],
    )
    def test_bad_urls_are_refused_with_the_reason(self, url: str, text: str) -> None:
        with pytest.raises(InvalidURLError, match=text):
            parse_url(url)

    def test_a_refused_url_is_masked(self) -> None:
        with pytest.raises(InvalidURLError) as info:
            parse_url("amqp://u:hunter2@h//;redis://u:hunter2@h")
        assert "hunter2" not in str(info.value)

    def test_mask_url_hides_every_password_of_a_failover_list(self) -> None:
        masked = mask_url("amqp://u:one@h1//;amqp://u:two@h2//")
        assert masked == "amqp://u:***@h1//;amqp://u:***@h2//"

    def test_ipv6_addresses_keep_their_brackets(self) -> None:
        (endpoint,), _ = parse_url("amqp://[::1]:5672//")
        assert endpoint.address == "[::1]:5672"


class TestQueueArguments:
    def test_a_plain_queue_has_none(self) -> None:
        assert queue_arguments(QueueSpec("q"), False) == {}

    def test_every_argument_maps_to_its_x_argument(self) -> None:
        spec = QueueSpec(
            "q", max_priority=9, dead_letter="q.dead", message_ttl=1.5, expires=60
        )
        assert queue_arguments(spec, False) == {
            "x-max-priority": 9,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "q.dead",
            "x-message-ttl": 1500,
            "x-expires": 60000,
        }

    def test_max_deliveries_is_a_quorum_delivery_limit(self) -> None:
        spec = QueueSpec("q", max_deliveries=3, dead_letter="d")
        assert is_quorum(spec)
        args = queue_arguments(spec, True)
        assert args["x-queue-type"] == "quorum"
        assert args["x-delivery-limit"] == 2  # RabbitMQ counts returns, not deliveries

    def test_quorum_by_option_only_where_a_quorum_queue_can_be(self) -> None:
        assert is_quorum(QueueSpec("q"), True)
        assert not is_quorum(QueueSpec("q"), False)
        assert not is_quorum(QueueSpec("q", max_priority=9), True)
        assert not is_quorum(QueueSpec("q", durable=False, auto_delete=True), True)

    @pytest.mark.parametrize(
        "spec",
        [
            QueueSpec("q", quorum=True, max_priority=9),
            QueueSpec("q", max_deliveries=3, durable=False),
            QueueSpec("q", quorum=True, auto_delete=True),
        ],
    )
    def test_quorum_with_classic_only_arguments_is_refused(
        self, spec: QueueSpec
    ) -> None:
        with pytest.raises(ValueError, match="quorum queue"):
            is_quorum(spec)


class TestDelayLevels:
    @pytest.mark.parametrize(
        ("delay", "levels"),
        [
            (0.2, [0]),
            (1.0, [0]),
            (1.4, [0]),
            (2.0, [1]),
            (3.0, [0, 1]),
            (10.0, [1, 3]),
            (3600.0, [4, 9, 10, 11]),
        ],
    )
    def test_a_delay_is_the_sum_of_its_levels(
        self, delay: float, levels: list[int]
    ) -> None:
        assert delay_levels(delay) == levels
        assert sum(2**n for n in levels) == max(1, round(delay))

    def test_the_routing_key_has_one_word_per_level_then_the_queue(self) -> None:
        key = delay_routing_key(5, "tasks.high")
        words = key.split(".")
        assert len(words) == DELAY_LEVELS + 2
        assert words[-2:] == ["tasks", "high"]
        assert "".join(words[:DELAY_LEVELS]) == format(5, f"0{DELAY_LEVELS}b")

    def test_the_longest_delay_sets_every_level(self) -> None:
        assert delay_levels(MAX_DELAY) == list(range(DELAY_LEVELS))
        assert MAX_DELAY == 2**28 - 1

    def test_a_delayed_message_enters_its_highest_level_without_an_expiration(
        self,
    ) -> None:
        out = Outgoing("tasks", b"x", "", {}, {}, 0, 3.0, 10.0)
        properties, exchange, key = _message(out)
        assert exchange == "qm.delay.1"  # 3 s = 2 + 1: the levels above are skipped
        assert key == delay_routing_key(3.0, "tasks")
        assert "expiration" not in properties
        headers = properties["application_headers"]
        assert headers["x-qm-expires-at"] == pytest.approx(out.published_at + 13.0)

    @pytest.mark.parametrize(
        ("delay", "level"), [(0.2, 0), (1.0, 0), (3600.0, 11), (MAX_DELAY, 27)]
    )
    def test_a_delay_enters_the_level_of_its_highest_bit(
        self, delay: float, level: int
    ) -> None:
        out = Outgoing("tasks", b"x", "", {}, {}, 0, delay, None)
        assert _message(out)[1] == f"qm.delay.{level}"
        assert max(delay_levels(delay)) == level

    def test_a_delay_prefix_names_the_levels(self) -> None:
        out = Outgoing("tasks", b"x", "", {}, {}, 0, 5.0, None)
        assert _message(out, "app1.delay.")[1] == "app1.delay.2"
        hop = {"reason": "expired", "queue": "app1.delay.0"}
        headers = {"x-death": [hop], "task": "t"}
        assert _death_headers(headers, {}, "app1.delay.") == {"task": "t"}
        # Another prefix's queue is a real dead-lettering, not a hop.
        assert DEATH_REASON in _death_headers(headers, {}, "app2.delay.")

    def test_a_delay_through_an_exchange_is_refused(self) -> None:
        out = Outgoing("key", b"x", "events", {}, {}, 0, 3.0, None)
        with pytest.raises(ValueError, match="to queues only"):
            _message(out)


class TestMessages:
    def test_properties_priority_and_ttl(self) -> None:
        out = Outgoing(
            "q",
            b"x",
            "",
            {"task": "t"},
            {"content_type": "application/json", "body_encoding": "base64"},
            7,
            None,
            1.5,
        )
        properties, exchange, key = _message(out)
        assert (exchange, key) == ("", "q")
        assert properties == {
            "content_type": "application/json",
            "delivery_mode": 2,
            "priority": 7,
            "expiration": "1500",
            "application_headers": {"task": "t"},
        }

    def test_a_bare_message_is_persistent(self) -> None:
        properties, _, _ = _message(Outgoing("q", b"x", "", {}, {}, 0, None, None))
        assert properties == {"delivery_mode": 2}


class TestDeathHeaders:
    def test_rabbitmqs_x_death_becomes_our_headers(self) -> None:
        headers = {"x-death": [{"reason": "rejected", "queue": "q", "count": 1}]}
        out = _death_headers(headers, {})
        assert (out[DEATH_REASON], out[DEATH_QUEUE]) == ("rejected", "q")

    def test_a_delivery_limit_names_the_declared_count(self) -> None:
        headers = {"x-death": [{"reason": "delivery_limit", "queue": "q"}]}
        out = _death_headers(headers, {"q": QueueSpec("q", max_deliveries=3)})
        assert out[DEATH_REASON] == "delivered 3 times without an ack"
        assert out[DEATH_COUNT] == 3

    def test_delay_level_hops_are_removed(self) -> None:
        hop = {"reason": "expired", "queue": "qm.delay.0"}
        headers = {
            "x-death": [hop],
            "x-first-death-queue": "qm.delay.0",
            "x-first-death-reason": "expired",
            "x-first-death-exchange": "qm.delay.0",
            "task": "t",
        }
        assert _death_headers(headers, {}) == {"task": "t"}
        assert DELAY_EXCHANGE.startswith("qm.delay.")


class TestConnect:
    def test_an_unreachable_broker_raises_a_masked_connection_error(self) -> None:
        url = f"amqp://u:hunter2@127.0.0.1:{_closed_port()}//"
        with pytest.raises(TransportConnectionError, match="unreachable") as info:
            connect(url, max_retries=0, connect_timeout=0.5)
        assert "hunter2" not in str(info.value)
        assert "u:***@" in str(info.value)

    def test_every_failover_url_is_tried(self) -> None:
        first, second = _closed_port(), _closed_port()
        url = f"amqp://127.0.0.1:{first}//;amqp://127.0.0.1:{second}//"
        with pytest.raises(TransportConnectionError, match=str(second)):
            connect(url, max_retries=0, connect_timeout=0.5)

    @pytest.mark.parametrize(
        ("options", "text"),
        [
            ({"queue_type": "stream"}, "queue_type='stream'"),
            ({"heartbeat": "often"}, "heartbeat='often'"),
            ({"confirm_publish": "maybe"}, "true or false or 'stream'"),
            ({"delay_prefix": ""}, "delay_prefix=''"),
            ({"delay_prefix": "x" * 201}, "must be 1-200 bytes"),
        ],
    )
    def test_bad_options_are_refused(
        self, options: dict[str, object], text: str
    ) -> None:
        with pytest.raises(InvalidURLError, match=text):
            AMQPTransport("amqp://127.0.0.1:1//", **options)  # type: ignore[arg-type]

    def test_a_missing_driver_names_the_extra(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "amqp", None)  # makes the import fail
        monkeypatch.delitem(sys.modules, "transports._amqp")
        monkeypatch.setattr(_registry, "_cache", {})
        with pytest.raises(MissingDriverError, match=r"transports\[amqp\]"):
            connect("amqp://127.0.0.1:1//")


def _outgoing(n: int, size: int = 3) -> Outgoing:
    return Outgoing("q", b"%0*d" % (size, n), "", {}, {}, 0, None, None)


def _kept(n: int) -> tuple[list[Outgoing], list[tuple[dict[str, object], str, str]]]:
    messages = [_outgoing(i) for i in range(n)]
    return messages, [({}, "", "q")] * n


class TestStreamingLedger:
    """What a streaming publisher keeps until RabbitMQ confirms it."""

    def test_keep_drop_take_and_restore_track_messages_and_bytes(self) -> None:
        ledger = _Ledger()
        messages, built = _kept(5)
        ledger.keep(1, messages, built)
        assert list(ledger.kept) == [1, 2, 3, 4, 5]
        assert ledger.size == 15
        ledger.drop(2, 3)
        ledger.drop(3, 3)  # already gone: no change
        assert list(ledger.kept) == [1, 4, 5]
        assert ledger.size == 9
        taken = ledger.take()
        assert [m.body for m, _ in taken] == [b"000", b"003", b"004"]
        assert (ledger.kept, ledger.size) == ({}, 0)
        ledger.restore(taken)
        assert [m.body for m, _ in ledger.kept.values()] == [b"000", b"003", b"004"]
        assert ledger.size == 9

    def _link(self, ledger: _Ledger, published: int) -> _Link:
        link = object.__new__(_Link)  # the bookkeeping only, no connection
        link.ledger = ledger
        link.published, link.floor, link.singles, link.nacked = published, 0, set(), 0
        messages, built = _kept(published)
        ledger.keep(1, messages, built)
        return link

    def test_confirms_release_kept_messages_singly_and_in_ranges(self) -> None:
        ledger = _Ledger()
        link = self._link(ledger, 10)
        link._on_ack(3, False)
        link._on_ack(5, False)
        assert sorted(ledger.kept) == [1, 2, 4, 6, 7, 8, 9, 10]
        link._on_ack(4, True)  # 1..4; 5 was confirmed alone: the floor moves past it
        assert link.floor == 5
        assert sorted(ledger.kept) == [6, 7, 8, 9, 10]
        link._on_ack(10, True)
        assert (ledger.kept, ledger.size, link.floor) == ({}, 0, 10)
        assert ledger.refused == 0

    def test_nacks_release_and_count_refused_messages(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        ledger = _Ledger()
        link = self._link(ledger, 6)
        link._on_ack(2, True)
        link._on_nack(4, True)  # 3 and 4 refused
        link._on_nack(6, False)
        assert ledger.refused == 3
        assert link.nacked == 3
        assert sorted(ledger.kept) == [5]
        assert "refused 2 published message(s)" in caplog.text

    def test_stream_is_the_default_and_true_waits(self) -> None:
        kwdefaults = AMQPTransport.__init__.__kwdefaults__ or {}
        assert kwdefaults["confirm_publish"] == "stream"
