"""The prefork pool's fork server: a single-threaded process that forks workers.

The pool's own process runs threads (its manager thread), and forking a
multi-threaded process is unsafe (a lock held by another thread stays locked
forever in the child; Python 3.12 warns about it). So each prefork pool starts
one fork server while it is still safe, and every worker is forked from that
server, which never starts a thread:

* ``fork``: when the calling process runs a single thread, the server is forked
  from it, so workers inherit everything imported so far (functions defined in
  ``__main__`` included).
* ``spawn``: otherwise the server is a fresh interpreter; it re-imports the main
  module the way :mod:`multiprocessing`'s spawn method does, so callables must
  be importable and the main script guarded by ``if __name__ == "__main__":``.

The server reaps its workers and reports their exit codes to the pool. It kills
every worker and exits as soon as the pool's process goes away (its socket
reaches end of file); on Linux it also asks for SIGKILL when its parent dies.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import sys
import traceback
from collections import deque
from collections.abc import Iterable
from typing import NoReturn, cast

from . import _wire
from ._child import EXIT_PARENT_GONE, WorkerConfig, run_worker, set_parent_death_signal

__all__ = ["SERVER", "main", "serve"]

SERVER = 40  # frame type of every message between a pool and its fork server


def _send(sock: socket.socket, *message: object) -> None:
    sock.sendall(_wire.pickle_frame(SERVER, message))


class _Server:
    def __init__(self, sock: socket.socket, config: WorkerConfig) -> None:
        self.sock = sock
        self.config = config
        self.children: set[int] = set()
        self.fds: deque[int] = deque()
        self.buffer = bytearray()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            with contextlib.suppress(OSError):
                _send(self.sock, "exited", pid, os.waitstatus_to_exitcode(status))

    def fork_worker(self, token: int) -> None:
        if len(self.fds) < 2:
            _send(self.sock, "failed", token, "the pool sent no sockets for the worker")
            return
        call_fd, ctl_fd = self.fds.popleft(), self.fds.popleft()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(call_fd)
            os.close(ctl_fd)
            _send(self.sock, "failed", token, f"fork() failed: {exc}")
            return
        if pid == 0:
            self.become_worker(call_fd, ctl_fd)
        os.close(call_fd)
        os.close(ctl_fd)
        self.children.add(pid)
        _send(self.sock, "spawned", token, pid)

    def become_worker(self, call_fd: int, ctl_fd: int) -> NoReturn:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            self.sock.close()
            for fd in (self.wake_r, self.wake_w, *self.fds):
                os.close(fd)
            code = run_worker(call_fd, ctl_fd, self.config, os.getppid())
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - printed: the child has no other channel left
            traceback.print_exc()
        finally:
            os._exit(code)

    def handle(self, message: tuple[object, ...]) -> bool:
        command = message[0]
        if command == "spawn":
            self.fork_worker(cast(int, message[1]))
        elif command == "kill":
            pid, signum = cast(int, message[1]), cast(int, message[2])
            if pid in self.children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
        elif command == "exit":
            return False
        return True

    def kill_all(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.children.clear()

    def run(self) -> int:
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self.wake_w)
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            for fd, _event in poller.poll():
                if fd == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                    self.reap()
                    continue
                try:
                    data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 32)
                except OSError:
                    data, fds = b"", []
                self.fds.extend(fds)
                if not data:
                    # The pool's process is gone (or closed us): nobody may
                    # keep running its calls.
                    self.kill_all()
                    return 0
                self.buffer += data
                for message in self.split():
                    if not self.handle(message):
                        self.kill_all()
                        return 0
            self.reap()

    def split(self) -> Iterable[tuple[object, ...]]:
        buffer = self.buffer
        messages = []
        offset = 0
        while len(buffer) - offset >= 5:
            length, _kind = _wire.HEADER.unpack_from(buffer, offset)
            end = offset + 4 + length
            if end > len(buffer):
                break
            messages.append(pickle.loads(bytes(buffer[offset + 5 : end])))  # noqa: S301 - from the pool
            offset = end
        del buffer[:offset]
        return messages


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGQUIT"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, signal.SIG_DFL)


def serve(
    sock: socket.socket,
    config: WorkerConfig,
    owner_pid: int,
    *,
    death_signal: bool,
    close_fds: Iterable[int] = (),
) -> NoReturn:
    """Run the fork server in this (child) process until the pool lets go of it."""
    code = 1
    try:
        for fd in close_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        _reset_signals()
        if death_signal:
            set_parent_death_signal(owner_pid)
        elif os.getppid() != owner_pid:
            os._exit(EXIT_PARENT_GONE)
        server = _Server(sock, config)
        _send(sock, "ready", os.getpid())
        code = server.run()
    except BaseException:  # noqa: BLE001 - printed: the fork server has no logger set up
        traceback.print_exc()
    finally:
        os._exit(code)


def main() -> None:
    """Entry point of a fork server started as a fresh interpreter (``spawn``).

    Reads the socket number, the pool's pid and whether to ask for a
    parent-death signal from ``sys.argv``; then the preparation data (paths,
    main module) and the pickled worker configuration from the socket.
    """
    fd, owner_pid, death_signal = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    reader = _wire.FrameReader(sock)
    got = reader.read_one()
    if got is None:
        os._exit(EXIT_PARENT_GONE)
    try:
        from billiard import spawn

        preparation, config_bytes = pickle.loads(got[1])  # noqa: S301 - from the pool
        spawn.prepare(preparation)
        config = pickle.loads(config_bytes)  # noqa: S301 - from the pool
    except BaseException:  # noqa: BLE001 - reported to the pool, which raises it
        _send(sock, "error", traceback.format_exc())
        os._exit(1)
    serve(sock, config, owner_pid, death_signal=death_signal)
