from __future__ import annotations

from collections.abc import Iterator

import pytest

from transports import _memory


@pytest.fixture(autouse=True)
def _fresh_memory_brokers() -> Iterator[None]:
    """Each test starts with empty memory:// brokers."""
    _memory.reset()
    yield
    _memory.reset()
