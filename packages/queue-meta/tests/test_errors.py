from __future__ import annotations

import pickle

import pytest

import queue_meta
from queue_meta import errors

EXAMPLES = [
    errors.QueueMetaError("base"),
    errors.ConfigurationError(
        "unknown setting 'brokr_url'; did you mean 'broker_url'?"
    ),
    errors.NotRegisteredError("proj.nope"),
]


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda exc: type(exc).__name__)
def test_every_public_exception_survives_pickling(exc: Exception) -> None:
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
    assert isinstance(clone, queue_meta.QueueMetaError)


def test_not_registered_reads_well_and_is_a_key_error() -> None:
    exc = errors.NotRegisteredError("proj.nope")
    assert isinstance(exc, KeyError)
    assert str(exc) == "task 'proj.nope' is not registered"
