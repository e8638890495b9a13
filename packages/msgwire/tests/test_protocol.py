from __future__ import annotations

import base64
import contextlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgwire_strategies import json_values

from msgwire import (
    ContentDisallowedError,
    DecodeError,
    Embed,
    MalformedMessageError,
    SizeLimitError,
    TaskMessage,
    TimeLimit,
    WireMessage,
)

# The full message a Celery 5.6.2 client sent for
# add.apply_async((1, 1), link=add.s(10), link_error=fail.si('oops'), countdown=30,
#                 expires=120, priority=5, time_limit=60, soft_time_limit=50)
# as stored in Redis (PROTOCOL.md section 1.11).
OBSERVED_ENVELOPE = {
    "content-encoding": "utf-8",
    "content-type": "application/json",
    "headers": {
        "lang": "py",
        "task": "proj.add",
        "id": "fbbe5382-fd5c-4189-83dc-110a35fc8981",
        "shadow": None,
        "eta": "2026-11-21T05:21:41.352886+00:00",
        "expires": "2026-11-21T05:23:11.352886+00:00",
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [60, 50],
        "root_id": "fbbe5382-fd5c-4189-83dc-110a35fc8981",
        "parent_id": None,
        "argsrepr": "(1, 1)",
        "kwargsrepr": "{}",
        "origin": "gen10919@vm",
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    },
    "properties": {
        "correlation_id": "fbbe5382-fd5c-4189-83dc-110a35fc8981",
        "reply_to": "61dc23c2-46d2-358f-992d-3a937cc726a3",
        "delivery_mode": 2,
        "expiration": "120000",
        "delivery_info": {"exchange": "", "routing_key": "celery"},
        "priority": 5,
        "body_encoding": "base64",
        "delivery_tag": "a2c0c62c-43f5-4b6f-89e3-4626f5d82204",
    },
}
CALLBACK = {
    "task": "proj.add",
    "args": [10],
    "kwargs": {},
    "options": {},
    "subtask_type": None,
    "immutable": False,
}
ERRBACK = {
    "task": "proj.fail",
    "args": ["oops"],
    "kwargs": {},
    "options": {},
    "subtask_type": None,
    "immutable": True,
}
OBSERVED_BODY = [
    [1, 1],
    {},
    {"callbacks": [CALLBACK], "errbacks": [ERRBACK], "chain": None, "chord": None},
]
ENVELOPE_BODY = base64.b64encode(json.dumps(OBSERVED_BODY).encode()).decode()
OBSERVED_SENT_AT = datetime(2026, 11, 21, 5, 21, 11, 352886, tzinfo=timezone.utc)


def _properties(envelope: dict[str, Any]) -> dict[str, Any]:
    return {
        **envelope["properties"],
        "content_type": envelope["content-type"],
        "content_encoding": envelope["content-encoding"],
    }


def decode_observed() -> TaskMessage:
    return TaskMessage.decode(
        base64.b64decode(ENVELOPE_BODY),
        OBSERVED_ENVELOPE["headers"],
        _properties(OBSERVED_ENVELOPE),
    )


class TestObservedCeleryMessage:
    def test_every_field_of_the_observed_message_is_read(self) -> None:
        message = decode_observed()
        assert message.task == "proj.add"
        assert message.id == "fbbe5382-fd5c-4189-83dc-110a35fc8981"
        assert message.args == [1, 1]
        assert message.kwargs == {}
        assert message.embed == Embed(callbacks=[CALLBACK], errbacks=[ERRBACK])
        assert message.eta == OBSERVED_SENT_AT + timedelta(seconds=30)
        assert message.expires == OBSERVED_SENT_AT + timedelta(seconds=120)
        assert message.timelimit == TimeLimit(hard=60, soft=50)
        assert message.retries == 0
        assert message.root_id == message.id
        assert message.parent_id is None
        assert message.group is None
        assert message.group_index is None
        assert message.shadow is None
        assert message.origin == "gen10919@vm"
        assert message.argsrepr == "(1, 1)"
        assert message.kwargsrepr == "{}"
        assert message.ignore_result is False
        assert message.replaced_task_nesting == 0
        assert message.stamped_headers is None
        assert message.stamps == {}
        assert message.lang == "py"
        assert message.headers == {}
        assert message.correlation_id == message.id
        assert message.reply_to == "61dc23c2-46d2-358f-992d-3a937cc726a3"
        assert message.priority == 5
        assert message.delivery_mode == 2
        assert message.protocol == 2

    def test_msgwire_rebuilds_the_observed_message_field_by_field(self) -> None:
        message = TaskMessage(
            task="proj.add",
            id="fbbe5382-fd5c-4189-83dc-110a35fc8981",
            args=(1, 1),
            embed=Embed(callbacks=[CALLBACK], errbacks=[ERRBACK]),
            eta=OBSERVED_SENT_AT + timedelta(seconds=30),
            expires=OBSERVED_SENT_AT + timedelta(seconds=120),
            timelimit=TimeLimit(hard=60, soft=50),
            origin="gen10919@vm",
            reply_to="61dc23c2-46d2-358f-992d-3a937cc726a3",
            priority=5,
        )
        wire = message.encode(now=OBSERVED_SENT_AT)
        observed_headers = OBSERVED_ENVELOPE["headers"]
        assert list(wire.headers) == list(observed_headers)  # same keys, same order
        for name, value in observed_headers.items():
            assert wire.headers[name] == value, name
        observed_properties = OBSERVED_ENVELOPE["properties"]
        for name in (
            "correlation_id",
            "reply_to",
            "delivery_mode",
            "priority",
            "expiration",
        ):
            assert wire.properties[name] == observed_properties[name], name
        assert wire.properties["content_type"] == "application/json"
        assert wire.properties["content_encoding"] == "utf-8"
        assert json.loads(wire.body) == OBSERVED_BODY

    def test_the_minimal_message_a_celery_worker_accepts_is_read(self) -> None:
        body = json.dumps([[1, 2], {}, None]).encode()
        message = TaskMessage.decode(
            body,
            {"task": "proj.add", "id": "abc"},
            {"content_type": "application/json", "content_encoding": "utf-8"},
        )
        assert (message.task, message.id, message.args, message.kwargs) == (
            "proj.add",
            "abc",
            [1, 2],
            {},
        )
        assert message.embed == Embed()
        assert message.root_id is None
        assert message.reply_to == ""

    def test_an_eta_ending_in_z_is_utc(self) -> None:
        headers = {"task": "t", "id": "i", "eta": "2026-11-21T05:21:41Z"}
        message = TaskMessage.decode(
            b"[[], {}, {}]", headers, {"content_type": "application/json"}
        )
        assert message.eta == datetime(2026, 11, 21, 5, 21, 41, tzinfo=timezone.utc)

    def test_a_naive_eta_is_read_in_the_given_zone(self) -> None:
        zone = timezone(timedelta(hours=2))
        headers = {"task": "t", "id": "i", "eta": "2026-11-21T05:21:41"}
        message = TaskMessage.decode(
            b"[[], {}, {}]",
            headers,
            {"content_type": "application/json"},
            naive_tz=zone,
        )
        assert message.eta == datetime(2026, 11, 21, 5, 21, 41, tzinfo=zone)


JSON = {"content_type": "application/json", "content_encoding": "utf-8"}


class TestProtocolOne:
    def test_a_protocol_1_body_is_read_into_the_same_object(self) -> None:
        body = {
            "task": "proj.add",
            "id": "v1-id",
            "args": [2, 3],
            "kwargs": {"k": 1},
            "retries": 2,
            "eta": "2026-11-21T05:21:41.352886",
            "expires": None,
            "utc": True,
            "callbacks": [CALLBACK],
            "errbacks": None,
            "chord": None,
            "timelimit": [10, 5],
            "taskset": "group-1",
            "custom": "kept",
        }
        message = TaskMessage.decode(json.dumps(body).encode(), {}, JSON)
        assert message.protocol == 1
        assert (message.task, message.id, message.args, message.kwargs) == (
            "proj.add",
            "v1-id",
            [2, 3],
            {"k": 1},
        )
        assert message.retries == 2
        assert message.eta == datetime(
            2026, 11, 21, 5, 21, 41, 352886, tzinfo=timezone.utc
        )
        assert message.embed == Embed(callbacks=[CALLBACK])
        assert message.timelimit == TimeLimit(10, 5)
        assert message.group == "group-1"
        assert message.argsrepr == "[2, 3]"
        assert message.headers == {"custom": "kept"}

    def test_a_protocol_1_local_time_is_read_as_local_time(self) -> None:
        body = {"task": "t", "id": "i", "args": [], "kwargs": {}, "utc": False}
        body["eta"] = "2026-06-01T12:00:00"
        message = TaskMessage.decode(json.dumps(body).encode(), {}, JSON)
        assert message.eta == datetime(2026, 6, 1, 12, 0).astimezone()

    def test_a_hybrid_message_takes_headers_over_body_fields(self) -> None:
        body = {"task": "old", "id": "body-id", "args": [1], "kwargs": {}, "retries": 4}
        headers = {"task": "proj.add", "id": "header-id"}
        message = TaskMessage.decode(json.dumps(body).encode(), headers, JSON)
        assert (message.task, message.id, message.args, message.retries) == (
            "proj.add",
            "header-id",
            [1],
            4,
        )

    def test_protocol_1_kwargs_must_be_a_mapping(self) -> None:
        body = {"task": "t", "id": "i", "args": [], "kwargs": [1]}
        with pytest.raises(MalformedMessageError, match="kwargs must be an object"):
            TaskMessage.decode(json.dumps(body).encode(), {}, JSON)


def _decode(headers: dict[str, Any], body: Any = ([], {}, None)) -> TaskMessage:
    return TaskMessage.decode(json.dumps(body).encode(), headers, JSON)


class TestMalformed:
    @pytest.mark.parametrize(
        ("headers", "match"),
        [
            ({"task": "t"}, "required header 'id' is missing"),
            ({"task": "", "id": "i"}, "'task' must be a non-empty string"),
            ({"task": 5, "id": "i"}, "'task' must be a non-empty string"),
            (
                {"task": "t", "id": "i", "timelimit": [1]},
                r"'timelimit' must be \[hard, soft\]",
            ),
            ({"task": "t", "id": "i", "timelimit": ["a", 1]}, "numbers or nulls"),
            (
                {"task": "t", "id": "i", "retries": -1},
                "'retries' must be a non-negative",
            ),
            (
                {"task": "t", "id": "i", "retries": "1"},
                "'retries' must be a non-negative",
            ),
            ({"task": "t", "id": "i", "eta": "tomorrow"}, "'eta' must be an ISO-8601"),
            ({"task": "t", "id": "i", "expires": 5}, "'expires' must be an ISO-8601"),
            (
                {"task": "t", "id": "i", "group_index": "0"},
                "'group_index' must be an integer",
            ),
            ({"task": "t", "id": "i", "parent_id": 7}, "'parent_id' must be a string"),
            ({"task": "t", "id": "i", "stamps": []}, "'stamps' must be an object"),
            ({"task": "t", "id": "i", "stamped_headers": [1]}, "'stamped_headers'"),
        ],
    )
    def test_a_bad_header_is_named_with_its_value(
        self, headers: dict[str, Any], match: str
    ) -> None:
        with pytest.raises(MalformedMessageError, match=match):
            _decode(headers)

    @pytest.mark.parametrize(
        ("body", "match"),
        [
            ([[], {}], r"\[args, kwargs, embed\]"),
            ({"no": "task"}, r"\[args, kwargs, embed\]"),
            ([1, {}, None], "args must be a list"),
            ([[], [], None], "kwargs must be an object"),
            ([[], {}, 5], "embed"),
            ([[], {}, {"callbacks": 1}], "'callbacks' must be a list"),
            ([[], {}, {"chord": []}], "'chord' must be a signature"),
        ],
    )
    def test_a_bad_body_shape_is_explained(self, body: Any, match: str) -> None:
        with pytest.raises(MalformedMessageError, match=match):
            _decode({"task": "t", "id": "i"}, body)

    def test_a_body_with_no_task_anywhere_is_not_a_task_message(self) -> None:
        with pytest.raises(MalformedMessageError, match="not a task message"):
            _decode({}, [1, 2, 3])

    def test_headers_that_are_not_a_mapping_are_refused(self) -> None:
        with pytest.raises(MalformedMessageError, match="headers must be a mapping"):
            TaskMessage.decode(b"[]", [("task", "t")], JSON)  # type: ignore[arg-type]

    def test_a_disallowed_content_type_is_refused_before_decoding(self) -> None:
        with pytest.raises(ContentDisallowedError):
            TaskMessage.decode(
                b"\x80garbage",
                {"task": "t", "id": "i"},
                {"content_type": "application/x-python-serialize"},
            )

    def test_a_compression_bomb_in_a_task_message_is_refused(self) -> None:
        import zlib

        body = zlib.compress(b" " * 200_000_000)
        headers = {"task": "t", "id": "i", "compression": "application/x-gzip"}
        with pytest.raises(SizeLimitError):
            TaskMessage.decode(body, headers, JSON)

    @given(
        st.binary(max_size=300),
        st.dictionaries(
            st.sampled_from(["task", "id", "eta", "retries", "timelimit"]), json_values
        ),
        st.sampled_from(
            ["application/json", "application/x-msgpack", "application/x-yaml"]
        ),
    )
    def test_any_garbage_is_read_or_refused_with_decode_error(
        self, body: bytes, headers: dict[str, Any], content_type: str
    ) -> None:
        with contextlib.suppress(DecodeError):
            TaskMessage.decode(
                body,
                headers,
                {"content_type": content_type},
                accept=["json", "msgpack", "yaml"],
            )


class TestEncode:
    def test_headers_follow_celerys_order_and_timelimit_is_hard_then_soft(self) -> None:
        wire = TaskMessage.new(
            "t", (1,), timelimit=TimeLimit(hard=30, soft=20)
        ).encode()
        assert wire.headers["timelimit"] == [30, 20]
        assert list(wire.headers)[:4] == ["lang", "task", "id", "shadow"]
        assert wire.headers["root_id"] == wire.headers["id"]
        assert wire.headers["origin"].startswith("gen")
        assert wire.properties["priority"] == 0
        assert "expiration" not in wire.properties

    def test_argsrepr_is_truncated_to_1024_characters(self) -> None:
        wire = TaskMessage.new("t", ("x" * 5000,), kwargs={"k": "y" * 5000}).encode()
        assert len(wire.headers["argsrepr"]) <= 1024 + 10
        assert wire.headers["argsrepr"].endswith("...',)")
        assert len(wire.headers["kwargsrepr"]) <= 1024 + 10

    def test_custom_headers_travel_but_cannot_replace_protocol_headers(self) -> None:
        message = TaskMessage.new("t", headers={"tenant": "acme", "task": "evil"})
        wire = message.encode()
        assert wire.headers["tenant"] == "acme"
        assert wire.headers["task"] == "t"
        decoded = TaskMessage.decode(wire.body, wire.headers, wire.properties)
        assert decoded.headers == {"tenant": "acme"}

    def test_expiration_is_milliseconds_until_expires_and_never_negative(self) -> None:
        now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        soon = TaskMessage.new("t", expires=now + timedelta(seconds=1.5)).encode(
            now=now
        )
        assert soon.properties["expiration"] == "1500"
        past = TaskMessage.new("t", expires=now - timedelta(seconds=5)).encode(now=now)
        assert past.properties["expiration"] == "0"

    def test_compression_sets_the_header_and_round_trips(self) -> None:
        wire = TaskMessage.new("t", ("x" * 1000,)).encode(compression="bzip2")
        assert wire.headers["compression"] == "application/x-bz2"
        assert len(wire.body) < 500
        assert TaskMessage.decode(wire.body, wire.headers, wire.properties).args == [
            "x" * 1000
        ]

    def test_args_must_be_a_list_or_tuple(self) -> None:
        with pytest.raises(TypeError, match="args must be a list or tuple"):
            TaskMessage.new("t", "abc").encode()  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="mapping"):
            TaskMessage.new("t", kwargs=[1]).encode()  # type: ignore[arg-type]

    @pytest.mark.parametrize("serializer", ["json", "msgpack", "yaml", "pickle"])
    def test_round_trip_with_each_serializer(self, serializer: str) -> None:
        message = TaskMessage.new(
            "proj.add",
            (1, "two", 3.0),
            {"when": datetime(2026, 1, 1, tzinfo=timezone.utc)},
            eta=datetime(2026, 1, 1, tzinfo=timezone.utc),
            retries=3,
            group="g",
            group_index=1,
            parent_id="p",
            stamped_headers=["s"],
            stamps={"s": "v"},
            embed=Embed(chain=[CALLBACK], chord=ERRBACK),
            priority=9,
            ignore_result=True,
        )
        wire = message.encode(serializer=serializer)
        decoded = TaskMessage.decode(
            wire.body, wire.headers, wire.properties, accept=[serializer]
        )
        assert decoded.args == [1, "two", 3.0]
        assert decoded.kwargs == message.kwargs
        for name in (
            "task", "id", "eta", "retries", "group", "group_index", "parent_id",
            "stamped_headers", "stamps", "embed", "priority", "ignore_result",
        ):  # fmt: skip
            assert getattr(decoded, name) == getattr(message, name), name

    @given(st.lists(json_values, max_size=5), st.dictionaries(st.text(), json_values))
    def test_any_json_arguments_round_trip(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        wire = TaskMessage.new("t", args, kwargs).encode()
        assert isinstance(wire, WireMessage)
        decoded = TaskMessage.decode(wire.body, wire.headers, wire.properties)
        assert (decoded.args, decoded.kwargs) == (args, kwargs)


def test_decoding_sets_every_field_of_the_message() -> None:
    """The decoder fills fields one by one; a field it forgot would be unset."""
    from dataclasses import fields

    wire = TaskMessage.new("t", (1,)).encode()
    decoded = TaskMessage.decode(wire.body, wire.headers, wire.properties)
    for field in fields(TaskMessage):
        getattr(decoded, field.name)
    assert decoded == TaskMessage.decode(wire.body, wire.headers, wire.properties)
