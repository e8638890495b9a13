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

__all__ = ["CONTROL_EXCHANGE", "REVOKED_SET", "Control", "recall_revoked"]

#: The fanout exchange remote-control commands are broadcast on.
CONTROL_EXCHANGE = "celery.pidbox"
#: The broker-side set of revoked task ids, read by workers as they start.
REVOKED_SET = "queue-meta.revoked"
#: How long a revocation is kept (Celery's default, 3 hours), and how many.
REVOKE_EXPIRES = 3 * 3600.0
REVOKE_LIMIT = 50_000


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
        """Tell workers not to run *task_id*; stop it if running and *terminate*.

        Running workers hear it at once (a broadcast); the ids are also kept
        broker-side for three hours, so a worker that starts later skips them.
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        transport = self.app.transport
        if transport.capabilities.expiring_sets:
            transport.remember(REVOKED_SET, ids, REVOKE_EXPIRES, limit=REVOKE_LIMIT)
        self.broadcast(
            "revoke",
            {"task_id": ids, "terminate": terminate, "signal": signal},
            destination,
        )


def recall_revoked(app: App) -> dict[str, float]:
    """The task ids revoked in the last three hours, with their expiry times.

    Empty where the broker keeps no sets (then only workers running at the
    time of a revoke, and those with ``--statedb``, know it).
    """
    transport = app.transport
    if not transport.capabilities.expiring_sets:
        return {}
    return transport.recall(REVOKED_SET)
