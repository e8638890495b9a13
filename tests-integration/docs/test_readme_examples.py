"""Every Python example in a package README runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = sorted(ROOT.glob("packages/*/README.md"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def examples() -> list[tuple[str, str]]:
    found = []
    for readme in READMES:
        for index, block in enumerate(FENCE.findall(readme.read_text())):
            found.append((f"{readme.parent.name}-{index}", block))
    return found


def test_every_package_readme_has_an_example() -> None:
    names = {name.rsplit("-", 1)[0] for name, _ in examples()}
    assert names == {readme.parent.name for readme in READMES}


@pytest.mark.parametrize(("name", "code"), examples(), ids=[n for n, _ in examples()])
def test_readme_example_runs(name: str, code: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stderr}"
