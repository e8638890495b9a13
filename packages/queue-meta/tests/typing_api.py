"""Uses the public API as a user would; mypy checks it, pytest never runs it."""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

import queue_meta
from queue_meta import App, AsyncResult, Signature, Task
from queue_meta.cli import main, versions

assert_type(queue_meta.__version__, str)
assert_type(versions(), dict[str, str])
assert_type(main(["--version"]), int)

app = App("typing", broker="memory://typing")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True, max_retries=3)
def bound(self: Task[Any, Any], text: str) -> str:
    return text * self.request.retries


@app.task
async def fetch(url: str) -> bytes:
    return url.encode()


assert_type(add(1, 2), int)
assert_type(add.delay(1, 2), AsyncResult[int])
assert_type(add.delay(1, 2).get(timeout=1), int)
assert_type(add.apply_async((1, 2), countdown=5), AsyncResult[int])
assert_type(add.s(1), Signature[int])
assert_type(bound.delay("x"), AsyncResult[str])
assert_type(fetch.delay("http://example.com"), AsyncResult[bytes])
assert_type(app.send_task("proj.add", [1, 2]), AsyncResult[Any])
