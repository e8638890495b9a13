"""Service markers and fixtures shared by every integration test.

Each service has a marker (``@pytest.mark.redis``) and a fixture returning its URL
from the environment (``redis_url``; ``tests-integration/services/up`` prints the
variables). Before a test that needs a service runs, the service is probed once
per session with a short timeout. An unreachable service skips the test with the
reason, unless its marker name is listed in ``QUEUE_REQUIRE_SERVICES``
(comma-separated, e.g. ``redis,amqp``), which turns the skip into a failure.
Tests that use a service fixture get its marker automatically.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, settings

# Shared CI machines are slow and noisy: no per-example deadline in property
# tests; HYPOTHESIS_PROFILE=thorough runs more examples.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

CONNECT_TIMEOUT = 1.5
REQUIRE_VARIABLE = "QUEUE_REQUIRE_SERVICES"
UP_HINT = "start services with tests-integration/services/up"


class ProbeError(Exception):
    """A service did not answer its protocol-level ping as expected."""


Address = tuple[str, int]


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ProbeError("the server closed the connection")
        data += chunk
    return bytes(data)


def _exchange(address: Address, request: bytes, size: int) -> bytes:
    with socket.create_connection(address, timeout=CONNECT_TIMEOUT) as sock:
        if request:
            sock.sendall(request)
        return _recv_exact(sock, size)


def _redis_reply(address: Address, *args: str) -> list[bytes | None]:
    """Send one command; return a simple or bulk reply as one item, arrays flat."""
    request = b"*%d\r\n" % len(args)
    for arg in args:
        request += b"$%d\r\n%s\r\n" % (len(arg.encode()), arg.encode())
    with socket.create_connection(address, timeout=CONNECT_TIMEOUT) as sock:
        sock.sendall(request)
        with sock.makefile("rb") as stream:
            line = stream.readline()
            is_array = line.startswith(b"*")
            items: list[bytes | None] = []
            for _ in range(max(int(line[1:]), 0) if is_array else 1):
                if is_array:
                    line = stream.readline()
                if line.startswith(b"-"):
                    raise ProbeError(line[1:].strip().decode(errors="replace"))
                if line.startswith(b"$"):
                    size = int(line[1:])
                    items.append(None if size < 0 else stream.read(size + 2)[:-2])
                else:
                    items.append(line[1:].strip())
            return items


def _probe_redis(addresses: list[Address]) -> None:
    reply = _redis_reply(addresses[0], "PING")
    if reply != [b"PONG"]:
        raise ProbeError(f"PING answered {reply!r}")


def _probe_sentinel(addresses: list[Address]) -> None:
    master = os.environ.get("REDIS_SENTINEL_MASTER", "queue-meta")
    for address in addresses:
        reply = _redis_reply(address, "SENTINEL", "get-master-addr-by-name", master)
        if len(reply) != 2:
            raise ProbeError(
                f"sentinel {address[0]}:{address[1]} knows no master {master!r}"
            )


def _probe_amqp(addresses: list[Address]) -> None:
    frame = _exchange(addresses[0], b"AMQP\x00\x00\x09\x01", 11)
    if frame[0] != 1 or frame[7:11] != b"\x00\x0a\x00\x0a":
        raise ProbeError("no AMQP 0-9-1 Connection.Start")


def _probe_postgres(addresses: list[Address]) -> None:
    # SSLRequest: any server answers a single byte, S or N, without a session.
    if _exchange(addresses[0], struct.pack("!ii", 8, 80877103), 1) not in (b"S", b"N"):
        raise ProbeError("no answer to a PostgreSQL SSLRequest")


def _probe_mysql(addresses: list[Address]) -> None:
    greeting = _exchange(addresses[0], b"", 5)
    if greeting[4] != 10:
        raise ProbeError("no MySQL protocol 10 greeting")


def _probe_memcached(addresses: list[Address]) -> None:
    if _exchange(addresses[0], b"version\r\n", 8) != b"VERSION ":
        raise ProbeError("no answer to 'version'")


def _http_status(address: Address, method: str, body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection(*address, timeout=CONNECT_TIMEOUT)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request(method, "/", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    if method == "GET":
        json.loads(payload)
    return response.status


def _probe_sqs(addresses: list[Address]) -> None:
    status = _http_status(addresses[0], "POST", b"Action=ListQueues&Version=2012-11-05")
    if status != 200:
        raise ProbeError(f"ListQueues answered HTTP {status}")


def _probe_couchdb(addresses: list[Address]) -> None:
    status = _http_status(addresses[0], "GET")
    if status != 200:
        raise ProbeError(f"GET / answered HTTP {status}")


def _probe_mongodb(addresses: list[Address]) -> None:
    elements = b"\x10ping\x00\x01\x00\x00\x00\x02$db\x00\x06\x00\x00\x00admin\x00"
    doc = struct.pack("<i", len(elements) + 5) + elements + b"\x00"
    body = b"\x00\x00\x00\x00\x00" + doc
    header = struct.pack("<iiii", 16 + len(body), 1, 0, 2013)
    reply = _exchange(addresses[0], header + body, 16)
    if struct.unpack("<i", reply[12:16])[0] != 2013:
        raise ProbeError("no OP_MSG reply to ping")


def _probe_cassandra(addresses: list[Address]) -> None:
    options = b"\x04\x00\x00\x00\x05\x00\x00\x00\x00"  # CQL v4 OPTIONS frame
    if _exchange(addresses[0], options, 9)[4] != 0x06:
        raise ProbeError("no SUPPORTED reply to a CQL OPTIONS frame")


@dataclass(frozen=True)
class Service:
    """A service tests can require: its marker, variable, fixture and probe."""

    marker: str
    variable: str
    fixture: str
    default_port: int
    probe: Callable[[list[Address]], None]
    note: str = ""


SERVICES = {
    service.marker: service
    for service in (
        Service("redis", "REDIS_URL", "redis_url", 6379, _probe_redis),
        Service("amqp", "AMQP_URL", "amqp_url", 5672, _probe_amqp),
        Service("postgres", "POSTGRES_URL", "postgres_url", 5432, _probe_postgres),
        Service("mysql", "MYSQL_URL", "mysql_url", 3306, _probe_mysql),
        Service("memcached", "MEMCACHED_URL", "memcached_url", 11211, _probe_memcached),
        Service(
            "sentinel",
            "REDIS_SENTINEL_URL",
            "redis_sentinel_url",
            26379,
            _probe_sentinel,
        ),
        Service("sqs", "SQS_ENDPOINT_URL", "sqs_endpoint_url", 80, _probe_sqs),
        Service("mongodb", "MONGODB_URL", "mongodb_url", 27017, _probe_mongodb),
        Service("couchdb", "COUCHDB_URL", "couchdb_url", 5984, _probe_couchdb),
        Service(
            "cassandra",
            "CASSANDRA_URL",
            "cassandra_url",
            9042,
            _probe_cassandra,
            note="no Cassandra server can run on this machine (none in Debian, PyPI"
            " or npm); its tests run when tests-integration/services/up finds a"
            " Docker engine and starts docker-compose.yml",
        ),
    )
}
FIXTURES = {service.fixture: service for service in SERVICES.values()}


def mask_url(url: str) -> str:
    """Return *url* with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def service_addresses(url: str, default_port: int) -> list[Address]:
    """Return the host/port pairs of *url*; sentinel URLs may list several.

    ``sentinel://h1:26379,h2:26380`` and kombu's ``sentinel://h1:26379;sentinel://h2``
    are both accepted.
    """
    addresses = []
    for part in url.replace(";", ",").split(","):
        text = part if "://" in part else f"sentinel://{part}"
        parts = urlsplit(text)
        addresses.append((parts.hostname or "127.0.0.1", parts.port or default_port))
    return addresses


def required_services() -> set[str]:
    """Return the marker names listed in ``QUEUE_REQUIRE_SERVICES``."""
    value = os.environ.get(REQUIRE_VARIABLE, "")
    return {name.strip() for name in value.split(",") if name.strip()}


def _problem(service: Service) -> str | None:
    """Return why *service* is unusable, or None when it answers."""
    url = os.environ.get(service.variable, "").strip()
    if not url:
        reason = service.note or UP_HINT
        return f"{service.marker}: {service.variable} is not set; {reason}"
    try:
        service.probe(service_addresses(url, service.default_port))
    except (OSError, ProbeError, ValueError, IndexError) as exc:
        return (
            f"{service.marker}: not answering at {mask_url(url)}"
            f" ({service.variable}): {exc or type(exc).__name__}; {UP_HINT}"
        )
    return None


_verdicts = pytest.StashKey[dict[str, str | None]]()


def require_service(config: pytest.Config, marker: str) -> None:
    """Skip (or, if required, fail) the current test when *marker*'s service is down."""
    verdicts = config.stash.setdefault(_verdicts, {})
    if marker not in verdicts:
        verdicts[marker] = _problem(SERVICES[marker])
    problem = verdicts[marker]
    if problem is None:
        return
    if marker in required_services():
        pytest.fail(f"required by {REQUIRE_VARIABLE}: {problem}", pytrace=False)
    pytest.skip(problem)


def pytest_configure(config: pytest.Config) -> None:
    for service in SERVICES.values():
        config.addinivalue_line(
            "markers",
            f"{service.marker}: needs {service.marker} ({service.variable});"
            f" skipped when unreachable unless listed in {REQUIRE_VARIABLE}",
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for name in getattr(item, "fixturenames", ()):
            service = FIXTURES.get(name)
            if service and not item.get_closest_marker(service.marker):
                item.add_marker(getattr(pytest.mark, service.marker))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in dict.fromkeys(mark.name for mark in item.iter_markers()):
        if marker in SERVICES:
            require_service(item.config, marker)


def _service_url(request: pytest.FixtureRequest, marker: str) -> str:
    require_service(request.config, marker)
    return os.environ[SERVICES[marker].variable].strip()


def _url_fixture(marker: str, doc: str) -> Callable[..., str]:
    """Make the fixture that returns *marker*'s URL, or skips/fails without it."""

    def fixture(request: pytest.FixtureRequest) -> str:
        return _service_url(request, marker)

    fixture.__doc__ = doc
    return pytest.fixture(name=SERVICES[marker].fixture)(fixture)


redis_url = _url_fixture(
    "redis", "URL of a Redis server shared with others: use unique keys, never flush."
)
amqp_url = _url_fixture(
    "amqp", "URL of a RabbitMQ broker, ``amqp://user:password@host:port/vhost``."
)
postgres_url = _url_fixture(
    "postgres", "libpq URL of a PostgreSQL database (``postgresql://user@host/db``)."
)
mysql_url = _url_fixture(
    "mysql", "URL of a MariaDB/MySQL database (``mysql://user@host:port/db``)."
)
memcached_url = _url_fixture(
    "memcached", "URL of a memcached server (``memcached://host:port``)."
)
redis_sentinel_url = _url_fixture(
    "sentinel", "``sentinel://h1:p1,h2:p2,...`` of sentinels watching a private master."
)
sqs_endpoint_url = _url_fixture(
    "sqs", "Endpoint of an SQS-compatible server; credentials come from AWS_* vars."
)
mongodb_url = _url_fixture(
    "mongodb", "MongoDB connection string; its path names the database to use."
)
couchdb_url = _url_fixture("couchdb", "Base URL of a CouchDB-compatible server.")
cassandra_url = _url_fixture(
    "cassandra", "``cassandra://host:port`` of a Cassandra node (docker compose only)."
)


@pytest.fixture
def redis_sentinel_addresses(redis_sentinel_url: str) -> list[Address]:
    """The (host, port) pairs of the sentinels in ``REDIS_SENTINEL_URL``."""
    return service_addresses(redis_sentinel_url, SERVICES["sentinel"].default_port)


@pytest.fixture
def redis_sentinel_master(redis_sentinel_url: str) -> str:
    """The master name the sentinels monitor (``REDIS_SENTINEL_MASTER``)."""
    return os.environ.get("REDIS_SENTINEL_MASTER", "queue-meta")


@pytest.fixture
def unique_name() -> Callable[..., str]:
    """Return a factory of names no other test run uses: ``qm_<prefix>_<hex>``.

    The names are lowercase letters, digits and underscores, valid as queue, key,
    table, collection and database names on every service here.
    """

    def make(prefix: str = "test") -> str:
        return f"qm_{prefix}_{secrets.token_hex(5)}"

    return make
