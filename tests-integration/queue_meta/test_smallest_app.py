"""The smallest app of the product description, on every pool and broker.

Every pool (prefork, threads, solo, gevent, eventlet, asyncio) runs a sync and
an async task on every broker: the embedded default (SQLite broker and results
under ``$QUEUE_HOME/<app name>/``), PostgreSQL through SQLAlchemy, Redis and
RabbitMQ.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import EndToEnd

HELLO = """
app = App(NAME, **APP_OPTIONS)

@app.task
def hello():
    return "hello world"

@app.task
async def hello_async(name):
    import asyncio

    await asyncio.sleep(0.01)
    return f"hello {name}"
"""

POOLS = ["prefork", "threads", "solo", "gevent", "eventlet", "asyncio"]


def _check_hello(e2e: EndToEnd, pool: str, **where: str | None) -> None:
    with e2e.worker(HELLO, pool=pool, **where) as worker:
        module = worker.module
        assert module.hello.delay().get(timeout=10) == "hello world"
        results = [module.hello_async.delay(str(i)) for i in range(5)]
        assert [r.get(timeout=10) for r in results] == [f"hello {i}" for i in range(5)]
        assert f"pool:        {pool}" in worker.log()


@pytest.mark.parametrize("pool", POOLS)
def test_hello_on_the_embedded_default(e2e: EndToEnd, pool: str) -> None:
    with e2e.worker(HELLO, pool=pool) as worker:
        module = worker.module
        assert module.hello.delay().get(timeout=10) == "hello world"
        results = [module.hello_async.delay(str(i)) for i in range(5)]
        assert [r.get(timeout=10) for r in results] == [f"hello {i}" for i in range(5)]
        banner = worker.log()
        assert f"pool:        {pool}" in banner
        # The banner names the files; client and worker share them.
        home = e2e.home / module.NAME
        assert f"files:       {home}" in banner
        assert (home / "broker.db").exists()
        assert (home / "results.db").exists()


@pytest.mark.parametrize("pool", POOLS)
def test_hello_on_postgresql(e2e: EndToEnd, postgres_url: str, pool: str) -> None:
    _check_hello(e2e, pool, broker=postgres_url, backend=postgres_url)


@pytest.mark.parametrize("pool", POOLS)
def test_hello_on_redis(e2e: EndToEnd, redis_broker: str, pool: str) -> None:
    _check_hello(e2e, pool, broker=redis_broker, backend=redis_broker)


@pytest.mark.parametrize("pool", POOLS)
def test_hello_on_rabbitmq(e2e: EndToEnd, amqp_broker: str, pool: str) -> None:
    # No backend given: results come back as rpc:// reply messages.
    _check_hello(e2e, pool, broker=amqp_broker)


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_green_pools_keep_redis_heartbeats_alive(
    e2e: EndToEnd, redis_broker: str, pool: str
) -> None:
    with e2e.worker(
        HELLO, pool=pool, broker=redis_broker, backend=redis_broker
    ) as worker:
        assert worker.module.hello.delay().get(timeout=10) == "hello world"
        time.sleep(1.5)  # a heartbeat or two
        assert not worker.lines("heartbeat failed")
