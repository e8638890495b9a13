from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from queue_meta.cli import COMPONENTS, main


def test_version_names_every_library(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"queue-meta {version('queue-meta')} (")
    for name in COMPONENTS[1:]:
        assert f"{name} {version(name)}" in out


def test_the_console_script_and_python_m_agree() -> None:
    script = subprocess.run(
        [str(Path(sys.executable).with_name("queue")), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = subprocess.run(
        [sys.executable, "-m", "queue_meta", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert script == module


def test_an_unknown_option_is_one_line_and_exit_status_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "queue_meta", "--bogus"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unrecognized arguments: --bogus" in result.stderr
