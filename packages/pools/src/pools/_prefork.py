"""The ``prefork`` pool: each call runs in a worker process (the default kind).

Kind: ``prefork`` (``pools.PreforkPool``); needs nothing beyond billiard.

Options: every option of :class:`pools.Pool`, plus ``start_method``
(``"auto"``, ``"fork"`` or ``"spawn"``: how the fork server starts, see below)
and ``term_signal`` (the default signal of :meth:`PoolFuture.terminate`,
``SIGTERM``). Default size: the number of CPUs.

Capabilities:

* soft limit: ``SIGALRM`` in the worker raises ``SoftTimeLimitExceeded``
  inside the call (so the callable must leave ``SIGALRM`` alone);
* hard limit: the parent SIGKILLs the worker at the limit, the future fails
  with ``TimeLimitExceeded`` and a new worker replaces it;
* terminate: any signal, ``SIGTERM`` by default;
* a worker that dies fails only the call it was running with
  ``WorkerLostError``; calls it had not started go to other workers;
* recycling by ``max_tasks_per_child`` and ``max_memory_per_child_kib``;
* parent death: the fork server and the workers exit within moments;
* fair dispatch: calls go only to idle workers; calls handed to a worker in
  a chunk that it has not started are taken back when another worker idles.

Workers are forked by a single-threaded fork server (see ``_forkserver``),
never by the pool's own multi-threaded process. Done-callbacks run in the
pool's manager thread (``pools-prefork-manager``): keep them short.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import CancelledError, Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeoutError  # 3.10: not builtin
from typing import Any, Literal, TypeVar

from . import _wire
from ._child import WorkerConfig, describe_exit, process_rss_kib
from ._forkserver import SERVER, serve
from .base import Pool, PoolFuture, PoolStats, WorkerStats, describe_callable
from .errors import (
    PoolBrokenError,
    PoolError,
    RemoteException,
    RemoteTraceback,
    TerminatedError,
    TimeLimitExceeded,
    UnpicklableCallError,
    UnpicklableResultError,
    WorkerLostError,
)

__all__ = ["PreforkPool"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

dumps = pickle.dumps

StartMethod = Literal["auto", "fork", "spawn"]

# submit_many hands calls to the manager thread in slices of this many.
_HANDOFF = 256
# A chunk stays small enough to be taken back cheaply and to fit socket buffers.
_MAX_CHUNK = 64
_MAX_CHUNK_BYTES = 128 * 1024
# How long a send to a worker may block before the worker is deemed hung.
_SEND_TIMEOUT = 10.0
# Grace between a terminate signal and SIGKILL, for a worker that ignores it.
_KILL_GRACE = 5.0
_SERVER_START_TIMEOUT = 60.0
_RESPAWN_DELAY = 1.0

# Owner-side descriptors of every live prefork pool: a fork server forked
# from this process must not keep them open, or peers would miss end of file.
_owner_fds: set[int] = set()
_live_pools: weakref.WeakSet[PreforkPool] = weakref.WeakSet()


def _thread_count() -> int:
    """Return the number of OS threads, as Python 3.12's fork warning counts them."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _settle(
    future: Future[Any], value: Any = None, exc: BaseException | None = None
) -> None:
    try:
        if exc is None:
            future.set_result(value)
        else:
            future.set_exception(exc)
    except InvalidStateError:
        pass  # already failed at a limit, terminated or cancelled


class _Call:
    __slots__ = (
        "fn",
        "future",
        "hard",
        "id",
        "kwargs",
        "marked_running",
        "payload",
        "soft",
        "worker",
    )

    def __init__(
        self,
        call_id: int,
        future: PoolFuture[Any],
        fn: bytes,
        payload: bytes,
        kwargs: bytes | None,
        soft: float | None,
        hard: float | None,
    ) -> None:
        self.id = call_id
        self.future = future
        self.fn = fn
        self.payload = payload
        self.kwargs = kwargs
        self.soft = soft
        self.hard = hard
        self.worker: _Worker | None = None
        self.marked_running = False


# Worker states.
_RUNNING = "running"  # takes calls
_RETIRING = "retiring"  # takes no more calls; STOP once its calls are done
_STOPPING = "stopping"  # STOP sent; finishing its finalizer
_KILLED = "killed"  # a signal was sent to stop it


class _Worker:
    __slots__ = (
        "assigned",
        "call_reader",
        "call_sock",
        "ctl_reader",
        "ctl_sock",
        "idle",
        "index",
        "kill_at",
        "outstanding",
        "pending_signal",
        "pid",
        "processed",
        "spawned_at",
        "started_at",
        "state",
        "stealing",
        "token",
    )

    def __init__(
        self, index: int, call_sock: socket.socket, ctl_sock: socket.socket
    ) -> None:
        self.index = index
        self.token = index
        self.pid: int | None = None
        self.call_sock = call_sock
        self.ctl_sock = ctl_sock
        self.call_reader = _wire.FrameReader(call_sock)
        self.ctl_reader = _wire.FrameReader(ctl_sock)
        self.outstanding: deque[_Call] = deque()
        self.assigned = 0
        self.processed = 0
        self.state = _RUNNING
        self.stealing = False
        self.idle = False
        self.started_at = 0.0
        self.spawned_at = time.monotonic()
        self.kill_at: float | None = None
        self.pending_signal: int | None = None

    @property
    def name(self) -> str:
        return f"prefork-{self.index}"


class PreforkPool(Pool):
    """Runs each call in a worker process forked by the pool's fork server.

    Args:
        start_method: How the fork server starts: ``"fork"`` from this process
            (workers inherit everything imported so far; only allowed while
            this process runs a single thread), ``"spawn"`` as a fresh
            interpreter (callables must be importable), or ``"auto"`` (the
            default): ``fork`` when this process runs one thread, else
            ``spawn``.
        term_signal: The signal :meth:`PoolFuture.terminate` sends by default.
        **options: The options of :class:`pools.Pool`.

    Raises:
        ValueError: An option is out of range, or ``start_method="fork"``
            while other threads run.
        PoolError: The fork server could not start.
    """

    kind = "prefork"
    default_size = os.cpu_count() or 1

    def __init__(
        self,
        *,
        start_method: StartMethod = "auto",
        term_signal: int = signal.SIGTERM,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if start_method not in ("auto", "fork", "spawn"):
            raise ValueError(
                f"start_method must be 'auto', 'fork' or 'spawn', not {start_method!r}",
            )
        self.term_signal = _check_signal(term_signal)
        threads = _thread_count()
        if start_method == "fork" and threads > 1:
            raise ValueError(
                f"start_method='fork' needs a single-threaded process, but this one "
                f"runs {threads} threads; create the pool before starting threads, "
                "or use start_method='spawn'",
            )
        if start_method == "auto":
            start_method = "fork" if threads == 1 else "spawn"
        self.start_method: StartMethod = start_method
        self._config = WorkerConfig(
            initializer=self.initializer,
            initargs=self.initargs,
            finalizer=self.finalizer,
            finalargs=self.finalargs,
            after_fork=self.after_fork,
            max_memory_kib=self.max_memory_per_child_kib,
        )
        self._ids = itertools.count(1)
        self._last_fn: tuple[Callable[..., Any], bytes] | None = None
        self._submitted: deque[_Call | list[_Call]] = deque()
        self._commands: deque[Callable[[], None]] = deque()
        self._pending: deque[_Call] = deque()
        self._calls: dict[int, _Call] = {}
        self._workers: dict[int, _Worker] = {}
        self._by_pid: dict[int, _Worker] = {}
        self._by_fd: dict[int, Callable[[], None]] = {}
        self._idle: list[_Worker] = []
        self._worker_ids = itertools.count(1)
        self._processed = 0
        self._shutting_down = False
        self._cancel_on_shutdown = False
        self._cold_shutdown = False
        self._finished = False
        self._broken: str | None = None
        self._respawn_at = 0.0
        self._server_exited = False
        self._poller = select.poll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # Closed with the pool object, never earlier: a late submit must not
        # write into a descriptor number reused by someone else.
        weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)
        self._wakeup_pending = False
        self._server_pid = 0
        self._server_process: subprocess.Popen[bytes] | None = None
        self._server_sock = self._start_server()
        self._server_reader = _wire.FrameReader(self._server_sock)
        self._register(self._wake_r, self._on_wakeup)
        self._register(self._server_sock.fileno(), self._on_server)
        for _ in range(self._size):
            self._spawn()
        self._thread = threading.Thread(
            target=self._run, name="pools-prefork-manager", daemon=True
        )
        self._thread.start()
        _live_pools.add(self)

    # The fork server.

    def _start_server(self) -> socket.socket:
        mine, theirs = socket.socketpair()
        _owner_fds.add(mine.fileno())
        owner = os.getpid()
        from_main = threading.current_thread() is threading.main_thread()
        if self.start_method == "fork":
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    if stream is not None:
                        stream.flush()
            pid = os.fork()
            if pid == 0:
                serve(
                    theirs,
                    self._config,
                    owner,
                    death_signal=from_main,
                    close_fds=[self._wake_r, self._wake_w],
                )
            self._server_pid = pid
        else:
            from billiard import spawn

            try:
                config_bytes = pickle.dumps(self._config, _wire.PROTOCOL)
            except Exception as exc:
                theirs.close()
                mine.close()
                _owner_fds.discard(mine.fileno())
                raise UnpicklableCallError(
                    "the initializer, finalizer or after_fork hook",
                    f"{type(exc).__name__}: {exc} (the fork server was started "
                    "with 'spawn' because this process runs threads)",
                ) from exc
            preparation = spawn.get_preparation_data("pools-fork-server")
            # The fork server needs paths and the main module, not billiard's
            # process identity (whose authkey refuses to be pickled).
            preparation.pop("authkey", None)
            self._server_process = subprocess.Popen(  # noqa: S603 - our own interpreter
                [
                    sys.executable,
                    "-c",
                    "from pools._forkserver import main; main()",
                    str(theirs.fileno()),
                    str(owner),
                    "1" if from_main else "0",
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
            self._server_pid = self._server_process.pid
            mine.sendall(
                _wire.pickle_frame(SERVER, (preparation, config_bytes)),
            )
        theirs.close()
        reader = _wire.FrameReader(mine)
        mine.settimeout(_SERVER_START_TIMEOUT)
        try:
            got = reader.read_one()
        except TimeoutError:
            got = None
        mine.settimeout(None)
        if got is None or pickle.loads(got[1])[0] != "ready":  # noqa: S301 - our server
            detail = pickle.loads(got[1])[1] if got is not None else "no answer"  # noqa: S301
            self._reap_server(kill=True)
            mine.close()
            _owner_fds.discard(mine.fileno())
            raise PoolError(f"the prefork pool's fork server did not start: {detail}")
        return mine

    def _reap_server(self, *, kill: bool = False) -> None:
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._server_pid, signal.SIGKILL)
        if self._server_process is not None:
            self._server_process.wait()
        else:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._server_pid, 0)

    def _to_server(self, *message: object) -> None:
        try:
            self._server_sock.sendall(_wire.pickle_frame(SERVER, message))
        except OSError:
            logger.debug("the fork server is gone; dropping %r", message)

    # Submitting.

    def submit_call(
        self,
        fn: Callable[..., _T],
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
    ) -> PoolFuture[_T]:
        """Schedule ``fn(*args, **kwargs)`` in a worker process.

        Raises:
            PoolClosedError: The pool is shut down.
            UnpicklableCallError: *fn* or its arguments cannot be pickled.
        """
        soft, hard = self._check_call(fn, soft_time_limit, time_limit)
        fn_bytes = self._pickle_fn(fn)
        try:
            payload = dumps(tuple(args), _wire.PROTOCOL)
            extra = dumps(dict(kwargs), _wire.PROTOCOL) if kwargs else None
        except Exception as exc:
            raise _unpicklable(fn, exc) from exc
        future: PoolFuture[_T] = PoolFuture()
        call = _Call(next(self._ids), future, fn_bytes, payload, extra, soft, hard)
        future._token = call
        future._terminator = self._request_terminate
        with self._state_lock:
            self._check_open(fn)
            self._submitted.append(call)
        self._wake()
        return future

    def submit_many(
        self,
        fn: Callable[..., _T],
        argslist: Iterable[Iterable[Any]],
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
    ) -> list[PoolFuture[_T]]:
        """Schedule ``fn(*args)`` for each *args*, sent to workers in chunks.

        The callable is pickled once for the whole batch, and calls reach the
        workers while later ones are still being prepared. A call whose
        arguments cannot be pickled gets a future failed with
        :class:`~pools.UnpicklableCallError`; the others run.

        Raises:
            PoolClosedError: The pool is shut down.
            UnpicklableCallError: *fn* itself cannot be pickled (nothing is
                submitted).
        """
        soft, hard = self._check_call(fn, soft_time_limit, time_limit)
        fn_bytes = self._pickle_fn(fn)
        protocol = _wire.PROTOCOL
        ids = self._ids
        terminator = self._request_terminate
        futures: list[PoolFuture[_T]] = []
        batch: list[_Call] = []
        for args in argslist:
            future: PoolFuture[_T] = PoolFuture()
            futures.append(future)
            try:
                payload = dumps(args if type(args) is tuple else tuple(args), protocol)
            except Exception as exc:  # noqa: BLE001 - fails only this call's future
                future.set_exception(_unpicklable(fn, exc))
                continue
            call = _Call(next(ids), future, fn_bytes, payload, None, soft, hard)
            future._token = call
            future._terminator = terminator
            batch.append(call)
            if len(batch) >= _HANDOFF:
                # Hand over early so workers start while the rest is prepared.
                self._hand_over(fn, batch)
                batch = []
        if batch:
            self._hand_over(fn, batch)
        return futures

    def _hand_over(self, fn: object, batch: list[_Call]) -> None:
        with self._state_lock:
            self._check_open(fn)
            self._submitted.append(batch)
        self._wake()

    def _pickle_fn(self, fn: Callable[..., Any]) -> bytes:
        """Pickle *fn*, reusing the bytes when the same callable comes again."""
        cached = self._last_fn
        if cached is not None and cached[0] is fn:
            return cached[1]
        try:
            fn_bytes = dumps(fn, _wire.PROTOCOL)
        except Exception as exc:
            raise _unpicklable(fn, exc) from exc
        self._last_fn = (fn, fn_bytes)
        return fn_bytes

    def _wake(self) -> None:
        if not self._wakeup_pending and not self._finished:
            self._wakeup_pending = True
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"\0")

    def _command(self, command: Callable[[], None]) -> None:
        self._commands.append(command)
        self._wake()

    def _stopped(self) -> bool:
        return self._finished

    def _in_manager(self) -> bool:
        return threading.current_thread() is self._thread

    # Public controls.

    def _request_terminate(self, future: PoolFuture[Any], signum: int | None) -> bool:
        sig = self.term_signal if signum is None else _check_signal(signum)
        call: _Call = future._token
        if self._finished:
            return False
        self._command(lambda: self._terminate(call, sig))
        return True

    def grow(self, n: int = 1) -> None:
        """Add *n* worker processes; see :meth:`Pool.grow`."""
        count = self._resize_check(n, shrinking=False)
        with self._state_lock:
            self._size += count
        self._command(self._reconcile)

    def shrink(self, n: int = 1) -> None:
        """Stop *n* workers once they finish their current call."""
        with self._state_lock:
            count = self._resize_check(n, shrinking=True)
            self._size -= count
        self._command(self._reconcile)

    def stats(self) -> PoolStats:
        """Return sizes, busy workers, processed calls, each worker's pid and RSS."""
        if self._finished or self._in_manager():
            return self._stats()
        result: Future[PoolStats] = Future()
        self._command(lambda: result.set_result(self._stats()))
        while True:
            try:
                return result.result(timeout=0.5)
            except FutureTimeoutError:
                if self._stopped():  # the manager will not answer any more
                    return self._stats()

    def _stats(self) -> PoolStats:
        # Workers being stopped or killed are on their way out: not listed.
        live = [
            w for w in list(self._workers.values()) if w.state in (_RUNNING, _RETIRING)
        ]
        workers = tuple(
            WorkerStats(
                name=w.name,
                pid=w.pid,
                busy=bool(w.outstanding),
                processed=w.processed,
                rss_kib=process_rss_kib(w.pid) if w.pid is not None else None,
            )
            for w in live
        )
        return PoolStats(
            kind=self.kind,
            size=self._size,
            busy=sum(1 for w in workers if w.busy),
            queued=len(self._pending)
            + sum(max(0, len(w.outstanding) - 1) for w in list(self._workers.values()))
            + sum(1 if isinstance(c, _Call) else len(c) for c in list(self._submitted)),
            processed=self._processed,
            workers=workers,
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool; see :meth:`Pool.shutdown`. No process outlives it."""
        cold = not wait and cancel_futures
        with self._state_lock:
            first = not self._closed
            self._closed = True
            # A cold shutdown after a warm one (a second signal) still stops
            # the running calls at once.
            escalate = cold and not first and not self._cold_shutdown
            self._cold_shutdown = self._cold_shutdown or cold
        if first or escalate:
            self._command(
                lambda: self._begin_shutdown(cancel=cancel_futures, cold=cold)
            )
        if wait and not self._in_manager():
            self._thread.join()

    # The manager thread.

    def _register(self, fd: int, handler: Callable[[], None]) -> None:
        self._by_fd[fd] = handler
        self._poller.register(fd, select.POLLIN)

    def _unregister(self, fd: int) -> None:
        if self._by_fd.pop(fd, None) is not None:
            self._poller.unregister(fd)

    def _run(self) -> None:
        try:
            while not self._finished:
                timeout = self._next_timeout()
                events = self._poller.poll(
                    None if timeout is None else max(0, timeout) * 1000
                )
                for fd, _event in events:
                    handler = self._by_fd.get(fd)
                    if handler is not None:
                        handler()
                self._take_submissions()
                while self._commands:
                    self._commands.popleft()()
                self._check_deadlines()
                self._dispatch()
                if self._shutting_down:
                    self._advance_shutdown()
        except BaseException:
            logger.exception(
                "the prefork pool's manager thread failed; the pool is broken"
            )
            self._break("the pool's manager thread failed")
        finally:
            self._cleanup()

    def _next_timeout(self) -> float | None:
        if self._submitted or self._commands:
            return 0.0
        now = time.monotonic()
        soonest: float | None = None
        for w in self._workers.values():
            when: float | None = None
            if w.outstanding and w.state != _KILLED:
                hard = w.outstanding[0].hard
                if hard is not None:
                    when = w.started_at + hard
            if w.kill_at is not None and (when is None or w.kill_at < when):
                when = w.kill_at
            if when is not None and (soonest is None or when < soonest):
                soonest = when
        if self._respawn_at and (soonest is None or self._respawn_at < soonest):
            soonest = self._respawn_at
        return None if soonest is None else soonest - now

    def _on_wakeup(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        self._wakeup_pending = False

    def _take_submissions(self) -> None:
        submitted, pending, calls = self._submitted, self._pending, self._calls
        while submitted:
            item = submitted.popleft()
            if isinstance(item, _Call):
                calls[item.id] = item
                pending.append(item)
            else:
                for call in item:
                    calls[call.id] = call
                pending.extend(item)

    def _on_server(self) -> None:
        frames = self._server_reader.read_available()
        for _kind, body in frames:
            message = pickle.loads(body)  # noqa: S301 - from our fork server
            command = message[0]
            if command == "spawned":
                self._on_spawned(message[1], message[2])
            elif command == "exited":
                self._on_exited(message[1], message[2])
            elif command == "failed":
                self._on_spawn_failed(message[1], message[2])
        if self._server_reader.eof:
            self._unregister(self._server_sock.fileno())
            self._server_exited = True
            if not self._shutting_down or self._workers:
                self._break("its fork server exited unexpectedly")

    # Workers.

    def _spawn(self) -> None:
        index = next(self._worker_ids)
        call_mine, call_theirs = socket.socketpair()
        ctl_mine, ctl_theirs = socket.socketpair()
        worker = _Worker(index, call_mine, ctl_mine)
        try:
            socket.send_fds(
                self._server_sock,
                [_wire.pickle_frame(SERVER, ("spawn", worker.token))],
                [call_theirs.fileno(), ctl_theirs.fileno()],
            )
        except OSError:
            call_mine.close()
            ctl_mine.close()
            self._break("its fork server stopped answering")
            return
        finally:
            call_theirs.close()
            ctl_theirs.close()
        for sock in (call_mine, ctl_mine):
            _owner_fds.add(sock.fileno())
        self._workers[worker.token] = worker
        self._register(call_mine.fileno(), lambda: self._on_call_socket(worker))
        self._register(ctl_mine.fileno(), lambda: self._on_ctl_socket(worker))
        self._refresh(worker)

    def _on_spawned(self, token: int, pid: int) -> None:
        worker = self._workers.get(token)
        if worker is None:
            return
        worker.pid = pid
        self._by_pid[pid] = worker
        logger.debug("prefork worker %s started as pid %d", worker.name, pid)
        if worker.pending_signal is not None:
            self._to_server("kill", pid, worker.pending_signal)

    def _on_spawn_failed(self, token: int, reason: str) -> None:
        worker = self._workers.get(token)
        logger.error("the fork server could not start a prefork worker: %s", reason)
        if worker is not None:
            self._remove(worker, None)
            self._respawn_at = time.monotonic() + _RESPAWN_DELAY

    def _refresh(self, w: _Worker) -> None:
        """Move *w* into or out of the idle list, or stop it, after a change."""
        if w.outstanding or w.stealing:
            if w.idle:
                w.idle = False
                self._idle.remove(w)
            return
        if w.state == _RUNNING:
            limit = self.max_tasks_per_child
            recycle = limit is not None and w.assigned >= limit
            if recycle or (self._shutting_down and not self._pending):
                self._stop(w)
            elif not w.idle:
                w.idle = True
                self._idle.append(w)
            return
        if w.idle:
            w.idle = False
            self._idle.remove(w)
        if w.state == _RETIRING:
            self._stop(w)

    def _stop(self, w: _Worker) -> None:
        if w.idle:
            w.idle = False
            self._idle.remove(w)
        w.state = _STOPPING
        self._send(w, w.call_sock, _wire.frame(_wire.STOP))
        self._reconcile()

    def _send(self, w: _Worker, sock: socket.socket, data: bytes) -> bool:
        try:
            _wire.send_all(sock, data, _SEND_TIMEOUT)
        except TimeoutError:
            logger.error(
                "prefork worker %s (pid %s) stopped reading for %g s; killing it",
                w.name,
                w.pid,
                _SEND_TIMEOUT,
            )
            self._kill(w, signal.SIGKILL)
            return False
        except OSError:
            return False  # it died; the fork server's report follows
        return True

    def _kill(self, w: _Worker, signum: int) -> None:
        if w.state != _KILLED:
            w.state = _KILLED
            w.kill_at = time.monotonic() + _KILL_GRACE
            if w.idle:
                w.idle = False
                self._idle.remove(w)
            # Calls it has not started go to other workers.
            if len(w.outstanding) > 1 and not w.stealing:
                w.stealing = True
                self._send(
                    w,
                    w.ctl_sock,
                    _wire.frame(_wire.STEAL, _wire.ID.pack(len(w.outstanding))),
                )
        if w.pid is None:
            w.pending_signal = signum
        else:
            self._to_server("kill", w.pid, signum)
        self._reconcile()

    def _dispatch(self) -> None:
        pending, idle = self._pending, self._idle
        if not pending:
            if idle and not self._shutting_down:
                self._steal()
            return
        now = time.monotonic()
        limit = self.max_tasks_per_child
        while pending and idle:
            w = idle.pop()
            w.idle = False
            count = min(_MAX_CHUNK, -(-len(pending) // (len(idle) + 1)))
            if limit is not None:
                count = min(count, limit - w.assigned)
            batch: list[_Call] = []
            size = 0
            while pending and len(batch) < count and size < _MAX_CHUNK_BYTES:
                call = pending.popleft()
                if not call.marked_running:
                    if not call.future.set_running_or_notify_cancel():
                        self._calls.pop(call.id, None)
                        continue
                    call.marked_running = True
                call.worker = w
                batch.append(call)
                size += len(call.payload)
            if not batch:
                self._refresh(w)
                continue
            w.outstanding.extend(batch)
            w.assigned += len(batch)
            w.started_at = now
            body = dumps(
                [(c.id, c.soft, c.fn, c.payload, c.kwargs) for c in batch],
                _wire.PROTOCOL,
            )
            self._send(w, w.call_sock, _wire.frame(_wire.CALLS, body))
        if not pending and idle and not self._shutting_down:
            self._steal()

    def _steal(self) -> None:
        """Take back calls that busy workers have not started, for idle ones."""
        idle = len(self._idle)
        for w in list(self._workers.values()):
            if w.state == _RUNNING and not w.stealing and len(w.outstanding) > 1:
                waiting = len(w.outstanding) - 1
                count = max(1, waiting * idle // (idle + 1))
                w.stealing = True
                self._send(
                    w, w.ctl_sock, _wire.frame(_wire.STEAL, _wire.ID.pack(count))
                )

    def _requeue(self, w: _Worker, ids: list[int]) -> None:
        """Put calls that *w* handed back in front of the queue, in order."""
        returned = []
        for call_id in ids:
            call = self._calls.get(call_id)
            if call is None or call.worker is not w:
                continue
            with contextlib.suppress(ValueError):
                w.outstanding.remove(call)
            call.worker = None
            w.assigned -= 1
            returned.append(call)
        if self._cancel_on_shutdown:
            for call in returned:
                self._calls.pop(call.id, None)
                _settle(call.future, exc=CancelledError())
        else:
            self._pending.extendleft(reversed(returned))

    def _on_call_socket(self, w: _Worker) -> None:
        for kind, body in w.call_reader.read_available():
            self._on_call_frame(w, kind, body)
        if w.call_reader.eof:
            self._unregister(w.call_sock.fileno())

    def _on_call_frame(self, w: _Worker, kind: int, body: bytes) -> None:
        if kind in (_wire.RESULT, _wire.ERROR, _wire.UNPICKLABLE):
            (call_id,) = _wire.ID.unpack_from(body)
            call = self._calls.pop(call_id, None)
            w.processed += 1
            self._processed += 1
            outstanding = w.outstanding
            if outstanding and outstanding[0].id == call_id:
                outstanding.popleft()
                w.started_at = time.monotonic()
            elif call is not None:
                with contextlib.suppress(ValueError):
                    outstanding.remove(call)
            if call is not None:
                self._resolve(call, kind, body)
            if not outstanding:
                self._refresh(w)
        elif kind == _wire.RETIRE:
            self._requeue(w, pickle.loads(body))  # noqa: S301 - from our worker
            if w.state == _RUNNING:
                w.state = _RETIRING
                self._reconcile()
            self._refresh(w)
        elif kind == _wire.LOG:
            level, message = pickle.loads(body)  # noqa: S301 - from our worker
            logger.log(level, "%s", message)

    def _resolve(self, call: _Call, kind: int, body: bytes) -> None:
        future = call.future
        if future.done():
            return
        try:
            if kind == _wire.RESULT:
                _settle(future, pickle.loads(memoryview(body)[8:]))  # noqa: S301 - from our worker
                return
            if kind == _wire.ERROR:
                exc, type_name, message, text = pickle.loads(memoryview(body)[8:])  # noqa: S301
                if exc is None:
                    exc = RemoteException(type_name, message, text)
                else:
                    exc.__cause__ = RemoteTraceback(text)
                _settle(future, exc=exc)
                return
            type_name, reason = pickle.loads(memoryview(body)[8:])  # noqa: S301
            _settle(future, exc=UnpicklableResultError(type_name, reason))
        except Exception as exc:  # noqa: BLE001 - fails only this future
            _settle(
                future,
                exc=UnpicklableResultError(
                    "value",
                    f"it could not be unpickled here: {type(exc).__name__}: {exc}",
                ),
            )

    def _on_ctl_socket(self, w: _Worker) -> None:
        for kind, body in w.ctl_reader.read_available():
            if kind == _wire.RETURNED:
                w.stealing = False
                self._requeue(w, pickle.loads(body))  # noqa: S301 - from our worker
                self._refresh(w)
            elif kind == _wire.DROPPED:
                (call_id,) = _wire.ID.unpack_from(body)
                call = self._calls.get(call_id)
                if call is None:
                    continue
                if body[8:9] == b"\1":
                    self._calls.pop(call_id, None)
                    with contextlib.suppress(ValueError):
                        w.outstanding.remove(call)
                    w.assigned -= 1
                    _settle(call.future, exc=TerminatedError())
                    self._refresh(w)
                elif w.outstanding and w.outstanding[0] is call:
                    self._terminate(call, self.term_signal)
        if w.ctl_reader.eof:
            self._unregister(w.ctl_sock.fileno())

    def _on_exited(self, pid: int, code: int) -> None:
        w = self._by_pid.pop(pid, None)
        if w is None:
            return
        # Everything the worker wrote before dying is already buffered.
        self._on_ctl_socket(w)
        while True:
            for kind, body in w.call_reader.read_available():
                self._on_call_frame(w, kind, body)
            if w.call_reader.eof or not w.call_reader.got:
                break
        while not w.ctl_reader.eof and w.ctl_reader.got:
            self._on_ctl_socket(w)
        self._remove(w, code)

    def _remove(self, w: _Worker, code: int | None) -> None:
        expected = w.state in (_STOPPING, _KILLED)
        self._workers.pop(w.token, None)
        if w.pid is not None:
            self._by_pid.pop(w.pid, None)
        if w.idle:
            w.idle = False
            self._idle.remove(w)
        for sock in (w.call_sock, w.ctl_sock):
            self._unregister(sock.fileno())
            _owner_fds.discard(sock.fileno())
            sock.close()
        outstanding = w.outstanding
        crashed_alone = not outstanding and w.processed == 0
        if outstanding and code is None:
            self._requeue(w, [call.id for call in outstanding])
        elif outstanding and code is not None:
            first = outstanding.popleft()
            w.assigned -= 1
            if self._calls.pop(first.id, None) is not None:
                logger.error(
                    "prefork worker %s (pid %s) died with %s while running a call",
                    w.name,
                    w.pid,
                    describe_exit(code),
                )
                _settle(
                    first.future,
                    exc=WorkerLostError(
                        exitcode=code if code >= 0 else None,
                        signal=-code if code < 0 else None,
                    ),
                )
            self._requeue(w, [call.id for call in outstanding])
        elif not expected and code is not None:
            logger.warning(
                "prefork worker %s (pid %s) exited with %s while idle; replacing it",
                w.name,
                w.pid,
                describe_exit(code),
            )
        elif code not in (None, 0) and w.state == _STOPPING:
            logger.warning(
                "prefork worker %s (pid %s) stopped with %s",
                w.name,
                w.pid,
                describe_exit(code),
            )
        if (
            not expected
            and crashed_alone
            and time.monotonic() - w.spawned_at < _RESPAWN_DELAY
        ):
            # Dying at start-up, before any call: do not fork in a tight loop.
            self._respawn_at = time.monotonic() + _RESPAWN_DELAY
        self._reconcile()

    def _reconcile(self) -> None:
        """Start or stop workers until the running ones match the target size."""
        if self._broken is not None:
            return
        running = [w for w in self._workers.values() if w.state == _RUNNING]
        if self._shutting_down:
            # Calls handed back by a worker that was killed still have to run.
            if self._pending and not running:
                for _ in range(min(self._size, len(self._pending))):
                    self._spawn()
            return
        missing = self._size - len(running)
        if missing > 0:
            if self._respawn_at:
                if time.monotonic() < self._respawn_at:
                    return
                self._respawn_at = 0.0
            for _ in range(missing):
                self._spawn()
        elif missing < 0:
            # Idle workers stop first; busy ones hand back their queued calls.
            running.sort(key=lambda w: len(w.outstanding))
            for w in running[:-missing]:
                w.state = _RETIRING
                if len(w.outstanding) > 1 and not w.stealing:
                    w.stealing = True
                    self._send(
                        w,
                        w.ctl_sock,
                        _wire.frame(_wire.STEAL, _wire.ID.pack(len(w.outstanding))),
                    )
                self._refresh(w)

    def _terminate(self, call: _Call, signum: int) -> None:
        if call.future.done():
            return
        w = call.worker
        if w is None:
            # Not handed to a worker (or handed back): it never started.
            with contextlib.suppress(ValueError):
                self._pending.remove(call)
            self._calls.pop(call.id, None)
            if not call.future.cancel():
                _settle(call.future, exc=TerminatedError())
            return
        if w.outstanding and w.outstanding[0] is call:
            logger.info(
                "terminating the call running in prefork worker %s (pid %s) with %s",
                w.name,
                w.pid,
                describe_exit(-signum),
            )
            self._calls.pop(call.id, None)
            _settle(call.future, exc=TerminatedError(signum))
            self._kill(w, signum)
        else:
            self._send(w, w.ctl_sock, _wire.frame(_wire.DROP, _wire.ID.pack(call.id)))

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for w in list(self._workers.values()):
            if w.kill_at is not None and now >= w.kill_at:
                w.kill_at = None
                logger.warning(
                    "prefork worker %s (pid %s) survived its stop signal; SIGKILL",
                    w.name,
                    w.pid,
                )
                self._kill(w, signal.SIGKILL)
                continue
            if not w.outstanding or w.state == _KILLED:
                continue
            call = w.outstanding[0]
            if call.hard is not None and now >= w.started_at + call.hard:
                logger.error(
                    "a call in prefork worker %s (pid %s) passed its hard time limit "
                    "(%g s); killing the worker",
                    w.name,
                    w.pid,
                    call.hard,
                )
                self._calls.pop(call.id, None)
                _settle(call.future, exc=TimeLimitExceeded(call.hard))
                self._kill(w, signal.SIGKILL)
        if self._respawn_at and now >= self._respawn_at:
            self._reconcile()

    # Shutting down.

    def _begin_shutdown(self, *, cancel: bool, cold: bool) -> None:
        self._shutting_down = True
        self._take_submissions()
        if cancel:
            self._cancel_on_shutdown = True
            while self._pending:
                call = self._pending.popleft()
                self._calls.pop(call.id, None)
                if not call.future.cancel():
                    _settle(call.future, exc=CancelledError())
        for w in list(self._workers.values()):
            if cold and w.outstanding:
                call = w.outstanding[0]
                self._calls.pop(call.id, None)
                _settle(call.future, exc=TerminatedError(signal.SIGKILL))
                self._kill(w, signal.SIGKILL)
            elif cancel and len(w.outstanding) > 1 and not w.stealing:
                w.stealing = True
                self._send(
                    w,
                    w.ctl_sock,
                    _wire.frame(_wire.STEAL, _wire.ID.pack(len(w.outstanding))),
                )
            if w.state == _RUNNING or w.state == _RETIRING:
                self._refresh(w)

    def _advance_shutdown(self) -> None:
        if self._pending:
            return
        for w in list(self._workers.values()):
            if (
                w.state in (_RUNNING, _RETIRING)
                and not w.outstanding
                and not w.stealing
            ):
                self._stop(w)
        if not self._workers:
            if not self._server_exited:
                self._to_server("exit")
                self._server_sock.shutdown(socket.SHUT_WR)
                self._server_exited = True
            self._finished = True

    def _break(self, reason: str) -> None:
        """Fail everything and stop: the pool cannot go on without its fork server."""
        if self._broken is not None:
            return
        self._broken = reason
        self._closed = True
        self._shutting_down = True
        error = PoolBrokenError(
            f"the prefork pool is broken: {reason}; its unfinished calls failed; "
            "create a new pool",
        )
        self._take_submissions()
        for call in list(self._calls.values()):
            _settle(call.future, exc=error)
        self._calls.clear()
        self._pending.clear()
        for w in list(self._workers.values()):
            if w.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGKILL)
            w.outstanding.clear()
            w.state = _KILLED
            self._remove(w, None)
        self._finished = True

    def _cleanup(self) -> None:
        self._finished = True
        self._closed = True
        with contextlib.suppress(OSError):
            self._server_sock.shutdown(socket.SHUT_RDWR)
        self._reap_server(kill=self._broken is not None)
        _owner_fds.discard(self._server_sock.fileno())
        self._server_sock.close()
        for w in list(self._workers.values()):
            for sock in (w.call_sock, w.ctl_sock):
                _owner_fds.discard(sock.fileno())
                sock.close()
        self._workers.clear()
        # Calls submitted while the manager stopped have nobody to run them.
        with self._state_lock:
            self._take_submissions()
        leftover = PoolBrokenError(
            f"the prefork pool stopped: {self._broken or 'shut down'}"
        )
        for call in self._calls.values():
            _settle(call.future, exc=leftover)
        self._calls.clear()


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _forget_pools_in_child() -> None:
    """In a process forked from a pool's process: its pools are not ours."""
    for fd in _owner_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    _owner_fds.clear()
    for pool in list(_live_pools):
        pool._closed = True
        pool._finished = True
    _live_pools.clear()


os.register_at_fork(after_in_child=_forget_pools_in_child)


def _unpicklable(fn: object, exc: Exception) -> UnpicklableCallError:
    return UnpicklableCallError(describe_callable(fn), f"{type(exc).__name__}: {exc}")


def _check_signal(signum: object) -> int:
    try:
        if isinstance(signum, int):
            return int(signal.Signals(signum))
    except ValueError:
        pass
    raise ValueError(
        f"{signum!r} is not a signal number; pass one such as signal.SIGTERM"
    )


@atexit.register
def _shutdown_live_pools() -> None:
    for pool in list(_live_pools):
        pool.shutdown(wait=True)
