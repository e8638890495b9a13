"""Uses the public API as a user would; mypy checks it, pytest never runs it."""

from __future__ import annotations

from typing_extensions import assert_type

import resultstores
from resultstores import ResultTimeoutError

assert_type(resultstores.__version__, str)
timeout: TimeoutError = ResultTimeoutError("id", 1.0)
assert_type(ResultTimeoutError("id", 1.0).timeout, float)
