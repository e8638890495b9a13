from __future__ import annotations

from collections.abc import Iterator

import pytest

from resultstores._memory import _spaces


@pytest.fixture(autouse=True)
def _fresh_memory_spaces() -> Iterator[None]:
    """Each test starts with empty memory:// stores."""
    _spaces.clear()
    yield
    _spaces.clear()
