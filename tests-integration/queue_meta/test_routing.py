"""Routing end to end: task_routes, per-call queues, topic and fanout exchanges
declared through ``task_queues``, and priorities (higher is sooner), on the
embedded default, Redis and RabbitMQ, with a real worker process.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import EndToEnd

BROKERS = ["embedded", "redis_broker", "amqp_broker"]

ROUTED = """
def by_argument(name, args, kwargs, options, task=None, **rest):
    if name.endswith(".where") and kwargs.get("urgent"):
        return {"queue": NAME + ".urgent"}
    return None

Q = NAME
app = App(
    NAME,
    **APP_OPTIONS,
    task_queues=[
        Q,
        Q + ".urgent",
        Q + ".images",
        {"name": Q + ".media", "exchange": Q + ".media", "exchange_type": "topic",
         "routing_key": "media.image.#"},
        {"name": Q + ".all-1", "exchange": Q + ".bcast", "exchange_type": "fanout"},
        {"name": Q + ".all-2", "exchange": Q + ".bcast", "exchange_type": "fanout"},
    ],
    task_routes=[by_argument, {"*.resize_*": Q + ".images"}],
    task_queue_max_priority=9,
)

@app.task(bind=True)
def where(self, urgent=False):
    return self.request.delivery_info["queue"]

@app.task(bind=True)
def resize_png(self):
    return self.request.delivery_info["queue"]

@app.task
def record(label):
    with open(os.path.join(HOME, NAME + ".order"), "a") as f:
        f.write(label + "\\n")

@app.task
def block(seconds):
    time.sleep(seconds)
"""


def _broker(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    if name == "embedded":
        return {}
    url = request.getfixturevalue(name)
    return {"broker": url, "backend": url if name == "redis_broker" else None}


@pytest.mark.parametrize("broker", BROKERS)
def test_routes_queues_and_exchanges(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> None:
    where = _broker(request, broker)
    with e2e.worker(ROUTED, **where) as worker:
        module, q = worker.module, worker.module.NAME
        # The default queue, a route function, a glob route, a per-call queue.
        assert module.where.delay().get(timeout=10) == q
        assert module.where.delay(urgent=True).get(timeout=10) == f"{q}.urgent"
        assert module.resize_png.delay().get(timeout=10) == f"{q}.images"
        per_call = module.where.apply_async(queue=f"{q}.images")
        assert per_call.get(timeout=10) == f"{q}.images"
        # A topic exchange routes by pattern; a fanout one copies to every queue.
        topic = module.where.apply_async(
            exchange=f"{q}.media", routing_key="media.image.png"
        )
        assert topic.get(timeout=10) == f"{q}.media"
        fanout = module.record.apply_async(("fanout",), exchange=f"{q}.bcast")
        fanout.get(timeout=10)
        order = e2e.home / f"{q}.order"
        deadline = time.monotonic() + 10
        while order.read_text().count("fanout") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert order.read_text().count("fanout") == 2  # one per bound queue


@pytest.mark.parametrize("broker", BROKERS)
def test_higher_priority_is_served_sooner(
    e2e: EndToEnd, request: pytest.FixtureRequest, broker: str
) -> None:
    where = _broker(request, broker)
    with e2e.worker(ROUTED, **where, pool="solo", concurrency=1) as worker:
        module = worker.module
        # Keep the only slot busy while the others queue up behind it.
        blocker = module.block.delay(1.5)
        time.sleep(0.5)
        # Redis keeps kombu's four priority lists (0, 3, 6, 9): one per level.
        priorities = [0, 9, 3, 6]
        results = [
            module.record.apply_async((f"p{p}",), priority=p) for p in priorities
        ]
        blocker.get(timeout=10)
        for result in results:
            result.get(timeout=10)
        order = (e2e.home / f"{module.NAME}.order").read_text().split()
    assert order == [f"p{p}" for p in sorted(priorities, reverse=True)]
