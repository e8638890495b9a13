from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import pools_helpers as h
import pytest

import pools
from pools import (
    MissingDriverError,
    Pool,
    PoolConflictError,
    PoolError,
    UnknownPoolError,
    _registry,
    create_pool,
)


def test_every_builtin_kind_is_registered() -> None:
    assert set(pools.available_pools()) >= {
        "prefork",
        "threads",
        "solo",
        "asyncio",
        "gevent",
        "eventlet",
    }


@pytest.mark.parametrize("kind", ["threads", "solo", "asyncio", "prefork"])
def test_each_kind_is_an_executor_running_the_same_call(kind: str) -> None:
    with create_pool(kind, size=1) as pool:
        assert isinstance(pool, Pool)
        assert pool.kind == kind
        assert pool.submit(h.add, 2, 3).result(10) == 5


def test_unknown_kind_names_the_closest_and_the_installed_ones() -> None:
    with pytest.raises(UnknownPoolError) as caught:
        create_pool("prefrok")
    message = str(caught.value)
    assert "unknown pool 'prefrok'; did you mean 'prefork'?" in message
    assert "threads" in message
    assert isinstance(caught.value, ValueError)


def test_kinds_resolve_lazily_and_are_cached() -> None:
    script = (
        "import sys, pools; "
        "assert 'pools._threads' not in sys.modules; "
        "assert 'gevent' not in sys.modules; "
        "cls = pools.pool_class('threads'); "
        "assert pools.pool_class('threads') is cls is pools.ThreadsPool; "
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    script = (
        "import sys; sys.modules['gevent'] = None; import pools\n"
        "try:\n    pools.create_pool('gevent')\n"
        "except pools.MissingDriverError as exc:\n    print(exc)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "pip install 'pools[gevent]'" in out.stdout, out.stderr
    monkeypatch.setitem(sys.modules, "eventlet", None)
    with pytest.raises(MissingDriverError, match=r"pools\[eventlet\]"):
        pools.monkey_patch("eventlet")


def test_two_distributions_claiming_a_kind_are_both_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eps = [
        EntryPoint("dupe", "one.pools:OnePool", _registry.GROUP),
        EntryPoint("dupe", "two.pools:TwoPool", _registry.GROUP),
    ]
    monkeypatch.setattr(_registry, "_unique", lambda name=None: eps)
    with pytest.raises(
        PoolConflictError, match=r"one\.pools:OnePool; .*two\.pools:TwoPool"
    ):
        _registry.pool_class("dupe")


def test_an_entry_point_that_is_not_a_pool_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eps = [EntryPoint("odd", "pools_helpers:add", _registry.GROUP)]
    monkeypatch.setattr(_registry, "_unique", lambda name=None: eps)
    with pytest.raises(PoolError, match=r"not a pools\.Pool subclass"):
        _registry.pool_class("odd")


def test_monkey_patch_is_a_no_op_for_plain_kinds_and_rejects_unknown_ones() -> None:
    assert pools.monkey_patch("threads") is False
    with pytest.raises(UnknownPoolError, match="did you mean 'gevent'"):
        pools.monkey_patch("gevnet")


def test_unknown_attribute_of_the_package() -> None:
    with pytest.raises(AttributeError, match="NoSuchPool"):
        pools.NoSuchPool  # noqa: B018 - the access is the test


class TestBadOptions:
    @pytest.mark.parametrize(
        ("options", "error", "match"),
        [
            ({"size": -1}, ValueError, "size must be a positive integer, not -1"),
            ({"size": 0}, ValueError, "size must be a positive integer, not 0"),
            ({"size": "4"}, TypeError, "size must be a positive integer, not '4'"),
            (
                {"soft_time_limit": -2},
                ValueError,
                "soft_time_limit must be a positive number",
            ),
            ({"time_limit": "10"}, TypeError, "time_limit must be a number of seconds"),
            ({"time_limit": float("inf")}, ValueError, "time_limit must be a positive"),
            (
                {"soft_time_limit": 5, "time_limit": 1},
                ValueError,
                "longer than time_limit",
            ),
            (
                {"max_tasks_per_child": 0},
                ValueError,
                "max_tasks_per_child must be a positive",
            ),
            (
                {"initializer": 3},
                TypeError,
                "initializer must be callable or None, not 3",
            ),
        ],
    )
    def test_bad_options_are_refused_with_the_value(
        self, options: dict[str, object], error: type[Exception], match: str
    ) -> None:
        with pytest.raises(error, match=match):
            create_pool("threads", **options)  # type: ignore[arg-type]

    def test_non_callable_and_non_string_kind(self) -> None:
        with (
            create_pool("threads", size=1) as pool,
            pytest.raises(TypeError, match="42 is not callable"),
        ):
            pool.submit(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="kind must be a pool name"):
            create_pool(3)  # type: ignore[arg-type]

    def test_an_option_of_another_kind_is_refused(self) -> None:
        with pytest.raises(TypeError, match="start_method"):
            create_pool("threads", start_method="fork")
