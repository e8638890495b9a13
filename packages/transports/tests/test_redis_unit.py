"""The Redis transport without a server: URLs, envelopes, masking, the driver."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from typing import Any

import pytest

pytest.importorskip("redis")

from transports import InvalidURLError, MissingDriverError, connect
from transports._redis import (
    EXPIRES_PROPERTY,
    RedisTransport,
    _kombu_pattern,
    _mask_query,
    decode_envelope,
    encode_envelope,
    parse_url,
    step_of,
)
from transports.base import Outgoing

# A message as kombu 5.x stores it (PROTOCOL.md section 1.11), captured form.
KOMBU_ENVELOPE: dict[str, Any] = {
    "body": "W1sxLCAxXSwge30sIG51bGxd",
    "content-encoding": "utf-8",
    "content-type": "application/json",
    "headers": {"lang": "py", "task": "proj.add", "id": "fbbe5382", "retries": 0},
    "properties": {
        "correlation_id": "fbbe5382",
        "reply_to": "61dc23c2",
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": "celery"},
        "priority": 5,
        "body_encoding": "base64",
        "delivery_tag": "a2c0c62c-43f5-4b6f-89e3-4626f5d82204",
    },
}


class TestURLs:
    def test_redis_url_with_password_and_db(self) -> None:
        parsed = parse_url("redis://:pw@example.org:6380/3")
        assert (parsed.scheme, parsed.password, parsed.db) == ("redis", "pw", 3)
        assert parsed.options["host"] == "example.org"
        assert parsed.options["port"] == 6380

    def test_rediss_takes_ssl_options_from_the_query(self) -> None:
        parsed = parse_url(
            "rediss://h:6390/0?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem"
            "&ssl_check_hostname=false&global_keyprefix=app1:"
        )
        assert parsed.client_url.startswith("rediss://")
        assert parsed.options["ssl_cert_reqs"] == "required"
        assert parsed.options["ssl_ca_certs"] == "/ca.pem"
        assert parsed.options["ssl_check_hostname"] is False
        assert parsed.ours == {"global_keyprefix": "app1:"}

    def test_a_unix_socket_url(self) -> None:
        parsed = parse_url("redis+socket:///var/run/redis.sock?db=2")
        assert parsed.client_url == "unix:///var/run/redis.sock"
        assert parsed.options["path"] == "/var/run/redis.sock"
        assert parsed.db == 2

    @pytest.mark.parametrize(
        "url",
        [
            "sentinel://:pw@h1:26379,h2:26380/1?master_name=mymaster",
            "sentinel://:pw@h1:26379;sentinel://h2:26380/1?master_name=mymaster",
        ],
    )
    def test_sentinel_urls_list_every_sentinel(self, url: str) -> None:
        parsed = parse_url(url)
        assert parsed.sentinels == [("h1", 26379), ("h2", 26380)]
        assert (parsed.password, parsed.db) == ("pw", 1)
        assert parsed.ours == {"master_name": "mymaster"}

    def test_sentinel_own_password_and_tls_options(self) -> None:
        parsed = parse_url(
            "sentinel://h1:26379/0?master_name=m&sentinel_password=spw"
            "&sentinel_ssl=true&ssl=true&ssl_cert_reqs=none"
        )
        assert parsed.sentinel_options == {"password": "spw", "ssl": True}
        assert parsed.options == {"ssl": True, "ssl_cert_reqs": "none"}

    def test_a_sentinel_url_needs_a_master_name(self) -> None:
        with pytest.raises(InvalidURLError, match="master_name"):
            connect("sentinel://127.0.0.1:26379")

    def test_a_sentinel_url_opens_without_connecting(self) -> None:
        transport = connect(
            "sentinel://:master-pw@127.0.0.1:1/0?master_name=m&sentinel_password=spw"
        )
        assert isinstance(transport, RedisTransport)
        assert transport.master_name == "m"
        assert "master-pw" not in repr(transport)
        assert "spw" not in repr(transport)
        transport.close()

    @pytest.mark.parametrize(
        "url", ["redis://h:notaport/0", "sentinel://h:x/0?master_name=m"]
    )
    def test_bad_urls_are_refused(self, url: str) -> None:
        with pytest.raises(InvalidURLError):
            connect(url)

    def test_bad_options_are_refused(self) -> None:
        with pytest.raises(InvalidURLError, match="heartbeat_ttl"):
            connect("redis://h/0", heartbeat_interval=2.0, heartbeat_ttl=3.0)
        with pytest.raises(InvalidURLError, match="priority_steps"):
            connect("redis://h/0", priority_steps=(1, 5))

    def test_passwords_are_masked_in_reprs_and_query(self) -> None:
        transport = connect("redis://user:hunter2@127.0.0.1:1/0")
        assert "hunter2" not in repr(transport)
        assert transport._secrets == ("hunter2",)
        transport.close()
        assert _mask_query("sentinel://h/0?sentinel_password=x&a=1") == (
            "sentinel://h/0?sentinel_password=***&a=1"
        )

    def test_the_global_keyprefix_comes_from_the_query_or_the_option(self) -> None:
        with connect("redis://127.0.0.1:1/0?global_keyprefix=app1:") as transport:
            assert transport.global_keyprefix == "app1:"  # type: ignore[attr-defined]
            assert transport._list_keys("q") == (  # type: ignore[attr-defined]
                b"app1:q",
                b"app1:q\x06\x163",
                b"app1:q\x06\x166",
                b"app1:q\x06\x169",
            )
            assert transport._channel("celeryev", "worker.heartbeat") == (  # type: ignore[attr-defined]
                "app1:/0.celeryev/worker.heartbeat"
            )


class TestEnvelope:
    def test_our_envelope_has_kombus_shape(self) -> None:
        message = Outgoing(
            "celery",
            b"\x00\xffbody",
            "",
            {"task": "proj.add"},
            {"content_type": "application/json", "correlation_id": "c1"},
            priority=7,
            delay=None,
            ttl=None,
        )
        document = json.loads(encode_envelope(message, "tag-1", expires_at=12.5))
        assert set(document) == {
            "body",
            "content-encoding",
            "content-type",
            "headers",
            "properties",
        }
        assert document["content-type"] == "application/json"
        assert document["headers"] == {"task": "proj.add"}
        assert document["properties"] == {
            "correlation_id": "c1",
            "delivery_tag": "tag-1",
            "delivery_info": {"exchange": "", "routing_key": "celery"},
            "priority": 7,
            "body_encoding": "base64",
            EXPIRES_PROPERTY: 12.5,
        }

    def test_a_round_trip_keeps_body_headers_and_properties(self) -> None:
        message = Outgoing(
            "q", bytes(range(256)), "ex", {"n": [1, {"a": None}]}, {"reply_to": "r"},
            priority=3, delay=None, ttl=None,
        )  # fmt: skip
        envelope = decode_envelope(encode_envelope(message, "t"))
        assert envelope.body == bytes(range(256))
        assert envelope.headers == {"n": [1, {"a": None}]}
        assert envelope.properties == {"reply_to": "r", "priority": 3}
        assert (envelope.exchange, envelope.routing_key) == ("ex", "q")
        assert (envelope.tag, envelope.priority, envelope.redelivered) == (
            "t",
            3,
            False,
        )

    def test_kombus_envelope_reads_as_sent(self) -> None:
        envelope = decode_envelope(json.dumps(KOMBU_ENVELOPE).encode())
        assert envelope.body == b"[[1, 1], {}, null]"
        assert envelope.headers["task"] == "proj.add"
        assert envelope.properties == {
            "correlation_id": "fbbe5382",
            "reply_to": "61dc23c2",
            "delivery_mode": 2,
            "priority": 5,
            "content_type": "application/json",
            "content_encoding": "utf-8",
        }
        assert envelope.tag == "a2c0c62c-43f5-4b6f-89e3-4626f5d82204"

    def test_kombus_redelivered_flag_is_seen(self) -> None:
        document = json.loads(json.dumps(KOMBU_ENVELOPE))
        document["properties"]["delivery_info"]["redelivered"] = True
        assert decode_envelope(json.dumps(document).encode()).redelivered

    def test_a_utf8_body_encoding_is_read_as_text(self) -> None:
        document = dict(KOMBU_ENVELOPE, body="plain text")
        document["properties"] = dict(
            KOMBU_ENVELOPE["properties"], body_encoding="utf-8"
        )
        assert decode_envelope(json.dumps(document).encode()).body == b"plain text"

    @pytest.mark.parametrize(
        "raw",
        [
            b"{not json",
            b"[1, 2]",
            b'{"properties": 3}',
            b'{"properties": {}, "body": 5}',
        ],
    )
    def test_malformed_envelopes_raise_value_error(self, raw: bytes) -> None:
        with pytest.raises(ValueError, match=r"JSON|object|string"):
            decode_envelope(raw)


class TestLayout:
    @pytest.mark.parametrize(
        ("priority", "step"),
        [(0, 0), (2, 0), (3, 3), (5, 3), (6, 6), (8, 6), (9, 9)],
    )
    def test_priorities_map_to_kombus_steps(self, priority: int, step: int) -> None:
        assert step_of(priority, (0, 3, 6, 9)) == step

    def test_topic_bindings_store_kombus_regex(self) -> None:
        assert _kombu_pattern("topic", "worker.#") == r"^worker\..*?$"
        assert _kombu_pattern("topic", "a.*.b-c") == r"^a\..*?[^\.]\.b\-c$"
        assert _kombu_pattern("direct", "a.b") == ""

    def test_capabilities_are_what_the_transport_does(self) -> None:
        with connect("redis://127.0.0.1:1/0", priority_steps=(0, 5)) as transport:
            caps = transport.capabilities
            assert caps.priority_levels == 2
            assert caps.delayed_delivery
            assert caps.leases
            assert caps.dead_lettering
            assert caps.fanout
            assert caps.topic
            assert caps.message_ttl
            assert not caps.quorum_queues


def test_a_missing_driver_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "from transports import MissingDriverError\n"
        "try:\n"
        "    import transports._redis\n"
        "except MissingDriverError as exc:\n"
        "    print(exc)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'transports[redis]'" in output


def test_the_missing_driver_error_pickles() -> None:
    error = MissingDriverError("redis", "redis")
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
