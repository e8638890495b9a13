"""The ``queue`` command line (also ``python -m queue_meta``).

``queue -A proj worker -l info``, ``queue call proj.add --args '[1, 2]'``,
``queue result <id> --wait``, ``queue purge -f``, ``queue status --local``,
``queue bench``, ``queue --version``. ``inspect``, ``control``, cluster-wide
``status`` and ``events`` arrive with events and remote control. Errors are
one line on stderr and a non-zero exit status, never a traceback.

For ``-P gevent`` and ``-P eventlet`` the standard library is monkey-patched
before queue-meta's broker code or the user's app is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App

__all__ = ["COMPONENTS", "CommandError", "build_parser", "load_app", "main", "versions"]

#: The distributions queue-meta assembles, reported by ``queue --version``.
COMPONENTS = ("queue-meta", "msgwire", "transports", "resultstores", "pools", "signing")

POOLS = ("prefork", "threads", "solo", "eventlet", "gevent", "asyncio")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class CommandError(Exception):
    """A command failed in a way the user can fix; the message says how."""


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


# -- loading the app ---------------------------------------------------------------


def load_app(spec: str | None) -> App:
    """Import the app of ``-A``: ``module``, ``module:attribute``, ``module.attribute``.

    Raises:
        CommandError: The module cannot be imported or holds no app.
    """
    from .app import App

    if not spec:
        spec = os.environ.get("QUEUE_APP")
    if not spec:
        raise CommandError(
            "no app given: pass -A/--app MODULE (the module that creates App(...)), "
            "or set QUEUE_APP"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (
            exc.name
            and module_name.startswith(exc.name)
            and "." in module_name
            and not attribute
        ):
            head, _, tail = module_name.rpartition(".")
            try:
                return _app_from(importlib.import_module(head), tail, spec, App)
            except ModuleNotFoundError:
                pass
        if exc.name and module_name.split(".")[0] == exc.name.split(".")[0]:
            raise CommandError(
                f"cannot import app module {module_name!r}: {exc}; run queue from the "
                "directory that holds it, or add that directory to PYTHONPATH"
            ) from None
        raise CommandError(
            f"app module {module_name!r} failed to import: {exc} "
            "(install what it needs)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any error in user code is reported
        raise CommandError(
            f"app module {module_name!r} raised {type(exc).__name__} while "
            f"importing: {exc}"
        ) from None
    return _app_from(module, attribute, spec, App)


def _app_from(module: Any, attribute: str, spec: str, app_class: type[App]) -> App:
    if attribute:
        found = getattr(module, attribute, None)
        if not isinstance(found, app_class):
            raise CommandError(
                f"{spec!r}: {module.__name__} has no App called {attribute!r}"
            )
        found.import_path = f"{module.__name__}:{attribute}"
        return found
    for name in ("app", "celery", "application"):
        found = getattr(module, name, None)
        if isinstance(found, app_class):
            found.import_path = f"{module.__name__}:{name}"
            return found
    apps = [(k, v) for k, v in vars(module).items() if isinstance(v, app_class)]
    if len(apps) == 1:
        apps[0][1].import_path = f"{module.__name__}:{apps[0][0]}"
        return apps[0][1]
    if not apps:
        raise CommandError(
            f"module {module.__name__!r} holds no App; create one there "
            "(app = App(...)) or name it with -A module:attribute"
        )
    names = ", ".join(k for k, _ in apps)
    raise CommandError(
        f"module {module.__name__!r} holds several apps ({names}); choose one with "
        f"-A {module.__name__}:NAME"
    )


# -- logging -----------------------------------------------------------------------


class _Formatter(logging.Formatter):
    """Uses the task format for records logged inside a task."""

    def __init__(self, plain: str, task: str) -> None:
        super().__init__(plain)
        self._task = logging.Formatter(task)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "task_id", "???") != "???":
            return self._task.format(record)
        return super().format(record)


def setup_logging(app: App | None, level: str, logfile: str | None) -> None:
    """Configure the root logger once, for the command line only."""
    conf = app.conf if app is not None else None
    plain = getattr(conf, "worker_log_format", None) or (
        "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
    )
    task = getattr(conf, "worker_task_log_format", None) or (
        "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: "
        "%(message)s"
    )
    handler: logging.Handler
    if logfile:
        handler = logging.FileHandler(logfile)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(plain, task))
    from .task import _TaskLogFilter

    handler.addFilter(_TaskLogFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# -- commands ----------------------------------------------------------------------


def _cmd_worker(options: argparse.Namespace) -> int:
    app = load_app(options.app)
    setup_logging(app, options.loglevel, options.logfile)
    autoscale = None
    if options.autoscale:
        try:
            high, _, low = options.autoscale.partition(",")
            autoscale = (int(high), int(low or 0))
        except ValueError:
            raise CommandError(
                f"--autoscale takes MAX,MIN (e.g. 10,3), got {options.autoscale!r}"
            ) from None
    queues = None
    if options.queues:
        queues = [q.strip() for q in ",".join(options.queues).split(",") if q.strip()]
    worker = app.Worker(
        queues=queues,
        concurrency=options.concurrency,
        pool=options.pool,
        hostname=options.hostname,
        prefetch_multiplier=options.prefetch_multiplier,
        max_tasks_per_child=options.max_tasks_per_child,
        max_memory_per_child=options.max_memory_per_child,
        autoscale=autoscale,
        time_limit=options.time_limit,
        soft_time_limit=options.soft_time_limit,
        statedb=options.statedb,
        heartbeat_file=options.heartbeat_file,
    )
    pidfile = options.pidfile
    if pidfile:
        _write_pidfile(pidfile)
    try:
        sys.stderr.write(worker.banner() + "\n\n")
        sys.stderr.flush()
        worker.install_signal_handlers()
        worker.start()
    finally:
        if pidfile:
            with contextlib.suppress(OSError):
                os.unlink(pidfile)
    return 0


def _cmd_status(options: argparse.Namespace) -> int:
    from .worker import check_heartbeat

    if not options.local:
        raise CommandError(
            "cluster-wide status comes with events and remote control; for a "
            "worker on this machine use: queue status --local --heartbeat-file PATH"
        )
    path = options.heartbeat_file
    if not path and options.app:
        path = load_app(options.app).conf.worker_heartbeat_file
    if not path:
        raise CommandError(
            "give --heartbeat-file PATH (the worker's --heartbeat-file), or -A APP "
            "with the worker_heartbeat_file setting"
        )
    alive, line = check_heartbeat(str(path), options.max_age)
    print(line)
    return 0 if alive else 1


def _write_pidfile(path: str) -> None:
    try:
        with open(path) as file:
            old = int(file.read().strip() or 0)
    except (OSError, ValueError):
        old = 0
    if old:
        try:
            os.kill(old, 0)
        except OSError:
            pass
        else:
            raise CommandError(
                f"pidfile {path} names process {old}, which is running: another worker "
                "uses it; stop it or choose another --pidfile"
            )
    with open(path, "w") as file:
        file.write(f"{os.getpid()}\n")


def _json_arg(text: str | None, what: str, kind: type) -> Any:
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except ValueError as exc:
        example = "[1, 2]" if kind is list else '{"x": 1}'
        raise CommandError(f"{what} must be JSON, e.g. {example}: {exc}") from None
    if not isinstance(value, kind):
        shape = "array" if kind is list else "object"
        raise CommandError(f"{what} must be a JSON {shape}, got {text!r}")
    return value


def _cmd_call(options: argparse.Namespace) -> int:
    app = load_app(options.app)
    args = _json_arg(options.args, "--args", list)
    kwargs = _json_arg(options.kwargs, "--kwargs", dict)
    call: dict[str, Any] = {}
    if options.countdown is not None:
        call["countdown"] = options.countdown
    if options.eta:
        call["eta"] = options.eta
    if options.expires is not None:
        call["expires"] = options.expires
    if options.queue:
        call["queue"] = options.queue
    task = app.tasks.get(options.name)
    if task is not None:
        try:
            task.check_arguments(args, kwargs)
        except TypeError as exc:
            raise CommandError(str(exc)) from None
    sent = app.send_task(options.name, args, kwargs, **call)
    sys.stdout.write(f"{sent.id}\n")
    return 0


def _cmd_result(options: argparse.Namespace) -> int:
    app = load_app(options.app)
    result = app.AsyncResult(options.task_id)
    if options.wait:
        from .errors import TimeoutError as QueueTimeout

        try:
            value = result.get(timeout=options.timeout, propagate=False)
        except QueueTimeout as exc:
            raise CommandError(str(exc)) from None
    else:
        value = result.result
    state = result.state
    shown = (
        value
        if not isinstance(value, BaseException)
        else f"{type(value).__name__}: {value}"
    )
    try:
        text = json.dumps(shown, default=repr)
    except (TypeError, ValueError):
        text = repr(shown)
    sys.stdout.write(f"{text}\n")
    sys.stderr.write(f"state: {state}\n")
    return 0 if state != "FAILURE" else 1


def _cmd_purge(options: argparse.Namespace) -> int:
    app = load_app(options.app)
    queues = [q.strip() for q in ",".join(options.queues or []).split(",") if q.strip()]
    queues = queues or [app.conf.task_default_queue]
    if not options.force:
        answer = input(
            f"Remove every waiting message from {', '.join(queues)}? This cannot be "
            "undone. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    total = 0
    for name in queues:
        total += app.transport.purge(name)
    sys.stdout.write(f"purged {total} messages from {', '.join(queues)}\n")
    return 0


def _cmd_bench(options: argparse.Namespace) -> int:
    from .bench import run

    return run(options)


def _add_app(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "-A", "--app", default=default,
        help="the app: MODULE, MODULE:ATTRIBUTE (default: $QUEUE_APP)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``queue`` command."""
    parser = argparse.ArgumentParser(
        prog="queue", description="queue-meta: a distributed task queue for Python."
    )
    parser.add_argument(
        "--version", action="store_true",
        help="print the versions of queue-meta and its libraries, then exit",
    )  # fmt: skip
    _add_app(parser, None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    worker = commands.add_parser("worker", help="start a worker")
    _add_app(worker, argparse.SUPPRESS)
    worker.add_argument(
        "-Q", "--queues", action="append", help="queues, comma-separated"
    )
    worker.add_argument("-c", "--concurrency", type=_positive_int, help="pool size")
    worker.add_argument(
        "-P", "--pool", choices=POOLS, help="pool kind (default: prefork)"
    )
    worker.add_argument("-n", "--hostname", help="node name; %%h is the host name")
    worker.add_argument(
        "-l", "--loglevel", default="WARNING", type=str.upper, choices=LEVELS,
        help="log level (default: WARNING)",
    )  # fmt: skip
    worker.add_argument(
        "--prefetch-multiplier", type=_natural, help="messages per slot"
    )
    worker.add_argument("--max-tasks-per-child", type=_positive_int)
    worker.add_argument("--max-memory-per-child", type=_positive_int, help="KiB")
    worker.add_argument("--autoscale", help="MAX,MIN pool size")
    worker.add_argument("--time-limit", type=_seconds, help="hard limit, seconds")
    worker.add_argument("--soft-time-limit", type=_seconds, help="soft limit, seconds")
    worker.add_argument("--statedb", help="file keeping revoked ids across restarts")
    worker.add_argument("--pidfile", help="write the pid here; refuse if one runs")
    worker.add_argument("--logfile", help="log to this file instead of stderr")
    worker.add_argument(
        "--heartbeat-file",
        help="liveness probe: rewrite this file every second while consuming",
    )
    worker.set_defaults(handler=_cmd_worker)

    call = commands.add_parser("call", help="send a task by name; prints its id")
    _add_app(call, argparse.SUPPRESS)
    call.add_argument("name", help="the task name, e.g. proj.add")
    call.add_argument("--args", "-a", help="positional arguments as a JSON array")
    call.add_argument("--kwargs", "-k", help="keyword arguments as a JSON object")
    call.add_argument("--countdown", type=_seconds, help="run in N seconds")
    call.add_argument("--eta", help="run at this ISO 8601 time")
    call.add_argument("--expires", type=_seconds, help="expire after N seconds")
    call.add_argument("--queue", "-Q", help="send to this queue")
    call.set_defaults(handler=_cmd_call)

    result = commands.add_parser("result", help="show a task's state and result")
    _add_app(result, argparse.SUPPRESS)
    result.add_argument("task_id")
    result.add_argument("--wait", action="store_true", help="wait until it is ready")
    result.add_argument("--timeout", type=_seconds, default=None, help="with --wait")
    result.set_defaults(handler=_cmd_result)

    purge = commands.add_parser("purge", help="remove waiting messages from queues")
    _add_app(purge, argparse.SUPPRESS)
    purge.add_argument(
        "-Q", "--queues", action="append", help="queues, comma-separated"
    )
    purge.add_argument("-f", "--force", action="store_true", help="do not ask")
    purge.set_defaults(handler=_cmd_purge)

    status = commands.add_parser(
        "status", help="is a worker alive? (--local: its heartbeat file)"
    )
    _add_app(status, argparse.SUPPRESS)
    status.add_argument(
        "--local", action="store_true",
        help="check a worker on this machine through its heartbeat file",
    )  # fmt: skip
    status.add_argument(
        "--heartbeat-file", help="the worker's --heartbeat-file (default: the "
        "app's worker_heartbeat_file setting)",
    )  # fmt: skip
    status.add_argument(
        "--max-age", type=_seconds, default=30.0,
        help="seconds after which a heartbeat is stale (default 30)",
    )  # fmt: skip
    status.set_defaults(handler=_cmd_status)

    bench = commands.add_parser("bench", help="measure no-op tasks on a broker")
    bench.add_argument(
        "--broker", default="redis://127.0.0.1:6379/0",
        help="broker URL (default: redis://127.0.0.1:6379/0)",
    )  # fmt: skip
    bench.add_argument(
        "--backend", help="result store of the round trip (default: the broker's "
        "Redis, rpc:// on AMQP)",
    )  # fmt: skip
    bench.add_argument("--tasks", type=_positive_int, default=20_000, help="per figure")
    bench.add_argument(
        "--pools", default="solo,threads,prefork,asyncio", help="comma-separated"
    )
    bench.add_argument(
        "--concurrency", type=_positive_int, default=2, help="prefork/threads size"
    )
    bench.add_argument(
        "--latency", type=_natural, default=1000, help="timed round trips"
    )
    bench.add_argument(
        "--repeat", type=_positive_int, default=1, help="runs; the best is shown"
    )
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.set_defaults(handler=_cmd_bench)
    return parser


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least *minimum*."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {minimum} or more, got {value}")
        return value

    return parse


_positive_int = _whole_number(1)
_natural = _whole_number(0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more seconds, got {value}")
    return value


def _pool_in(argv: Sequence[str]) -> str | None:
    """Find ``-P``/``--pool`` before argparse runs (to monkey-patch first)."""
    for index, arg in enumerate(argv):
        if arg in ("-P", "--pool") and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--pool="):
            return arg.split("=", 1)[1]
        if arg.startswith("-P") and len(arg) > 2:
            return arg[2:]
    return None


def _user_errors() -> tuple[type[BaseException], ...]:
    from msgwire import MsgwireError
    from resultstores import ResultStoreError
    from transports import TransportError

    from .errors import QueueMetaError

    return (
        CommandError,
        QueueMetaError,
        TransportError,
        ResultStoreError,
        MsgwireError,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``queue`` command; return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    pool = _pool_in(args)
    if pool in ("gevent", "eventlet"):
        from pools import monkey_patch

        monkey_patch(pool)
    parser = build_parser()
    options = parser.parse_args(args)
    if options.version:
        # Printed as is: argparse's version action would wrap it at 80 columns.
        sys.stdout.write(_version_text() + "\n")
        return 0
    handler: Callable[[argparse.Namespace], int] | None = getattr(
        options, "handler", None
    )
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status = handler(options)
    except KeyboardInterrupt:
        return 130
    except _user_errors() as exc:
        sys.stderr.write(f"queue {options.command}: error: {exc}\n")
        return 1
    if argv is None and pool in ("gevent", "eventlet") and options.command == "worker":
        _exit_now(status)
    return status


def _exit_now(status: int) -> None:
    """End a green worker's process after its clean stop, skipping finalization.

    Tearing down a monkey-patched interpreter (greenlets, eventlet's hub,
    hiredis) crashed with SIGSEGV once after a clean stop in CI, turning a
    status of 0 into -11 for supervisors. The exit handlers still run and the
    logs and streams are flushed first.
    """
    import atexit
    import logging

    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
