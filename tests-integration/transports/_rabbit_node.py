"""A private RabbitMQ node for tests that stop or restart a broker.

The shared RabbitMQ on 5672 must never be stopped, so these tests start a
node of their own: ``RabbitNode(port)`` runs ``/usr/sbin/rabbitmq-server``
with its own node name (``qm<port>@localhost``), AMQP and distribution ports,
database, logs and config in a temporary folder, and no plugins. It starts in
a few seconds, stops gracefully (SIGTERM, as ``rabbitmq-server`` expects) or
hard (SIGKILL), keeps its data across a restart, and removes the folder on
``cleanup()``. Only processes whose command line names the node's own
folder are signalled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RABBITMQ_SERVER", "RabbitNode", "free_port"]

RABBITMQ_SERVER = os.environ.get("RABBITMQ_SERVER", "/usr/sbin/rabbitmq-server")


def free_port() -> int:
    """Return a TCP port nothing listens on now (and a distribution port + 20000)."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 20000 < 65536 and not _answers(port + 20000):
            return port
    raise RuntimeError("no free port pair found")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class RabbitNode:
    """A RabbitMQ node of this test run only, on ``127.0.0.1:<port>``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dist_port = self.port + 20000
        self.name = f"qm{self.port}@localhost"
        self.folder = Path(tempfile.mkdtemp(prefix=f"qm-rabbit-{self.port}-"))
        # The server runs as the rabbitmq user; let it write its files here.
        self.folder.chmod(0o777)
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq.conf").write_text("loopback_users = none\n")
        for item in self.folder.iterdir():
            item.chmod(0o666)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The node's AMQP URL (guest/guest, vhost ``/``)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def __enter__(self) -> RabbitNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def start(self, timeout: float = 60.0) -> None:
        """Start the node (keeping its data) and wait until it accepts AMQP."""
        if not Path(RABBITMQ_SERVER).exists():
            raise FileNotFoundError(f"{RABBITMQ_SERVER} is not installed")
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.folder / "node.pid"),
        }
        log = (self.folder / "server.out").open("ab")
        self._process = subprocess.Popen(
            [RABBITMQ_SERVER],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self._accepts_amqp():
            if self._process.poll() is not None and not self._pids():
                raise RuntimeError(
                    f"RabbitMQ node {self.name} exited on start; see "
                    f"{self.folder / 'server.out'}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"RabbitMQ node {self.name} did not start")
            time.sleep(0.2)

    def _accepts_amqp(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return s.recv(1) == b"\x01"
        except OSError:
            return False

    def _pids(self) -> list[int]:
        """Return the processes whose command line or environment names our folder."""
        marker = str(self.folder).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if (
                    marker in (entry / "cmdline").read_bytes()
                    or marker in (entry / "environ").read_bytes()
                ):
                    found.append(int(entry.name))
        return [pid for pid in found if pid != os.getpid()]

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node gracefully (SIGTERM), then hard if it lingers."""
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self._pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.kill()

    def kill(self) -> None:
        """SIGKILL every process of the node and wait until none is left."""
        for _ in range(50):
            if not self._signal(signal.SIGKILL):
                break
            time.sleep(0.1)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)
            self._process = None

    def _signal(self, signum: int) -> bool:
        pids = self._pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        return bool(pids)

    def cleanup(self) -> None:
        """Kill the node if it runs and remove its folder."""
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
