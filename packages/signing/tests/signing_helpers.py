"""Helpers shared by the test modules (importable through pytest's ``pythonpath``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TypedDict

# The time every test's clock starts at: when the suite started, whole seconds,
# so that the certificates generated here (valid for a year) are valid at T0.
T0 = float(int(time.time()))


class InnerType(TypedDict):
    """The keyword arguments naming a payload's content type and encoding."""

    content_type: str
    content_encoding: str


JSON: InnerType = {"content_type": "application/json", "content_encoding": "utf-8"}


@dataclass
class Clock:
    """A settable clock for signers and verifiers."""

    now: float = T0

    def __call__(self) -> float:
        return self.now
