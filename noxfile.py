"""Development sessions for the queue-meta monorepo.

``nox`` runs the default sessions (unit tests, lint, typecheck, packaging);
the README's test command adds ``interop`` and ``integration``. Every session
keeps its virtualenv in ``.nox/`` and reuses it, so a repeat run is quick.
Local packages are reinstalled on every run, so edits always reach the tests.

``demo`` is the README's main job (a worker on the embedded default doing real
work); ``bench`` runs a package's ``benchmarks/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox
import tomllib

ROOT = Path(__file__).parent
PACKAGES_DIR = ROOT / "packages"

# Each package and its in-repo dependencies, bottom first.
PACKAGES: dict[str, tuple[str, ...]] = {
    "msgwire": (),
    "signing": ("msgwire",),
    "transports": ("msgwire",),
    "resultstores": ("msgwire",),
    "pools": (),
    "queue-meta": ("msgwire", "signing", "transports", "resultstores", "pools"),
}
# The install recipe of a checkout, written down in README.md: siblings are not
# on an index, so they are installed together, in one command.
RECIPE = tuple(f"./packages/{name}" for name in PACKAGES)

# Services the integration suite can reach on this kind of machine.
SERVICES = "redis,amqp,postgres,mysql,memcached,sentinel,sqs,mongodb,couchdb"

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests", "lint", "typecheck", "packaging"]


def _group(package: str, group: str) -> list[str]:
    """Return the requirements of a dependency group of *package*'s pyproject."""
    with (PACKAGES_DIR / package / "pyproject.toml").open("rb") as file:
        groups = tomllib.load(file).get("dependency-groups", {})
    return [item for item in groups.get(group, []) if isinstance(item, str)]


def _install_local(session: nox.Session, *specs: str) -> None:
    """Install packages from their folders, rebuilt so that edits are picked up.

    A spec is a package folder name, optionally with extras: ``"resultstores[redis]"``.
    """
    names = [spec.partition("[")[0] for spec in specs]
    reinstall = [arg for name in names for arg in ("--reinstall-package", name)]
    session.install(*[f"./packages/{spec}" for spec in specs], *reinstall)


def _with_dependencies(package: str) -> tuple[str, ...]:
    return (*PACKAGES[package], package)


@nox.session
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """Unit tests of one package, in a virtualenv holding only it and its siblings."""
    session.install(*_group(package, "tests"))
    _install_local(session, *_with_dependencies(package))
    session.chdir(PACKAGES_DIR / package)
    session.run("pytest", *session.posargs)


@nox.session(default=False)
@nox.parametrize("package", list(PACKAGES))
def tests_lowest(session: nox.Session, package: str) -> None:
    """Unit tests of one package with every direct dependency at its floor."""
    session.install(*_group(package, "tests"))
    names = _with_dependencies(package)
    session.install(
        *[f"./packages/{name}" for name in names],
        "--resolution=lowest-direct",
        *[arg for name in names for arg in ("--reinstall-package", name)],
    )
    session.chdir(PACKAGES_DIR / package)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *session.posargs, ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
@nox.parametrize("package", list(PACKAGES))
def typecheck(session: nox.Session, package: str) -> None:
    """mypy --strict over one package's src/ and its typing example file."""
    session.install(*_group(package, "typecheck"))
    _install_local(session, *_with_dependencies(package))
    folder = PACKAGES_DIR / package
    session.chdir(folder)
    session.run(
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "src",
        "tests/typing_api.py",
        *session.posargs,
    )
    negative = folder / "tests" / "typing_errors.py"
    if negative.exists():
        _expect_type_errors(session, negative)


def _expect_type_errors(session: nox.Session, path: Path) -> None:
    """Run mypy on *path*; every line marked ``# error`` must be reported."""
    output = session.run(
        "mypy", "--config-file", str(ROOT / "pyproject.toml"), str(path),
        silent=True, success_codes=[1],
    ) or ""  # fmt: skip
    lines = path.read_text().splitlines()
    expected = {
        n for n, text in enumerate(lines, 1) if text.rstrip().endswith("# error")
    }
    reported = {
        int(match.group(1))
        for match in re.finditer(rf"{re.escape(path.name)}:(\d+): error", str(output))
    }
    if expected - reported or reported - expected:
        session.error(
            f"{path.name}: mypy should reject lines {sorted(expected)} and only those; "
            f"it reported {sorted(reported)}:\n{output}"
        )
    session.log(f"{path.name}: mypy rejects all {len(expected)} marked calls")


# Each library installed on its own (with only the siblings it needs), then the
# Python examples of its README run in that virtualenv. Extras are the ones the
# example needs.
STANDALONE: dict[str, tuple[str, ...]] = {
    "msgwire": ("./packages/msgwire",),
    "pools": ("./packages/pools",),
    "signing": ("./packages/msgwire", "./packages/signing"),
    "resultstores": ("./packages/msgwire", "./packages/resultstores[sqlalchemy]"),
}
DRIVERS = {
    "redis", "hiredis", "amqp", "pymongo", "pycouchdb", "sqlalchemy",
    "psycopg", "pymysql", "boto3", "pymemcache", "cassandra-driver",
}  # fmt: skip


# The example of the transports issue, on Redis (REDIS_URL or the local server).
TRANSPORTS_REDIS_EXAMPLE = """
import os, uuid
from transports import connect

url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
queue = f"qm_packaging_{uuid.uuid4().hex[:8]}"
with connect(url, global_keyprefix=queue + ":") as conn:
    conn.declare_queue(queue)
    conn.publish(queue, b"payload", headers={"task": "x"},
                 properties={"content_type": "application/json", "priority": 5},
                 delay=0.5)
    got = []
    for delivery in conn.consume([queue], prefetch=100, timeout=3.0):
        got.append((delivery.body, delivery.headers["task"]))
        delivery.ack()
    assert got == [(b"payload", "x")], got
    conn.delete_keys()
print("transports[redis] alone: published, delayed, consumed and acked on", url)
"""


def readme_examples(package: str) -> list[str]:
    """Return the ```python blocks of a package's README, in order."""
    text = (PACKAGES_DIR / package / "README.md").read_text()
    return re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


@nox.session(venv_backend="none")
def packaging(session: nox.Session) -> None:
    """Each library installed alone runs its README example; the checkout recipe.

    Uses plain ``venv`` + ``pip`` in fresh virtualenvs, exactly as the README
    tells a user, so nothing of nox's own environments helps it pass.
    """
    work = ROOT / ".nox" / "packaging"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.chdir(ROOT)

    def fresh(name: str) -> Path:
        venv = work / name
        session.run(sys.executable, "-m", "venv", str(venv), external=True)
        return venv / "bin" / "python"

    def pip(python: Path, *args: str) -> None:
        session.run(
            str(python), "-m", "pip", "install", "--quiet", *args, external=True
        )

    def installed(python: Path) -> set[str]:
        out = subprocess.run(
            [str(python), "-m", "pip", "list", "--format=freeze"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {line.split("==")[0].lower() for line in out.splitlines()}

    siblings = set(PACKAGES) | {"queue_meta"}
    for package, targets in STANDALONE.items():
        session.log(f"{package} alone: only what it needs, and its README example")
        python = fresh(package)
        pip(python, *targets)
        allowed = {target.rsplit("/", 1)[-1].partition("[")[0] for target in targets}
        if package == "resultstores":
            allowed.add("sqlalchemy")  # the extra its example uses
        extra = installed(python) & ((DRIVERS | siblings) - allowed)
        if extra:
            session.error(f"{package} alone installed {sorted(extra)}")
        for number, code in enumerate(readme_examples(package), 1):
            session.log(f"{package} README example {number}")
            session.run(str(python), "-c", code, external=True, silent=True)

    session.log("transports[redis] alone: the issue's example against the local Redis")
    python = fresh("transports-redis")
    pip(python, "./packages/msgwire", "./packages/transports[redis]")
    needed = {"msgwire", "transports", "redis", "hiredis"}
    extra = installed(python) & ((DRIVERS | siblings) - needed)
    if extra:
        session.error(f"transports[redis] alone installed {sorted(extra)}")
    session.run(str(python), "-c", TRANSPORTS_REDIS_EXAMPLE, external=True)

    session.log("the checkout recipe: every package in one pip command")
    python = fresh("recipe")
    pip(python, *RECIPE)
    session.run(
        str(python),
        "-c",
        "import queue_meta, msgwire, transports, resultstores, pools, signing",
        external=True,
    )
    missing = (DRIVERS | {"gevent", "eventlet", "msgpack", "pyyaml"}) - installed(
        python
    )
    if missing:
        session.error(f"queue-meta did not bring {sorted(missing)}")
    session.run(str(python.with_name("queue")), "--version", external=True)


def _services(session: nox.Session) -> None:
    """Bring the services up and put their URLs into the session's environment."""
    out = subprocess.run(
        [str(ROOT / "tests-integration" / "services" / "up")],
        capture_output=True,
        text=True,
    )
    sys.stderr.write(out.stderr)
    if out.returncode != 0:
        session.error("tests-integration/services/up failed; see the messages above")
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            session.env[key.strip()] = value.strip()
            session.log(f"{key.strip()}={value.strip()}")


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """The main job: a worker on the embedded SQLite default runs hundreds of tasks."""
    _install_local(session, *PACKAGES)
    session.run("python", "-m", "queue_meta.demo")


def _byte_compile(session: nox.Session) -> None:
    """Byte-compile what the session installed, as pip does for users.

    uv installs without compiling, and with PYTHONDONTWRITEBYTECODE set (this
    machine and many CI images set it) every process the tests or benchmarks
    start would compile its imports anew: a worker's imports took 1.1 s instead
    of 0.38 s here, and redis-py's 12,500-line commands module added 17 MiB of
    RSS to every worker.
    """
    session.run(
        "python", "-c",
        "import compileall, sysconfig; "
        "compileall.compile_dir(sysconfig.get_paths()['purelib'], quiet=1)",
        silent=True,
    )  # fmt: skip


@nox.session(default=False)
def integration(session: nox.Session) -> None:
    """tests-integration/ against real services (started by services/up).

    Paths among the arguments choose a part:
    ``nox -s integration -- tests-integration/transports -x``.
    """
    _services(session)
    session.install("pytest>=8", "hypothesis>=6.100")
    _install_local(session, *PACKAGES)
    _byte_compile(session)
    chosen = [arg for arg in session.posargs if arg.startswith("tests-integration")]
    session.run(
        "pytest",
        *([] if chosen else ["tests-integration"]),
        "--ignore=tests-integration/interop",
        "-p",
        "no:cacheprovider",
        # The slowest tests in every log: CI has 30 minutes for everything.
        "--durations=25",
        "--durations-min=5",
        *session.posargs,
    )


@nox.session(default=False)
def interop(session: nox.Session) -> None:
    """Interop tests with kombu and Celery, installed only in this virtualenv."""
    _services(session)
    session.install(
        "pytest>=8",
        "hypothesis>=6.100",
        "kombu>=5.7,<5.8",
        "celery>=5.7,<5.8",  # argsrepr follows 5.7's saferepr
        "msgpack>=1.0",
        "PyYAML>=6.0",
        "backports.zstd>=1.0; python_version < '3.14'",
    )
    _install_local(session, *PACKAGES)
    _byte_compile(session)
    chosen = [arg for arg in session.posargs if arg.startswith("tests-integration")]
    session.run(
        "pytest",
        *([] if chosen else ["tests-integration/interop"]),
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run packages' benchmarks/: ``nox -s bench -- msgwire [script options]``.

    Leading arguments that name packages choose them (all by default); the
    rest is passed to every benchmark script.
    """
    args = list(session.posargs)
    chosen = []
    while args and args[0] in PACKAGES:
        chosen.append(args.pop(0))
    for package in chosen or list(PACKAGES):
        folder = PACKAGES_DIR / package / "benchmarks"
        scripts = sorted(folder.glob("bench_*.py")) if folder.is_dir() else []
        if not scripts:
            session.log(f"{package} has no benchmarks yet")
            continue
        session.install(*_group(package, "tests"))
        if package == "queue-meta":
            # Measured beside queue-meta in the same run; only this venv has it.
            session.install("celery[redis]>=5.5,<5.8")
        _install_local(session, *_with_dependencies(package))
        _byte_compile(session)
        for script in scripts:
            session.run("python", str(script), *args)
