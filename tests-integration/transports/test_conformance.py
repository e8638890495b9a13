"""The transports conformance suite against PostgreSQL and MariaDB/MySQL.

Each test opens the broker with its own table prefix (``unique_name``) and
drops its tables afterwards. memory:// and SQLite run the same suite in the
package's unit tests; the Redis and AMQP transports add their classes here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from transports import Transport, connect
from transports.testing import TransportConformance

Names = Callable[..., str]


def insert_malformed(transport: Transport, queue: str) -> None:
    """Store a row whose envelope is not JSON, as a damaged writer might."""
    import sqlalchemy as sa

    table = transport._messages  # type: ignore[attr-defined]
    with transport._engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(
            sa.insert(table).values(
                queue=queue,
                rank=9,
                visible_at=time.time(),
                delivery_count=0,
                exchange="",
                routing_key=queue,
                envelope=b"{not json",
                body=b"x",
            )
        )


class _SQL(TransportConformance):
    def _tables(self, url: str, prefix: str) -> Iterator[None]:
        self.url = url
        self.prefix = prefix
        yield
        transport = connect(url, table_prefix=prefix)
        transport.drop_tables()  # type: ignore[attr-defined]
        transport.close()

    def transport_url(self) -> str:
        return self.url

    def transport_options(self) -> dict[str, Any]:
        return {"table_prefix": self.prefix}

    def inject_malformed(self, transport: Transport, queue: str) -> bool:
        insert_malformed(transport, queue)
        return True


class TestPostgreSQL(_SQL):
    @pytest.fixture(autouse=True)
    def _server(self, postgres_url: str, unique_name: Names) -> Iterator[None]:
        yield from self._tables(postgres_url, unique_name("tr") + "_")


class TestMySQL(_SQL):
    @pytest.fixture(autouse=True)
    def _server(self, mysql_url: str, unique_name: Names) -> Iterator[None]:
        yield from self._tables(mysql_url, unique_name("tr") + "_")
