"""The resultstores conformance suite against every real server that runs here.

Each class opens its store with a unique key prefix, table prefix, collection,
database or keyspace (``unique_name``) and removes what it created. Cassandra
runs only under docker compose; here its class skips with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from resultstores.testing import ResultStoreConformance

Names = Callable[..., str]


class TestRedis(ResultStoreConformance):
    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str, unique_name: Names) -> Iterator[None]:
        import redis

        self.url = redis_url
        self.prefix = unique_name("rs") + ":"
        yield
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    def store_url(self) -> str:
        return self.url

    def store_options(self) -> dict[str, Any]:
        return {"global_keyprefix": self.prefix}


class TestRedisMsgpack(TestRedis):
    """The Lua SUCCESS check also reads msgpack."""

    def store_options(self) -> dict[str, Any]:
        pytest.importorskip("msgpack")
        return {"global_keyprefix": self.prefix, "serializer": "msgpack"}


class TestRedisYaml(TestRedis):
    """Serializers Lua cannot read keep SUCCESS with a WATCH transaction."""

    hammer_increments = 250

    def store_options(self) -> dict[str, Any]:
        pytest.importorskip("yaml")
        return {"global_keyprefix": self.prefix, "serializer": "yaml"}


class _SQL(ResultStoreConformance):
    def _tables(self, url: str, prefix: str) -> Iterator[None]:
        self.url = url
        self.prefix = prefix
        yield
        import sqlalchemy as sa

        from resultstores._sqlalchemy import sqlalchemy_url

        engine = sa.create_engine(sqlalchemy_url(url))
        with engine.begin() as connection:
            for table in ("results", "counters"):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}{table}")
        engine.dispose()

    def store_url(self) -> str:
        return self.url

    def store_options(self) -> dict[str, Any]:
        return {"table_prefix": self.prefix}


class TestPostgreSQL(_SQL):
    @pytest.fixture(autouse=True)
    def _server(self, postgres_url: str, unique_name: Names) -> Iterator[None]:
        yield from self._tables(postgres_url, unique_name("rs") + "_")


class TestMySQL(_SQL):
    @pytest.fixture(autouse=True)
    def _server(self, mysql_url: str, unique_name: Names) -> Iterator[None]:
        yield from self._tables(mysql_url, unique_name("rs") + "_")


class TestMemcached(ResultStoreConformance):
    @pytest.fixture(autouse=True)
    def _server(self, memcached_url: str, unique_name: Names) -> None:
        self.url = memcached_url
        self.prefix = unique_name("rs") + ":"

    def store_url(self) -> str:
        return self.url

    def store_options(self) -> dict[str, Any]:
        return {"keyprefix": self.prefix}


class TestMongoDB(ResultStoreConformance):
    # 4 x 250 contended increments: the compatible server started for the
    # tests serializes them, 4 x 1,000 took 40-80 s of CI's time.
    hammer_increments = 250

    @pytest.fixture(autouse=True)
    def _server(self, mongodb_url: str, unique_name: Names) -> Iterator[None]:
        import pymongo

        self.url = mongodb_url
        self.collection = unique_name("rs")
        yield
        client: Any = pymongo.MongoClient(mongodb_url, serverSelectionTimeoutMS=5000)
        database = client.get_default_database("resultstores")
        database.drop_collection(self.collection)
        database.drop_collection(self.collection + "_counters")
        client.close()

    def store_url(self) -> str:
        return self.url

    def store_options(self) -> dict[str, Any]:
        return {"collection": self.collection}


class TestCouchDB(ResultStoreConformance):
    # 4 x 250 contended increments: the compatible server started for the
    # tests serializes them, 4 x 1,000 took 40-80 s of CI's time.
    hammer_increments = 250

    @pytest.fixture(autouse=True)
    def _server(self, couchdb_url: str, unique_name: Names) -> Iterator[None]:
        import pycouchdb

        parts = urlsplit(couchdb_url)
        self.database = unique_name("rs")
        self.url = f"couchdb://{parts.netloc}/{self.database}"
        yield
        server: Any = pycouchdb.Server(couchdb_url)
        if self.database in server:
            server.delete(self.database)

    def store_url(self) -> str:
        return self.url


class TestCassandra(ResultStoreConformance):
    """Runs under docker compose only (no Cassandra server can run here)."""

    @pytest.fixture(autouse=True)
    def _server(self, cassandra_url: str, unique_name: Names) -> Iterator[None]:
        self.keyspace = unique_name("rs")
        self.url = f"{cassandra_url.rstrip('/')}/{self.keyspace}"
        yield
        from cassandra.cluster import Cluster

        parts = urlsplit(cassandra_url)
        cluster = Cluster([parts.hostname or "127.0.0.1"], port=parts.port or 9042)
        session = cluster.connect()
        session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}")
        cluster.shutdown()

    def store_url(self) -> str:
        return self.url
