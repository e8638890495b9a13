"""Uses the public API as a user would; mypy checks it, pytest never runs it."""

from __future__ import annotations

from typing_extensions import assert_type

import pools
from pools import TimeLimitExceeded, WorkerLostError

assert_type(pools.__version__, str)
assert_type(WorkerLostError(signal=9).signal, "int | None")
assert_type(TimeLimitExceeded(2.0).limit, float)
