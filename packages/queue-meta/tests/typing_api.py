"""Uses the public API as a user would; mypy checks it, pytest never runs it."""

from __future__ import annotations

from typing_extensions import assert_type

import queue_meta
from queue_meta.cli import main, versions

assert_type(queue_meta.__version__, str)
assert_type(versions(), dict[str, str])
assert_type(main(["--version"]), int)
