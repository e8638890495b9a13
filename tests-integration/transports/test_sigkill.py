"""The SIGKILL reliability harness against SQLite, PostgreSQL and MariaDB.

100 consumer processes are killed at random points over 10,000 messages;
afterwards every published message was handled and acknowledged, and the
number of duplicates (allowed by at-least-once delivery) is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from transports import connect
from transports.testing import run_sigkill_test

Names = Callable[..., str]


def _check(url: str, options: dict[str, object]) -> None:
    report = run_sigkill_test(url, options=options)
    print(f"SIGKILL {url.partition(':')[0]}: {report}")
    assert report.kills >= 100
    assert report.missing == frozenset()
    assert report.ok, str(report)


def test_sqlite_loses_nothing_to_sigkill(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'broker.db'}", {})


@pytest.mark.parametrize("server", ["postgres_url", "mysql_url"])
def test_sql_servers_lose_nothing_to_sigkill(
    request: pytest.FixtureRequest, server: str, unique_name: Names
) -> None:
    url = request.getfixturevalue(server)
    prefix = unique_name("tr") + "_"
    try:
        _check(url, {"table_prefix": prefix})
    finally:
        cleaner = connect(url, table_prefix=prefix)
        cleaner.drop_tables()  # type: ignore[attr-defined]
        cleaner.close()
