from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def children(pid: int) -> list[int]:
    """Return the pids whose parent is *pid*, from the process table."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found.append(child)
        found.extend(descendants(child))
    return found


def alive(pid: int) -> bool:
    """Whether *pid* exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def exists(pid: int) -> bool:
    """Whether *pid* is in the process table at all (zombies included)."""
    return Path(f"/proc/{pid}").exists()


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """Every test must reap every process it started, zombies included."""
    before = set(children(os.getpid()))
    yield
    leftover = set(children(os.getpid())) - before
    if leftover:
        wait_until(lambda: not (set(children(os.getpid())) - before), 5)
        leftover = set(children(os.getpid())) - before
    assert not leftover, f"processes left behind: {sorted(leftover)}"
