"""The application: settings, task registry, broker and result connections.

::

    from queue_meta import App

    app = App("hello")            # no broker: the embedded SQLite default

    @app.task
    def hello() -> str:
        return "hello world"

``queue -A hello worker`` runs a worker; ``hello.delay().get(timeout=10)``
returns ``"hello world"``.
"""

from __future__ import annotations

import fnmatch
import importlib
import logging
import os
import re
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Literal,
    ParamSpec,
    TypeVar,
    overload,
)

from .canvas import Signature, signature
from .config import Settings
from .errors import ConfigurationError
from .task import Task, _current

if TYPE_CHECKING:
    import msgwire
    import transports
    from resultstores import ResultStore

    from .result import AsyncResult
    from .worker import Worker

__all__ = ["App", "current_app", "find_app", "shared_task"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_apps: weakref.WeakValueDictionary[str, App] = weakref.WeakValueDictionary()
_current_app: App | None = None
_shared: list[tuple[Callable[..., Any], dict[str, Any]]] = []
_lock = threading.RLock()
#: Forks this process descends from: an app whose count differs was made
#: before a fork and drops its parent's connections (cheaper than getpid()
#: at every use of ``app.transport``).
_forks = 0


def _count_fork() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_count_fork)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def current_app() -> App:
    """The app created last (or the one whose task is running); a default otherwise."""
    running = _current.get()
    if running is not None:
        return running[0].app
    global _current_app
    with _lock:
        if _current_app is None:
            _current_app = App("default")
        return _current_app


def find_app(name: str) -> App:
    """Return the live app called *name* (used to unpickle tasks)."""
    app = _apps.get(name)
    if app is None:
        raise LookupError(f"no app called {name!r} exists in this process")
    return app


def user_data_dir() -> Path:
    """The per-user data directory: ``$XDG_DATA_HOME`` or ``~/.local/share``."""
    base = os.environ.get("XDG_DATA_HOME")
    if sys.platform == "darwin" and not base:
        return Path.home() / "Library" / "Application Support" / "queue-meta"
    if os.name == "nt" and not base:
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "queue-meta"
    return Path(base or Path.home() / ".local" / "share") / "queue-meta"


#: Broker schemes whose server also keeps results when no result_backend is set.
_SAME_SERVER_RESULTS = frozenset(
    {"redis", "rediss", "memory", "postgresql", "postgres", "mysql", "mariadb"}
)  # fmt: skip


class App:
    """A queue-meta application.

    Args:
        main: The app's name; it names the embedded default's directory and
            replaces ``__main__`` in task names of the main module.
        broker: The broker URL (the ``broker_url`` setting).
        backend: The result backend URL (the ``result_backend`` setting).
        include: Modules to import when the worker starts.
        config_source: An object or module name to read settings from.
        set_as_current: Make this the app :func:`current_app` returns.
        **settings: Any setting by name (``task_acks_late=False``, ...).

    Raises:
        ConfigurationError: A setting is unknown or has the wrong type.
    """

    def __init__(
        self,
        main: str | None = None,
        *,
        broker: str | None = None,
        backend: str | None = None,
        include: Sequence[str] | None = None,
        config_source: Any = None,
        set_as_current: bool = True,
        **settings: Any,
    ) -> None:
        self.main = main or "__main__"
        given: dict[str, Any] = dict(settings)
        if broker is not None:
            given["broker_url"] = broker
        if backend is not None:
            given["result_backend"] = backend
        if include is not None:
            given["include"] = list(include)
        self.conf = Settings(environ=os.environ)
        if config_source is not None:
            self.conf.from_object(config_source)
        if given:
            self.conf.update(given)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._forks = _forks
        self._transport: transports.Transport | None = None
        self._backend: Any = None
        self._registry: msgwire.Registry | None = None
        self._declared: set[tuple[str, str]] = set()
        self._retry_policies: dict[tuple[Any, ...], Any] = {}
        self._conn_lock = threading.RLock()
        self._control: Any = None
        #: How the worker's pool children import this app ("module:attribute").
        self.import_path: str | None = None
        with _lock:
            _apps[self.main] = self
            if set_as_current:
                global _current_app
                _current_app = self
            for fn, options in _shared:
                self._register(fn, dict(options))

    def __repr__(self) -> str:
        return f"<App {self.main} broker={_mask(self.broker_url)}>"

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- settings --------------------------------------------------------------------

    def config_from_object(self, obj: Any, *, silent: bool = False) -> None:
        """Read settings from an object, class or module (name) and apply them.

        Raises:
            ConfigurationError: A setting is unknown or wrong (unless *silent*
                for a module that cannot be imported).
        """
        try:
            self.conf.from_object(obj)
        except ImportError:
            if not silent:
                raise
        self._reset_connections()

    @property
    def home(self) -> Path:
        """The embedded default's directory: ``$QUEUE_HOME/<app name>/``."""
        base = self.conf.queue_home or os.environ.get("QUEUE_HOME")
        root = Path(base).expanduser() if base else user_data_dir()
        return root / _SAFE_NAME.sub("_", self.main)

    @property
    def broker_url(self) -> str:
        """The broker URL: the setting, or the embedded SQLite file."""
        url = self.conf.broker_url
        if url:
            return str(url)
        return f"sqlite:///{self.home / 'broker.db'}"

    @property
    def result_backend_url(self) -> str:
        """The result backend URL: the setting, else where the broker is.

        With no ``result_backend``, results go to the broker's own server so
        that clients and workers on other machines see them: the same Redis
        or SQL database, ``rpc://`` (reply messages) on RabbitMQ, the memory
        store with ``memory://``; with no broker either (or another kind of
        broker URL, SQLite included: one file would serialize claims and result
        writes), to the embedded SQLite file under :attr:`home`.
        """
        url = self.conf.result_backend
        if url:
            return str(url)
        broker = self.conf.broker_url
        if broker:
            scheme, _, rest = str(broker).partition("://")
            if scheme in _SAME_SERVER_RESULTS:
                return str(broker)
            if scheme.startswith("sqlalchemy+"):
                return f"{scheme.removeprefix('sqlalchemy+')}://{rest}"
            if scheme in ("amqp", "amqps", "pyamqp"):
                return "rpc://"
        return self._embedded_results_url

    @property
    def _embedded_results_url(self) -> str:
        return f"sqlite:///{self.home / 'results.db'}"

    @property
    def uses_embedded_default(self) -> bool:
        """Whether the broker or backend is the embedded SQLite default."""
        return (
            not self.conf.broker_url
            or self.result_backend_url == self._embedded_results_url
        )

    # -- tasks -----------------------------------------------------------------------

    def gen_task_name(self, name: str, module: str) -> str:
        """The default task name: ``<module>.<function>`` (main module: app name)."""
        if module == "__main__" and self.main != "__main__":
            module = self.main
        return f"{module}.{name}"

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        bind: Literal[True],
        base: type[Task[Any, Any]] | None = ...,
        **options: Any,
    ) -> Callable[[Callable[Concatenate[Any, P], R]], Task[P, R]]: ...

    @overload
    def task(
        self,
        *,
        bind: Literal[False] = ...,
        base: type[Task[Any, Any]] | None = ...,
        **options: Any,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(  # type: ignore[misc]  # mypy: keyword-only overloads vs positional fn
        self,
        fn: Any = None,
        /,
        *,
        bind: bool = False,
        base: type[Task[Any, Any]] | None = None,
        **options: Any,
    ) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(**options)``.

        Options: ``name``, ``bind``, ``base``, ``max_retries``,
        ``default_retry_delay``, ``autoretry_for``, ``retry_backoff``,
        ``retry_backoff_max``, ``retry_jitter``, ``rate_limit``, ``time_limit``,
        ``soft_time_limit``, ``acks_late``, ``reject_on_worker_lost``,
        ``ignore_result``, ``track_started``, ``queue``, ``priority``,
        ``serializer``, ``compression``, ``expires``.
        """
        options["bind"] = bind
        if base is not None:
            options["base"] = base
        if fn is not None:
            if not callable(fn):
                raise TypeError(
                    f"@app.task decorates a function, got {fn!r}; for options "
                    "write @app.task(name=...)"
                )
            return self._register(fn, options)

        def decorate(function: Callable[..., Any]) -> Task[Any, Any]:
            return self._register(function, dict(options))

        return decorate

    def _register(
        self, fn: Callable[..., Any], options: dict[str, Any]
    ) -> Task[Any, Any]:
        base = options.pop("base", None) or Task
        if not (isinstance(base, type) and issubclass(base, Task)):
            raise TypeError(f"base must be a Task subclass, got {base!r}")
        task = base(fn, self, **options)
        existing = self.tasks.get(task.name)
        if existing is not None and getattr(
            existing.fn, "__code__", None
        ) is not getattr(fn, "__code__", None):
            logger.debug("task %s is registered again, the newer one wins", task.name)
        self.tasks[task.name] = task
        return task

    def autodiscover_tasks(
        self, packages: Iterable[str], related_name: str = "tasks"
    ) -> list[str]:
        """Import ``<package>.<related_name>`` for each package; return those found.

        A package without that module is skipped; an error inside one is raised.
        """
        found = []
        for package in packages:
            name = f"{package}.{related_name}" if related_name else package
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name not in (name, package):
                    raise
                continue
            found.append(name)
        return found

    def import_modules(self) -> None:
        """Import the modules of the ``imports`` and ``include`` settings."""
        for name in [*self.conf.imports, *self.conf.include]:
            importlib.import_module(name)

    def signature(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature[Any]:
        """A signature of task *name* (registered here or not)."""
        return Signature(name, args, kwargs, options, app=self)

    # -- connections -----------------------------------------------------------------

    def _check_fork(self) -> None:
        if self._forks != _forks:
            # A forked child never uses its parent's connections.
            self._forks = _forks
            self._transport = None
            self._backend = None
            self._declared = set()
            self._conn_lock = threading.RLock()

    def _reset_connections(self) -> None:
        with self._conn_lock:
            self._registry = None
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            if self._backend is not None:
                self._backend.close()
                self._backend = None
            self._declared = set()

    @property
    def registry(self) -> msgwire.Registry:
        """The msgwire registry: accept list, codecs, signing."""
        if self._registry is None:
            from .security import build_registry

            self._registry = build_registry(self.conf)
        return self._registry

    @property
    def transport(self) -> transports.Transport:
        """The broker connection of this process (opened on first use)."""
        self._check_fork()
        transport = self._transport
        if transport is None or transport.closed:
            with self._conn_lock:
                if self._transport is None or self._transport.closed:
                    self._transport = self._connect_broker()
                transport = self._transport
        return transport

    def connection(self) -> transports.Transport:
        """A new broker connection (the caller closes it)."""
        return self._connect_broker()

    def _connect_broker(self) -> transports.Transport:
        import transports

        url = self.broker_url
        if url.startswith("sqlite:///") and not self.conf.broker_url:
            self.home.mkdir(parents=True, exist_ok=True)
        options = dict(self.conf.broker_transport_options)
        return transports.connect(url, **options)

    @property
    def backend(self) -> ResultStore:
        """The result backend of this process (opened on first use)."""
        self._check_fork()
        backend = self._backend
        if backend is None:
            with self._conn_lock:
                if self._backend is None:
                    self._backend = self._connect_backend()
                backend = self._backend
        return backend  # type: ignore[no-any-return]

    def _connect_backend(self) -> Any:
        url = self.result_backend_url
        conf = self.conf
        if url.split(":", 1)[0] == "rpc":
            from .rpc import RPCBackend

            return RPCBackend(self)
        import resultstores

        if url == self._embedded_results_url:
            self.home.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = dict(conf.result_backend_transport_options)
        options.setdefault("serializer", conf.result_serializer)
        accept = conf.result_accept_content or conf.accept_content
        options.setdefault("accept", list(accept))
        options.setdefault("expires", conf.result_expires)
        modules = ["queue_meta", *conf.result_exception_modules]
        modules += sorted({task.__module__ for task in self.tasks.values()})
        options.setdefault("exception_modules", modules)
        return resultstores.connect(url, **options)

    @property
    def control(self) -> Any:
        """Remote control of workers (``revoke``)."""
        if self._control is None:
            from .control import Control

            self._control = Control(self)
        return self._control

    def close(self) -> None:
        """Close the broker and result backend connections of this process."""
        self._check_fork()
        self._reset_connections()

    # -- sending ---------------------------------------------------------------------

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        """Send task *name* (registered here or not) and return its result handle.

        Options as for :meth:`Task.apply_async`.
        """
        from .messaging import prepare, publish
        from .result import AsyncResult

        task = options.pop("_task", None) or self.tasks.get(name)
        prepared = prepare(self, name, args, kwargs, options, task)
        publish(self, [prepared], options.get("retry"), options.get("retry_policy"))
        return AsyncResult(prepared.task_id, self, task_name=name)

    def send_many(
        self, signatures: Iterable[Signature[Any] | Mapping[str, Any]]
    ) -> list[AsyncResult[Any]]:
        """Send many tasks in as few broker round trips as the broker allows.

        Returns:
            Their result handles, in order.
        """
        from .messaging import prepare, publish
        from .result import AsyncResult

        prepared = []
        for item in signatures:
            sig = signature(item, self)
            task = self.tasks.get(sig.task)
            if task is not None:
                task.check_arguments(sig.args, sig.kwargs)
            prepared.append(
                prepare(self, sig.task, sig.args, sig.kwargs, dict(sig.options), task)
            )
        publish(self, prepared)
        return [AsyncResult(p.task_id, self, task_name=p.name) for p in prepared]

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:  # noqa: N802 - Celery's name
        """A result handle for *task_id*."""
        from .result import AsyncResult

        return AsyncResult(task_id, self)

    def Worker(self, **options: Any) -> Worker:  # noqa: N802 - Celery's name
        """A worker for this app (see :class:`queue_meta.worker.Worker`)."""
        from .worker import Worker

        return Worker(self, **options)

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        return datetime.now(timezone.utc)


def shared_task(fn: Any = None, /, **options: Any) -> Any:
    """Register a task with every app, existing and future (for reusable modules)."""

    def decorate(function: Callable[..., Any]) -> Task[Any, Any]:
        with _lock:
            _shared.append((function, dict(options)))
            apps = list(_apps.values())
        registered = None
        for app in apps:
            registered = app._register(function, dict(options))
        if registered is None:
            registered = current_app()._register(function, dict(options))
        return registered

    if fn is not None:
        return decorate(fn)
    return decorate


def route_for(
    app: App, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], task: Any
) -> dict[str, Any]:
    """Resolve ``task_routes`` for task *name*: a dict of queue/exchange/routing_key."""
    routes = app.conf.task_routes
    if routes is None:
        return {}
    items = routes if isinstance(routes, (list, tuple)) else [routes]
    for item in items:
        found: Any = None
        if callable(item):
            found = item(name, args, kwargs, {}, task=task)
        elif isinstance(item, Mapping):
            if name in item:
                found = item[name]
            else:
                for pattern, value in item.items():
                    if isinstance(pattern, re.Pattern):
                        if pattern.match(name):
                            found = value
                            break
                    elif any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(
                        name, pattern
                    ):
                        found = value
                        break
        else:
            raise ConfigurationError(
                f"task_routes items must be dicts or functions, got {item!r}"
            )
        if found is None:
            continue
        if isinstance(found, str):
            return {"queue": found}
        if isinstance(found, Mapping):
            return dict(found)
        raise ConfigurationError(
            f"task_routes gave {found!r} for {name!r}; a route is a queue name or a "
            "dict with queue, exchange, routing_key, priority"
        )
    return {}


def _mask(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _as_datetime(value: Any, now: datetime) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, timedelta):
        return now + value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return now + timedelta(seconds=float(value))
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise TypeError(f"expected seconds, a datetime or ISO text, got {value!r}")
