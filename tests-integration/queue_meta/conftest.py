"""Real ``queue worker`` processes for the end-to-end tests of queue-meta.

``start_worker(source, ...)`` writes an app module to the test's ``tmp_path``,
imports it in the test process (the client side), starts
``python -m queue_meta -A <module> worker ...`` on it with ``QUEUE_HOME`` set
to ``tmp_path``, and waits until a ping task makes the round trip. Leaving the
``with`` block sends SIGTERM and asserts a clean exit (status 0) within a few
seconds. When anything fails, the worker's log is printed with the failure.

The module source is preceded by a prelude that defines::

    NAME          # a unique app name
    HOME          # the test's tmp_path, as text
    APP_OPTIONS   # broker, backend (when given), a unique task_default_queue

so the smallest app reads ``app = App(NAME, **APP_OPTIONS)``; the app must be
called ``app``. A ping task named ``e2e.ping`` is appended.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# The test modules' shared helpers (e2e_helpers.py) import from this folder.
sys.path.insert(0, str(Path(__file__).parent))

PYTHON = sys.executable
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

PRELUDE = """\
import os, sys, time
from pathlib import Path
from queue_meta import App

NAME = {name!r}
HOME = {home!r}
APP_OPTIONS = {options!r}
"""

PING = """

@app.task(name="e2e.ping")
def _e2e_ping():
    return "pong"
"""


def transport_available(module: str) -> str | None:
    """Return why ``transports.<module>`` cannot be used, or None if it imports."""
    try:
        importlib.import_module(f"transports.{module}")
    except ImportError as exc:
        return f"transports.{module} is not available yet ({exc})"
    return None


class RunningWorker:
    """A ``queue worker`` subprocess and the app module the test imported."""

    def __init__(
        self, proc: subprocess.Popen[bytes], module: ModuleType, log_path: Path
    ) -> None:
        self.proc = proc
        self.module = module
        self.app: Any = module.app
        self.log_path = log_path
        self.killed = False

    def log(self) -> str:
        """The worker's output so far (banner, log lines)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def lines(self, text: str) -> list[str]:
        """The log lines containing *text*."""
        return [line for line in self.log().splitlines() if text in line]

    def wait_for_log(self, text: str, timeout: float = 10.0, count: int = 1) -> None:
        """Wait until *count* log lines contain *text*."""
        deadline = time.monotonic() + timeout
        while len(self.lines(text)) < count:
            if self.proc.poll() is not None:
                pytest.fail(f"the worker exited ({self.proc.returncode}) before "
                            f"logging {text!r}")  # fmt: skip
            if time.monotonic() > deadline:
                pytest.fail(f"the worker did not log {text!r} within {timeout} s")
            time.sleep(0.05)

    def wait_ready(
        self, timeout: float = READY_TIMEOUT, *, logged: bool = True
    ) -> None:
        """Wait until the worker logs that it is ready and answers a ping.

        The log line first (unless not *logged* here: ``--logfile``): with
        several workers on one queue another may answer the ping while this
        one still starts (and a SIGTERM before its signal handlers are in
        place would kill it).
        """
        deadline = time.monotonic() + timeout
        if logged:
            self.wait_for_log(" ready.", timeout)
        result = self.module._e2e_ping.delay()
        while True:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"the worker exited with status {self.proc.returncode} at start"
                )
            try:
                assert result.get(timeout=0.5) == "pong"
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the worker did not answer a ping within {timeout} s")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send *signum* to the worker."""
        self.proc.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> float:
        """SIGTERM; assert exit status 0 within *timeout*; return seconds taken."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.dump_stacks()
            self.kill()
            pytest.fail(f"the worker did not stop within {timeout} s of SIGTERM")
        if not self.killed:
            assert status == 0, f"the worker exited with status {status}"
        return time.monotonic() - started

    def sigkill(self) -> None:
        """SIGKILL the worker (a fault test); the ``with`` block then expects it."""
        self.killed = True
        self.proc.kill()
        self.proc.wait(timeout=10)

    def dump_stacks(self) -> None:
        """Have faulthandler write every thread's stack to the log (SIGABRT)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=3)

    def kill(self) -> None:
        """Stop the worker now (after a failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUE_")}
    path = [str(home), *filter(None, [os.environ.get("PYTHONPATH")])]
    env.update(
        QUEUE_HOME=str(home),
        PYTHONPATH=os.pathsep.join(path),
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


class EndToEnd:
    """What the fixtures below hand to tests: app modules, workers, the CLI."""

    def __init__(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        unique_name: Callable[..., str],
    ) -> None:
        self.home = tmp_path
        self.unique_name = unique_name
        self.env = _environment(tmp_path)
        self._modules: list[ModuleType] = []
        for key in list(os.environ):
            if key.startswith("QUEUE_") and key != "QUEUE_REQUIRE_SERVICES":
                monkeypatch.delenv(key)
        monkeypatch.setenv("QUEUE_HOME", str(tmp_path))
        monkeypatch.syspath_prepend(str(tmp_path))

    def write_module(
        self,
        source: str,
        *,
        broker: str | None = None,
        backend: str | None = None,
        queue: str | None = None,
        ping: bool = True,
    ) -> str:
        """Write an app module under ``tmp_path``; return its module name."""
        name = self.unique_name("app")
        options: dict[str, Any] = {"task_default_queue": queue or name}
        if broker is not None:
            options["broker"] = broker
        if backend is not None:
            options["backend"] = backend
        prelude = PRELUDE.format(name=name, home=str(self.home), options=options)
        text = prelude + "\n" + source.strip("\n") + "\n" + (PING if ping else "")
        (self.home / f"{name}.py").write_text(text)
        return name

    def import_module(self, name: str) -> ModuleType:
        """Import an app module written by :meth:`write_module` (the client)."""
        importlib.invalidate_caches()
        module = importlib.import_module(name)
        self._modules.append(module)
        return module

    def cli(
        self, *args: str, timeout: float = 30.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m queue_meta *args`` in ``tmp_path``; capture its output."""
        return subprocess.run(
            [PYTHON, "-m", "queue_meta", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=timeout,
            input=input,
            check=False,
        )

    @contextlib.contextmanager
    def worker(
        self,
        source: str,
        *args: str,
        broker: str | None = None,
        backend: str | None = None,
        queue: str | None = None,
        pool: str = "prefork",
        concurrency: int = 2,
        clean_log: bool = True,
        module: ModuleType | None = None,
    ) -> Iterator[RunningWorker]:
        """Start a worker for the app in *source*; stop it with SIGTERM after.

        Args:
            source: The app module's code (after the prelude).
            args: More ``queue worker`` options.
            broker: The broker URL (None: the embedded default).
            backend: The result backend URL (None: the default for the broker).
            queue: The default queue (a unique one by default).
            pool: ``-P``.
            concurrency: ``-c``.
            clean_log: Fail if the log shows a traceback.
            module: Start on this app module (from an earlier worker) instead of
                writing *source* (then ignored) as a new one.
        """
        if module is None:
            name = self.write_module(
                source, broker=broker, backend=backend, queue=queue
            )
            module = self.import_module(name)
        name = module.__name__
        log_path = self.home / f"{name}.{len(list(self.home.glob(name + '*.log')))}.log"
        command = [
            PYTHON, "-X", "faulthandler", "-m", "queue_meta", "-A", name, "worker",
            "-P", pool, "-c", str(concurrency), "-l", "info", "-n", f"{name}@%h",
            *args,
        ]  # fmt: skip
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                cwd=self.home,
            )  # fmt: skip
        worker = RunningWorker(proc, module, log_path)
        try:
            worker.wait_ready(logged="--logfile" not in args)
            yield worker
            worker.stop()
            if clean_log:
                assert "Traceback" not in worker.log(), "the worker logged a traceback"
        except BaseException:
            worker.kill()
            sys.stdout.write(f"---- worker log ({' '.join(command[3:])}) ----\n")
            sys.stdout.write(worker.log() + "\n")
            raise
        finally:
            worker.kill()

    def close(self) -> None:
        for module in self._modules:
            app = getattr(module, "app", None)
            if app is not None:
                with contextlib.suppress(Exception):
                    app.close()
            sys.modules.pop(module.__name__, None)


@pytest.fixture
def e2e(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unique_name: Callable[..., str],
) -> Iterator[EndToEnd]:
    """App modules in ``tmp_path``, workers on them, and the ``queue`` CLI."""
    helper = EndToEnd(tmp_path, monkeypatch, unique_name)
    try:
        yield helper
    finally:
        helper.close()


@pytest.fixture
def redis_broker(redis_url: str) -> str:
    """``REDIS_URL``, once the Redis transport exists (skipped until then)."""
    reason = transport_available("_redis")
    if reason:
        pytest.skip(reason)
    return redis_url


@pytest.fixture
def amqp_broker(amqp_url: str) -> str:
    """``AMQP_URL``, once the AMQP transport exists (skipped until then)."""
    reason = transport_available("_amqp")
    if reason:
        pytest.skip(reason)
    return amqp_url


@pytest.fixture
def start_worker(e2e: EndToEnd) -> Callable[..., Any]:
    """``with start_worker(source, *args, broker=..., pool=...) as worker: ...``."""
    return e2e.worker
