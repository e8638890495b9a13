"""Uses the public API as a user would; mypy checks it, pytest never runs it."""

from __future__ import annotations

from typing_extensions import assert_type

import transports
from transports import DeclarationMismatchError, TransportError, UnknownSchemeError

assert_type(transports.__version__, str)
exc = UnknownSchemeError("reddis", ("redis",))
assert_type(exc.installed, tuple[str, ...])
mismatch: TransportError = DeclarationMismatchError("q", {"a": 1}, {"a": 2})
