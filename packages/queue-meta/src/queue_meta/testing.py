"""Test helpers: an app on ``memory://``, an in-process worker, eager mode.

Enable the pytest plugin in a ``conftest.py``::

    pytest_plugins = ["queue_meta.testing"]

Fixtures:

- ``queue_app``: an :class:`~queue_meta.App` on ``memory://`` (broker and
  results private to the test), closed afterwards. Register tasks on it.
- ``queue_worker``: a worker for ``queue_app`` running in a thread of the
  test process (threads pool), stopped afterwards.
- ``queue_eager``: ``queue_app`` with ``task_always_eager``: ``delay()`` runs the
  task at once in the calling thread, for unit tests of user code.

Outside pytest, :func:`start_worker` is the same context manager.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from .app import App
from .worker import Worker

__all__ = ["memory_app", "queue_app", "queue_eager", "queue_worker", "start_worker"]


def memory_app(name: str | None = None, **settings: Any) -> App:
    """An app whose broker and result store live in this process only."""
    space = name or f"test-{uuid.uuid4().hex[:12]}"
    settings.setdefault("broker_url", f"memory://{space}")
    settings.setdefault("result_backend", f"memory://{space}")
    return App(space, set_as_current=False, **settings)


@contextmanager
def start_worker(
    app: App, *, pool: str = "threads", concurrency: int = 2, **options: Any
) -> Iterator[Worker]:
    """Run a worker for *app* in a thread; stop it (warm) on exit.

    Raises:
        RuntimeError: The worker did not become ready within 10 s.
    """
    worker = Worker(app, pool=pool, concurrency=concurrency, **options)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.start()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            failure.append(exc)
            worker.ready.set()

    thread = threading.Thread(target=run, name="queue-meta-test-worker", daemon=True)
    thread.start()
    if not worker.ready.wait(10.0) or failure:
        worker.stop()
        raise RuntimeError(f"the test worker did not start: {failure or 'timeout'}")
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=30.0)
        if failure:
            raise failure[0]


@pytest.fixture
def queue_app() -> Iterator[App]:
    """An app on ``memory://``, private to the test."""
    app = memory_app()
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def queue_worker(queue_app: App) -> Iterator[Worker]:
    """A threads-pool worker for ``queue_app``, running in this process."""
    with start_worker(queue_app) as worker:
        yield worker


@pytest.fixture
def queue_eager(queue_app: App) -> App:
    """``queue_app`` running every task eagerly, in the calling thread."""
    queue_app.conf.task_always_eager = True
    return queue_app
