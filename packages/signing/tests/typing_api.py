"""Uses the public API as a user would; mypy checks it, pytest never runs it."""

from __future__ import annotations

from typing_extensions import assert_type

import signing
from signing import InvalidSignatureError, SignatureError

assert_type(signing.__version__, str)
failure: SignatureError = InvalidSignatureError("mismatch")
