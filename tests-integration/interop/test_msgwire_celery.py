"""msgwire reads the task messages Celery builds and repr's arguments as Celery does.

Celery is installed only in the ``interop`` nox session's virtualenv; these
tests use its message builder and its saferepr directly, with no broker.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from celery import Celery
from celery.utils.saferepr import saferepr as celery_saferepr
from hypothesis import given
from hypothesis import strategies as st
from kombu import serialization as kombu_serialization

from msgwire import Embed, TaskMessage, TimeLimit, saferepr

app = Celery("interop", set_as_current=False)


@app.task(name="proj.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="proj.fail")
def fail(message: str) -> None:
    raise ValueError(message)


def celery_wire(
    compression: str | None = None, **options: Any
) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """Build a message with Celery's own code and serialize it as kombu would."""
    message = app.amqp.as_task_v2(**options)
    content_type, encoding, body = kombu_serialization.dumps(
        message.body, serializer="json"
    )
    data = body if isinstance(body, bytes) else body.encode()
    headers = dict(message.headers)
    if compression:
        from kombu import compression as kombu_compression

        data, headers["compression"] = kombu_compression.compress(data, compression)
    properties = {
        **message.properties,
        "content_type": content_type,
        "content_encoding": encoding,
    }
    return data, headers, properties


@pytest.mark.parametrize("compression", [None, "zlib", "bzip2"])
def test_a_message_celery_builds_is_read_field_by_field(
    compression: str | None,
) -> None:
    now = datetime(2026, 11, 21, 5, 21, 11, tzinfo=timezone.utc)
    link = add.s(10)
    link_error = fail.si("oops")
    body, headers, properties = celery_wire(
        compression,
        task_id="fbbe5382-fd5c-4189-83dc-110a35fc8981",
        name="proj.add",
        args=(1, 1),
        kwargs={"k": Decimal("1.5")},
        countdown=30,
        expires=120,
        now=now,
        time_limit=60,
        soft_time_limit=50,
        callbacks=[link],
        errbacks=[link_error],
        group_id="g",
        group_index=3,
        retries=2,
        root_id="root",
        parent_id="parent",
        reply_to="oid",
        origin="gen1@vm",
    )
    message = TaskMessage.decode(body, headers, properties)
    assert message.task == "proj.add"
    assert message.id == "fbbe5382-fd5c-4189-83dc-110a35fc8981"
    assert message.args == [1, 1]
    assert message.kwargs == {"k": Decimal("1.5")}
    assert message.eta == now + timedelta(seconds=30)
    assert message.expires == now + timedelta(seconds=120)
    assert message.timelimit == TimeLimit(hard=60, soft=50)
    assert message.retries == 2
    assert (message.group, message.group_index) == ("g", 3)
    assert (message.root_id, message.parent_id) == ("root", "parent")
    assert message.reply_to == "oid"
    assert message.origin == "gen1@vm"
    assert message.argsrepr == headers["argsrepr"]
    # Signatures hold tuples until they are serialized.
    content_type, encoding, data = kombu_serialization.dumps([link, link_error], "json")
    expected = kombu_serialization.loads(
        data, content_type, encoding, accept=["application/json"]
    )
    assert message.embed == Embed(callbacks=[expected[0]], errbacks=[expected[1]])


def test_celery_decodes_the_body_and_headers_we_write() -> None:
    message = TaskMessage.new(
        "proj.add",
        (2, 3),
        {"d": datetime(2026, 1, 1, tzinfo=timezone.utc)},
        timelimit=TimeLimit(30, 20),
        embed=Embed(callbacks=[dict(add.s(1))]),
    )
    wire = message.encode()
    args, kwargs, embed = kombu_serialization.loads(
        wire.body,
        wire.properties["content_type"],
        wire.properties["content_encoding"],
        accept=["application/json"],
    )
    assert (args, kwargs) == ([2, 3], message.kwargs)
    assert embed["callbacks"][0]["task"] == "proj.add"
    # What Celery's worker reads from the headers.
    assert wire.headers["timelimit"] == [30, 20]
    assert wire.headers["argsrepr"] == celery_saferepr((2, 3), 1024)
    assert wire.headers["kwargsrepr"] == celery_saferepr(message.kwargs, 1024)


reprable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(alphabet=st.characters(codec="utf-8"))
    | st.binary(max_size=20)
    | st.decimals(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=6)
        | st.tuples(children)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
        | st.frozensets(st.integers(), max_size=3)
        | st.sets(st.text(max_size=3), max_size=3)
    ),
    max_leaves=25,
)


@given(reprable, st.integers(min_value=1, max_value=300) | st.none())
def test_saferepr_matches_celerys(value: Any, maxlen: int | None) -> None:
    assert saferepr(value, maxlen) == celery_saferepr(value, maxlen)


@given(st.lists(reprable, max_size=8).map(tuple), st.dictionaries(st.text(), reprable))
def test_argsrepr_and_kwargsrepr_match_celerys(
    args: tuple[Any, ...], kwargs: Any
) -> None:
    assert saferepr(args, 1024) == celery_saferepr(args, 1024)
    assert saferepr(kwargs, 1024) == celery_saferepr(kwargs, 1024)
