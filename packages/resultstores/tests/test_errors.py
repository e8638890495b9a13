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
    errors.StoreConnectionError("connection refused"),
    errors.ResultTimeoutError("task-id", 2.5),
]


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda exc: type(exc).__name__)
def test_every_public_exception_survives_pickling(exc: Exception) -> None:
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
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


def test_version_comes_from_the_distribution_metadata() -> None:
    from importlib.metadata import version

    assert resultstores.__version__ == version("resultstores")
