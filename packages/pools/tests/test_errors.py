from __future__ import annotations

import pickle
import signal
import sys

import pytest

import pools
from pools import errors

EXAMPLES = [
    errors.PoolError("base"),
    errors.UnknownPoolError("prefrok", ("prefork", "solo", "threads")),
    errors.MissingDriverError("gevent", "gevent"),
    errors.PoolClosedError("closed"),
    errors.SoftTimeLimitExceeded(),
    errors.TimeLimitExceeded(1.5),
    errors.WorkerLostError(exitcode=3),
    errors.WorkerLostError(signal=9),
    errors.RemoteException("mod.Weird", "it broke", "Traceback ...\n"),
    errors.RemoteTraceback("Traceback ...\n"),
    errors.TimeLimitExceeded(),
    errors.TerminatedError(),
    errors.TerminatedError(15),
    errors.UnpicklableCallError("mod.fn()", "TypeError: cannot pickle"),
    errors.UnpicklableResultError("_thread.lock", "TypeError: cannot pickle"),
    errors.PoolBrokenError("broken"),
    errors.PoolConflictError("prefork", ("a: x:Y", "b: z:W")),
]


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda exc: type(exc).__name__)
def test_every_public_exception_survives_pickling(exc: Exception) -> None:
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
    assert isinstance(clone, pools.PoolError)


def test_worker_lost_names_the_signal_or_exit_code() -> None:
    assert "signal SIGKILL (9)" in str(errors.WorkerLostError(signal=signal.SIGKILL))
    assert "exit code 3" in str(errors.WorkerLostError(exitcode=3))


def test_errors_name_what_happened() -> None:
    assert (
        str(errors.TerminatedError(15))
        == "the call was terminated with signal SIGTERM (15)"
    )
    assert str(errors.TimeLimitExceeded(2)) == "hard time limit (2 s) exceeded"
    assert "pip install 'pools[gevent]'" in str(
        errors.MissingDriverError("gevent", "gevent")
    )
    assert "return plain data" in str(errors.UnpicklableResultError("x", "y"))
    assert "Traceback" in str(
        errors.RemoteTraceback("Traceback (most recent call last)")
    )


def test_exceptions_catchable_as_builtins() -> None:
    assert isinstance(errors.UnknownPoolError("x"), ValueError)
    assert isinstance(errors.MissingDriverError("gevent", "gevent"), ImportError)
    assert isinstance(errors.PoolClosedError("x"), RuntimeError)
    assert isinstance(errors.UnpicklableCallError("f", "r"), TypeError)


def test_unknown_pool_suggests_the_closest_kind() -> None:
    message = str(errors.UnknownPoolError("prefrok", ("prefork", "solo")))
    assert "did you mean 'prefork'?" in message


def test_pools_imports_nothing_of_this_repository() -> None:
    import subprocess

    script = (
        "import sys, pools; "
        "print([m for m in ('msgwire', 'transports') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
