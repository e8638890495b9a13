"""The package's own pytest plugin provides the app and worker fixtures."""

from __future__ import annotations

pytest_plugins = ["queue_meta.testing"]
