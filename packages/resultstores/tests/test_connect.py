"""connect(), URL handling, the document layout and the exception policy."""

from __future__ import annotations

import json
import logging
import sys

import pytest

import resultstores
from resultstores import (
    ExceptionPolicy,
    InvalidURLError,
    MissingDriverError,
    RemoteTaskError,
    ResultStoreConnectionError,
    TaskInfo,
    UnknownSchemeError,
    connect,
    mask_url,
    resolve,
)
from resultstores._memory import MemoryResultStore
from resultstores._meta import build_document


class TestResolve:
    def test_builtin_schemes_resolve_through_entry_points(self) -> None:
        assert resolve("memory://") is MemoryResultStore
        assert resolve("sqlite:///x.db").__name__ == "SQLAlchemyResultStore"
        assert (
            resolve("sqlalchemy+postgresql://u@h/db").__name__
            == "SQLAlchemyResultStore"
        )

    def test_an_unknown_scheme_suggests_the_closest_installed(self) -> None:
        with pytest.raises(UnknownSchemeError) as caught:
            connect("memcache://127.0.0.1")
        message = str(caught.value)
        assert "unknown result store scheme 'memcache'" in message
        assert "did you mean 'memcached'?" in message
        assert "installed: " in message
        assert "redis" in message

    @pytest.mark.parametrize("url", ["", "localhost:6379", "://x", "1redis://h"])
    def test_a_url_without_a_scheme_is_refused_by_name(self, url: str) -> None:
        with pytest.raises(InvalidURLError, match="invalid result store URL"):
            connect(url)

    def test_a_non_string_url_is_refused(self) -> None:
        with pytest.raises(InvalidURLError, match="must be a str"):
            connect(6379)  # type: ignore[arg-type]

    def test_a_bad_option_value_names_the_option(self) -> None:
        with pytest.raises(
            InvalidURLError, match=r"option expires='soon'.*number of seconds"
        ):
            connect("memory://", expires="soon")

    def test_a_missing_driver_names_the_extra(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "pymemcache", None)
        monkeypatch.delitem(sys.modules, "resultstores._memcached", raising=False)
        from resultstores import _registry

        monkeypatch.setattr(_registry, "_cache", {})
        with pytest.raises(
            MissingDriverError, match=r"pip install 'resultstores\[memcached\]'"
        ):
            connect("memcached://127.0.0.1:11211")


class TestMasking:
    @pytest.mark.parametrize(
        ("url", "masked"),
        [
            ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
            ("postgresql://user:pw@h/db", "postgresql://user:***@h/db"),
            ("sentinel://:pw@h1:26379,h2:26379", "sentinel://:***@h1:26379,h2:26379"),
            (
                "sentinel://:a@h1;sentinel://:b@h2",
                "sentinel://:***@h1;sentinel://:***@h2",
            ),
            ("redis://h:6379/0", "redis://h:6379/0"),
        ],
    )
    def test_passwords_never_show(self, url: str, masked: str) -> None:
        assert mask_url(url) == masked

    def test_reprs_and_connection_errors_hide_the_password(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        pytest.importorskip("sqlalchemy")
        pytest.importorskip("psycopg")
        store_url = "postgresql://user:hunter2@127.0.0.1:9/db"
        caplog.set_level(logging.WARNING)
        with pytest.raises(ResultStoreConnectionError) as caught:
            connect(store_url, max_retries=1, retry_backoff_max=0.01)
        assert "hunter2" not in str(caught.value)
        assert "***" in str(caught.value)
        assert "hunter2" not in caplog.text


class TestDocument:
    def test_fields_are_in_celerys_order(self) -> None:
        info = TaskInfo(name="proj.add", args=[1, 2], kwargs={"k": "v"}, worker="w1@vm",
                        retries=0, queue="celery", group_id="g9",
                        parent_id="p1")  # fmt: skip
        document = build_document("ext1", "SUCCESS", 3, None, info, None)
        assert list(document) == [
            "status", "result", "traceback", "children", "date_done", "group_id",
            "parent_id", "name", "args", "kwargs", "worker", "retries", "queue",
            "task_id",
        ]  # fmt: skip

    def test_a_plain_success_has_only_celerys_fields(self) -> None:
        document = build_document("fa88", "SUCCESS", 5, None, None, None)
        text = json.dumps(document)
        assert text.startswith(
            '{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], '
            '"date_done": "'
        )
        assert text.endswith('+00:00", "task_id": "fa88"}')

    def test_date_done_is_set_only_for_ready_states(self) -> None:
        assert (
            build_document("t", "STARTED", None, None, None, None)["date_done"] is None
        )
        assert build_document("t", "RETRY", None, None, None, None)["date_done"] is None
        assert (
            build_document("t", "REVOKED", None, None, None, None)["date_done"]
            is not None
        )

    def test_exceptions_are_encoded_as_celery_encodes_them(self) -> None:
        store = connect("memory://")
        assert store._encode_result("FAILURE", ValueError("boom", object)) == {
            "exc_type": "ValueError",
            "exc_message": ["boom", repr(object)],
            "exc_module": "builtins",
        }


class TestExceptionPolicy:
    def test_builtins_are_rebuilt(self) -> None:
        rebuilt = ExceptionPolicy().rebuild(
            {"exc_type": "KeyError", "exc_message": ["k"], "exc_module": "builtins"},
            None,
        )
        assert type(rebuilt) is KeyError
        assert rebuilt.args == ("k",)

    def test_a_listed_package_allows_its_submodules(self) -> None:
        policy = ExceptionPolicy(["json"])
        rebuilt = policy.rebuild(
            {
                "exc_type": "JSONDecodeError",
                "exc_message": ["m", "d", 0],
                "exc_module": "json.decoder",
            },
            None,
        )
        assert type(rebuilt).__name__ == "JSONDecodeError"

    def test_an_unlisted_module_is_never_imported(self) -> None:
        sys.modules.pop("antigravity", None)
        wrapped = ExceptionPolicy().rebuild(
            {"exc_type": "Fly", "exc_message": "up", "exc_module": "antigravity"}, "TB"
        )
        assert isinstance(wrapped, RemoteTaskError)
        assert wrapped.exc_message == ("up",)
        assert "antigravity" not in sys.modules

    def test_a_missing_class_or_a_refusing_constructor_is_wrapped(self) -> None:
        policy = ExceptionPolicy()
        missing = policy.rebuild(
            {"exc_type": "NoSuchError", "exc_message": [], "exc_module": "builtins"},
            None,
        )
        assert isinstance(missing, RemoteTaskError)
        assert "not an exception class" in str(missing)
        refused = policy.rebuild(
            {
                "exc_type": "UnicodeDecodeError",
                "exc_message": ["only one"],
                "exc_module": "builtins",
            },
            None,
        )
        assert isinstance(refused, RemoteTaskError)
        assert "constructor refused" in str(refused)

    def test_the_package_exports_what_it_documents(self) -> None:
        for name in resultstores.__all__:
            assert hasattr(resultstores, name), name


def test_fractional_seconds_options_keep_their_fraction() -> None:
    """A backoff cap of 0.5 s must not become 0 (every retry would be immediate)."""
    store = connect("memory://", retry_backoff_max=0.5, poll_interval=0.25, expires=1.5)
    assert store.retry_backoff_max == 0.5
    assert store.poll_interval == 0.25
    assert store.expires == 1.5
