"""The ``queue`` command line (also ``python -m queue_meta``).

Commands arrive with the worker; today the command reports versions. Errors are
one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

__all__ = ["COMPONENTS", "build_parser", "main", "versions"]

#: The distributions queue-meta assembles, reported by ``queue --version``.
COMPONENTS = ("queue-meta", "msgwire", "transports", "resultstores", "pools", "signing")


def versions() -> dict[str, str]:
    """Return the installed version of queue-meta and of each library it uses."""
    found = {}
    for name in COMPONENTS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _version_text() -> str:
    found = versions()
    libraries = ", ".join(f"{name} {found[name]}" for name in COMPONENTS[1:])
    return f"queue-meta {found['queue-meta']} ({libraries})"


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``queue`` command."""
    parser = argparse.ArgumentParser(
        prog="queue",
        description="queue-meta: a distributed task queue for Python.",
    )
    parser.add_argument(
        "--version",
        action="store_true",
        help="print the versions of queue-meta and its libraries, then exit",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``queue`` command; return its exit status."""
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.version:
        # Printed as is: argparse's version action would wrap it at 80 columns.
        sys.stdout.write(_version_text() + "\n")
        return 0
    parser.print_help(sys.stderr)
    return 2
