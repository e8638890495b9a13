"""Remote control of workers: ``app.control.revoke(task_id)``.

Commands travel as Celery's remote-control (pidbox) messages over the fanout
exchange ``celery.pidbox``, which every worker of the app subscribes to.
``inspect``, ``ping`` and the other commands come with the events and remote
control work (DESIGN.md); the worker ignores commands it does not know.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import QueueMetaError

if TYPE_CHECKING:
    from .app import App

__all__ = ["CONTROL_EXCHANGE", "Control"]

#: The fanout exchange remote-control commands are broadcast on.
CONTROL_EXCHANGE = "celery.pidbox"


class Control:
    """Broadcasts commands to the app's workers."""

    def __init__(self, app: App) -> None:
        self.app = app

    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: Sequence[str] | None = None,
    ) -> None:
        """Send *command* to every worker (or the node names in *destination*)."""
        transport = self.app.transport
        if not transport.capabilities.fanout:
            raise QueueMetaError(
                f"the {transport.name} broker has no fanout exchanges, so remote "
                "control commands cannot reach workers"
            )
        transport.declare_exchange(CONTROL_EXCHANGE, "fanout", durable=False)
        body = {
            "method": command,
            "arguments": arguments or {},
            "destination": list(destination) if destination else None,
            "pattern": None,
            "matcher": None,
        }
        transport.publish(
            "",
            json.dumps(body).encode(),
            exchange=CONTROL_EXCHANGE,
            headers={"clock": int(time.time() * 1000), "expires": time.time() + 60},
            properties={
                "content_type": "application/json",
                "content_encoding": "utf-8",
                "correlation_id": str(uuid.uuid4()),
            },
            ttl=60.0,
        )

    def revoke(
        self,
        task_id: str | Sequence[str],
        *,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        destination: Sequence[str] | None = None,
    ) -> None:
        """Tell workers not to run *task_id*; stop it if running and *terminate*."""
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        self.broadcast(
            "revoke",
            {"task_id": ids, "terminate": terminate, "signal": signal},
            destination,
        )
