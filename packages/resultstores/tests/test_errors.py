from __future__ import annotations

import pickle

import pytest

import resultstores
from resultstores import errors

EXAMPLES = [
    errors.ResultStoreError("base"),
    errors.InvalidURLError("bad url"),
    errors.UnknownSchemeError("memcache", ("memcached", "memory", "redis")),
    errors.MissingDriverError("memcached", "memcached"),
    errors.ResultStoreConnectionError("connection refused"),
    errors.ResultTimeoutError("task-id", 2.5),
    errors.ResultTooLargeError("memcached", "task-id", 2_000_000, 1_048_000),
    errors.InvalidStateError("task state must be a str"),
    errors.RemoteTaskError(
        "MyError", "myapp.errors", ("boom", 1), "Traceback...", "not allowed"
    ),
]


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda exc: type(exc).__name__)
def test_every_public_exception_survives_pickling(exc: Exception) -> None:
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
    assert clone.__dict__ == exc.__dict__
    assert isinstance(clone, resultstores.ResultStoreError)


def test_unknown_scheme_names_the_closest_and_lists_the_installed() -> None:
    message = str(
        errors.UnknownSchemeError("memcache", ("memcached", "memory", "redis"))
    )
    assert "did you mean 'memcached'?" in message
    assert "installed: memcached, memory, redis" in message


def test_waiting_too_long_is_a_timeout_error() -> None:
    exc = errors.ResultTimeoutError("abc", 10.0)
    assert isinstance(exc, TimeoutError)
    assert str(exc) == "task abc did not finish within 10 seconds"


def test_missing_driver_names_the_extra() -> None:
    assert "pip install 'resultstores[cassandra]'" in str(
        errors.MissingDriverError("cassandra", "cassandra")
    )


def test_too_large_names_the_sizes_and_what_to_do() -> None:
    message = str(errors.ResultTooLargeError("memcached", "t1", 2_000_000, 1_048_000))
    assert "t1 is 2000000 bytes" in message
    assert "(1048000 bytes)" in message
    assert "return a smaller value" in message


def test_remote_task_error_shows_type_message_and_reason() -> None:
    exc = errors.RemoteTaskError(
        "MyError", "myapp.errors", ("boom",), "TB", "not allowed"
    )
    assert (
        str(exc)
        == "task raised myapp.errors.MyError('boom') [not rebuilt: not allowed]"
    )
    assert exc.traceback == "TB"


def test_version_comes_from_the_distribution_metadata() -> None:
    from importlib.metadata import version

    assert resultstores.__version__ == version("resultstores")
