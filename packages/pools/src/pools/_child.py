"""The worker process of the prefork pool: runs calls sent by the parent.

Each worker has two socket pairs to the parent. The *call* socket carries
chunks of calls in and one frame per result out, read and written by the main
thread. The *control* socket is served by a helper thread, so the parent can
take back calls that have not started while the main thread runs a long one
(fair dispatch), and so that the worker exits at once when the parent dies
(the control socket reaches end of file).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from . import _wire
from .errors import SoftTimeLimitExceeded
from .errors import _signal_name as signal_name

__all__ = ["EXIT_PARENT_GONE", "WorkerConfig", "process_rss_kib", "run_worker"]

logger = logging.getLogger(__name__)

EXIT_PARENT_GONE = 70

_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


@dataclass
class WorkerConfig:
    """What every worker process of one pool needs to know."""

    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] = ()
    finalizer: Callable[..., object] | None = None
    finalargs: tuple[Any, ...] = ()
    after_fork: Callable[[], object] | None = None
    max_memory_kib: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def process_rss_kib(pid: int | str = "self") -> int | None:
    """Return the resident memory of process *pid* in KiB, or ``None`` if unknown."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as file:
            return int(file.read().split()[1]) * _PAGE_KIB
    except (OSError, ValueError, IndexError):
        pass
    if pid == "self":
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is in bytes on macOS and in KiB elsewhere.
        return peak // 1024 if sys.platform == "darwin" else peak
    return None


# (call id, soft limit, pickled callable, pickled args, pickled kwargs or None)
_Item = tuple[int, "float | None", bytes, bytes, "bytes | None"]


def _type_name(obj: object) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


class _Worker:
    def __init__(
        self, call_sock: socket.socket, ctl_sock: socket.socket, config: WorkerConfig
    ) -> None:
        self.call_sock = call_sock
        self.ctl_sock = ctl_sock
        self.config = config
        self.queue: deque[_Item] = deque()
        # Unpickled callables by their pickle: a batch sends one callable.
        self.functions: dict[bytes, Callable[..., Any]] = {}
        self.lock = threading.Lock()
        self.soft_armed = False

    def on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.soft_armed:
            self.soft_armed = False
            raise SoftTimeLimitExceeded()

    def log(self, level: int, message: str) -> None:
        """Have the parent log *message*: it owns the logging configuration."""
        try:
            self.call_sock.sendall(_wire.pickle_frame(_wire.LOG, (level, message)))
        except OSError:
            logger.log(level, "%s", message)

    def hook(
        self, name: str, fn: Callable[..., object] | None, args: tuple[Any, ...]
    ) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - sent to the parent's logger with its traceback
            self.log(
                logging.ERROR,
                f"the {name} of prefork worker {os.getpid()} failed; the worker "
                f"goes on:\n{traceback.format_exc()}",
            )

    def helper(self) -> None:
        reader = _wire.FrameReader(self.ctl_sock)
        queue, lock = self.queue, self.lock
        while True:
            got = reader.read_one()
            if got is None:
                # The parent is gone: its calls will be redelivered elsewhere,
                # so this process must not go on running them.
                os._exit(EXIT_PARENT_GONE)
            kind, body = got
            if kind == _wire.STEAL:
                (count,) = _wire.ID.unpack(body)
                with lock:
                    taken = [queue.pop()[0] for _ in range(min(count, len(queue)))]
                taken.reverse()
                reply = _wire.pickle_frame(_wire.RETURNED, taken)
            elif kind == _wire.DROP:
                (call_id,) = _wire.ID.unpack(body)
                found = False
                with lock:
                    for item in queue:
                        if item[0] == call_id:
                            queue.remove(item)
                            found = True
                            break
                reply = _wire.frame(_wire.DROPPED, body + (b"\1" if found else b"\0"))
            else:
                continue
            try:
                self.ctl_sock.sendall(reply)
            except OSError:
                os._exit(EXIT_PARENT_GONE)

    def run_call(
        self,
        call_id: int,
        soft: float | None,
        fn_bytes: bytes,
        payload: bytes,
        kwargs_bytes: bytes | None,
    ) -> None:
        send = self.call_sock.sendall
        try:
            try:
                if soft is not None:
                    self.soft_armed = True
                    signal.setitimer(signal.ITIMER_REAL, soft)
                fn = self.functions.get(fn_bytes)
                if fn is None:
                    fn = pickle.loads(fn_bytes)  # noqa: S301 - the parent pickled it
                    if len(self.functions) >= 64:
                        self.functions.clear()
                    self.functions[fn_bytes] = fn
                args = pickle.loads(payload)  # noqa: S301 - the parent pickled it
                if kwargs_bytes is None:
                    value = fn(*args)
                else:
                    value = fn(*args, **pickle.loads(kwargs_bytes))  # noqa: S301
            finally:
                if soft is not None:
                    self.soft_armed = False
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException as exc:  # noqa: BLE001 - the exception is the call's outcome
            self.send_error(call_id, exc)
            return
        try:
            body = pickle.dumps(value, _wire.PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - reported as the call's outcome
            send(
                _wire.frame(
                    _wire.UNPICKLABLE,
                    _wire.ID.pack(call_id)
                    + pickle.dumps(
                        (_type_name(value), f"{type(exc).__name__}: {exc}"),
                        _wire.PROTOCOL,
                    ),
                )
            )
            return
        send(_wire.frame(_wire.RESULT, _wire.ID.pack(call_id) + body))

    def send_error(self, call_id: int, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        try:
            message = str(exc)
        except Exception:  # noqa: BLE001 - a broken __str__ must not kill the worker
            message = f"<unprintable {type(exc).__name__}>"
        name = _type_name(exc)
        exc.__traceback__ = None
        try:
            body = pickle.dumps((exc, name, message, text), _wire.PROTOCOL)
            # Some exceptions pickle but cannot be rebuilt (an __init__ that
            # takes other arguments than it passes to BaseException).
            pickle.loads(body)  # noqa: S301 - our own pickle
        except Exception:  # noqa: BLE001 - falls back to RemoteException
            body = pickle.dumps((None, name, message, text), _wire.PROTOCOL)
        self.call_sock.sendall(_wire.frame(_wire.ERROR, _wire.ID.pack(call_id) + body))

    def retire(self, reader: _wire.FrameReader) -> None:
        """Hand back every call not started, then wait for the parent's STOP."""
        with self.lock:
            handed_back = [item[0] for item in self.queue]
            self.queue.clear()
        self.call_sock.sendall(_wire.pickle_frame(_wire.RETIRE, handed_back))
        while True:
            got = reader.read_one()
            if got is None or got[0] == _wire.STOP:
                return
            if got[0] == _wire.CALLS:
                items = pickle.loads(got[1])  # noqa: S301 - from the parent
                ids = [item[0] for item in items]
                self.call_sock.sendall(_wire.pickle_frame(_wire.RETIRE, ids))

    def serve(self) -> int:
        config = self.config
        threading.Thread(
            target=self.helper, name="pools-prefork-control", daemon=True
        ).start()
        self.hook("after_fork hook", config.after_fork, ())
        self.hook("initializer", config.initializer, config.initargs)
        reader = _wire.FrameReader(self.call_sock)
        queue, lock = self.queue, self.lock
        max_memory = config.max_memory_kib
        while True:
            with lock:
                item = queue.popleft() if queue else None
            if item is None:
                got = reader.read_one()
                if got is None:
                    return EXIT_PARENT_GONE
                kind, body = got
                if kind == _wire.CALLS:
                    items = pickle.loads(body)  # noqa: S301 - from the parent
                    with lock:
                        queue.extend(items)
                elif kind == _wire.STOP:
                    break
                continue
            self.run_call(*item)
            if max_memory is not None:
                rss = process_rss_kib()
                if rss is not None and rss > max_memory:
                    self.log(
                        logging.INFO,
                        f"prefork worker {os.getpid()} uses {rss} KiB, above "
                        f"max_memory_per_child_kib={max_memory}; replacing it",
                    )
                    self.retire(reader)
                    break
        self.hook("finalizer", config.finalizer, config.finalargs)
        return 0


def _reset_signals(worker: _Worker) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGCHLD", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, worker.on_alarm)


def set_parent_death_signal(expected_parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere).

    Exits at once if the parent already died before the request took effect.
    """
    if sys.platform.startswith("linux"):
        from billiard.util import set_pdeathsig

        try:
            set_pdeathsig(signal.SIGKILL)
        except OSError:
            logger.debug("prctl(PR_SET_PDEATHSIG) is not available here")
    if os.getppid() != expected_parent:
        os._exit(EXIT_PARENT_GONE)


def run_worker(call_fd: int, ctl_fd: int, config: WorkerConfig, parent_pid: int) -> int:
    """Serve calls on the two sockets until told to stop; return the exit code."""
    call_sock = socket.socket(fileno=call_fd)
    ctl_sock = socket.socket(fileno=ctl_fd)
    call_sock.setblocking(True)
    ctl_sock.setblocking(True)
    worker = _Worker(call_sock, ctl_sock, config)
    _reset_signals(worker)
    set_parent_death_signal(parent_pid)
    try:
        return worker.serve()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass


def describe_exit(code: int) -> str:
    """Return "exit code 3" or "signal SIGKILL (9)" for a waitstatus exit code."""
    return signal_name(-code) if code < 0 else f"exit code {code}"
