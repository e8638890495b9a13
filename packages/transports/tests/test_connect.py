"""connect(), scheme resolution, URL forms and password masking."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

import transports
from transports import (
    InvalidURLError,
    MissingDriverError,
    TransportConnectionError,
    UnknownSchemeError,
    connect,
    mask_url,
    resolve,
)
from transports._memory import MemoryTransport
from transports._sqlalchemy import SQLAlchemyTransport, sqlalchemy_url


class TestResolve:
    def test_builtin_schemes_resolve_to_their_classes(self) -> None:
        assert resolve("memory://") is MemoryTransport
        for url in (
            "sqlite:///x.db",
            "postgresql://u@h/db",
            "postgres://u@h/db",
            "mysql://u@h/db",
            "mariadb://u@h/db",
            "sqlalchemy+sqlite:///x.db",
            "SQLite:///x.db",
        ):
            assert resolve(url) is SQLAlchemyTransport, url

    def test_an_unknown_scheme_names_the_closest_and_the_installed(self) -> None:
        with pytest.raises(UnknownSchemeError) as info:
            connect("memroy://")
        message = str(info.value)
        assert "did you mean 'memory'?" in message
        assert "installed: " in message
        assert "sqlite" in message
        assert isinstance(info.value, ValueError)

    @pytest.mark.parametrize("url", ["", "localhost:6379", "://x", 42, "1abc://x"])
    def test_a_malformed_url_is_refused_with_an_example(self, url: object) -> None:
        with pytest.raises(InvalidURLError, match=r"sqlite:///broker\.db"):
            connect(url)  # type: ignore[arg-type]


class TestSQLAlchemyURLs:
    def test_bare_urls_choose_the_documented_drivers(self) -> None:
        assert sqlalchemy_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
        assert sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
        assert (
            sqlalchemy_url("mysql://root@h:3306/t") == "mysql+pymysql://root@h:3306/t"
        )
        assert sqlalchemy_url("mariadb://root@h/t") == "mariadb+pymysql://root@h/t"
        assert (
            sqlalchemy_url("sqlalchemy+postgresql+psycopg2://u@h/db")
            == "postgresql+psycopg2://u@h/db"
        )
        assert sqlalchemy_url("sqlite:////abs/b.db") == "sqlite:////abs/b.db"

    def test_an_in_memory_sqlite_url_is_refused(self) -> None:
        with pytest.raises(InvalidURLError, match="memory://"):
            connect("sqlite://")

    @pytest.mark.parametrize(
        ("url", "module", "extra"),
        [
            ("postgresql://u@127.0.0.1/db", "psycopg", "postgresql"),
            ("mysql://u@127.0.0.1/db", "pymysql", "mysql"),
        ],
    )
    def test_a_missing_driver_names_the_extra(
        self, monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str
    ) -> None:
        monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
        with pytest.raises(MissingDriverError, match=rf"transports\[{extra}\]"):
            connect(url)

    def test_a_bad_table_prefix_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidURLError, match="table_prefix='x; drop'"):
            connect(f"sqlite:///{tmp_path}/b.db", table_prefix="x; drop")

    @pytest.mark.parametrize(
        ("option", "value", "text"),
        [
            ("lease", 0, "lease=0"),
            ("lease", "soon", "lease='soon'"),
            ("renew_interval", 90.0, "shorter than the lease"),
            ("max_retries", -1, "max_retries=-1"),
        ],
    )
    def test_bad_common_options_are_named(
        self, option: str, value: object, text: str
    ) -> None:
        with pytest.raises(InvalidURLError, match=text):
            connect("memory://", **{option: value})


class TestPasswords:
    URL = "postgresql://user:s3cr3t-pw@127.0.0.1:1/db"

    def test_mask_url_hides_passwords(self) -> None:
        assert mask_url(self.URL) == "postgresql://user:***@127.0.0.1:1/db"
        assert mask_url("amqp://a:b@h1//;amqp://c:d@h2//") == (
            "amqp://a:***@h1//;amqp://c:***@h2//"
        )

    def test_an_unreachable_server_never_shows_the_password(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        with pytest.raises(TransportConnectionError) as info:
            connect(self.URL, max_retries=1, retry_backoff_max=0.01)
        assert "s3cr3t" not in str(info.value)
        assert "***" in str(info.value)
        assert "unreachable" in str(info.value)
        assert "s3cr3t" not in caplog.text
        assert "retry 1/1" in caplog.text

    def test_reprs_never_show_the_password(self, tmp_path: Path) -> None:
        transport = connect(
            "postgresql://user:s3cr3t-pw@127.0.0.1:1/db",
            create_tables=False,
            max_retries=0,
        )
        assert "s3cr3t" not in repr(transport)
        assert "s3cr3t" not in transport.url
        transport.close()


def test_the_package_exports_its_public_api() -> None:
    for name in transports.__all__:
        assert hasattr(transports, name), name
