"""Helpers the end-to-end test modules share: brokers, the process tree, waiting.

``conftest.py`` puts this folder on ``sys.path`` (test modules are imported
with ``--import-mode=importlib`` and cannot import each other).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The process tree as queue-meta's own benchmark reads it.
from queue_meta.bench import descendants

__all__ = ["BROKERS", "SERVERS", "alive", "descendants", "wait_for", "where"]

#: The brokers a fault test runs on, as fixture names ("embedded": the default).
BROKERS = ["embedded", "redis_broker", "amqp_broker", "postgres_url"]
#: The brokers that are servers of their own (not a database queue-meta shares).
SERVERS = ["redis_broker", "amqp_broker"]


def where(
    request: pytest.FixtureRequest, broker: str, *, amqp_backend: str | None = None
) -> dict[str, Any]:
    """The ``broker``/``backend`` arguments of ``e2e.worker`` for *broker*.

    Redis and PostgreSQL keep the results too; RabbitMQ gets *amqp_backend*
    (None: queue-meta's default for it).
    """
    if broker == "embedded":
        return {}
    url = request.getfixturevalue(broker)
    return {"broker": url, "backend": amqp_backend if broker == "amqp_broker" else url}


def alive(pid: int) -> bool:
    """Whether *pid* runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(
    predicate: Callable[[], object],
    timeout: float = 10.0,
    what: str = "the condition did not hold",
    step: float = 0.05,
) -> None:
    """Poll *predicate* until it is true; fail the test with *what* after *timeout*."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s")
        time.sleep(step)
