"""Calls mypy must reject; the typecheck session checks each marked line fails.

Every line ending in ``# error`` must produce a mypy error on that line.
"""

from __future__ import annotations

from queue_meta import App

app = App("typing-errors", broker="memory://typing-errors")


@app.task
def add(x: int, y: int) -> int:
    return x + y


add.delay("x", 2)  # error
add.delay(1)  # error
add.delay(1, 2, 3)  # error
result: str = add.delay(1, 2).get()  # error
