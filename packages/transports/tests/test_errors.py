from __future__ import annotations

import pickle

import pytest

import transports
from transports import errors

EXAMPLES = [
    errors.TransportError("base"),
    errors.InvalidURLError("bad url"),
    errors.UnknownSchemeError("reddis", ("amqp", "memory", "redis")),
    errors.MissingDriverError("redis", "redis"),
    errors.TransportConnectionError("connection refused"),
    errors.TransportClosedError("closed"),
    errors.DeclarationMismatchError("q", {"x-max-priority": 10}, {"x-max-priority": 5}),
    errors.UnroutableError("no queue bound"),
]


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda exc: type(exc).__name__)
def test_every_public_exception_survives_pickling(exc: Exception) -> None:
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
    assert isinstance(clone, transports.TransportError)


def test_unknown_scheme_names_the_closest_and_lists_the_installed() -> None:
    message = str(errors.UnknownSchemeError("reddis", ("amqp", "memory", "redis")))
    assert message == (
        "unknown transport scheme 'reddis'; did you mean 'redis'? "
        "installed: amqp, memory, redis"
    )


def test_missing_driver_names_the_extra_and_is_an_import_error() -> None:
    exc = errors.MissingDriverError("redis", "redis")
    assert isinstance(exc, ImportError)
    assert "pip install 'transports[redis]'" in str(exc)


def test_a_declaration_mismatch_names_both_argument_sets() -> None:
    message = str(errors.DeclarationMismatchError("tasks", {"a": 1}, {"a": 2}))
    assert "{'a': 1}" in message
    assert "{'a': 2}" in message


def test_version_comes_from_the_distribution_metadata() -> None:
    from importlib.metadata import version

    assert transports.__version__ == version("transports")
