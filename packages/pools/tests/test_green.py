"""gevent and eventlet pools, each in a subprocess: monkey-patching is process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

SCRIPT = """
    import sys, warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # eventlet's own notice
    kind = sys.argv[1]
    import pools
    pools.monkey_patch(kind)

    import json, threading, time
    import pools_helpers as h
    from pools import (SoftTimeLimitExceeded, TerminatedError, TimeLimitExceeded,
                       create_pool)

    out = {}
    def outcome(future):
        try:
            return ["ok", future.result(10)]
        except BaseException as exc:
            return [type(exc).__name__, str(exc)]

    with create_pool(kind, size=4) as pool:
        out["kind"] = type(pool).__name__
        out["add"] = pool.submit(h.add, 1, 2).result(10)
        many = pool.submit_many(h.add, [(i, i) for i in range(50)])
        out["many"] = [f.result(10) for f in many]
        out["error"] = outcome(pool.submit(h.raise_custom, "green"))
        soft = pool.submit_call(h.sleep_for, (5,), soft_time_limit=0.2)
        out["soft_sleep"] = outcome(soft)
        soft = pool.submit_call(h.cpu_for, (0.6,), soft_time_limit=0.1)
        out["soft_cpu"] = outcome(soft)
        started = time.monotonic()
        out["hard"] = outcome(pool.submit_call(h.ignore_limits, (1.0,), time_limit=0.3))
        out["hard_elapsed"] = time.monotonic() - started
        out["hard_cpu"] = outcome(pool.submit_call(h.cpu_for, (0.6,), time_limit=0.2))
        running = pool.submit(h.sleep_then, 30)
        time.sleep(0.1)
        out["terminate"] = [running.terminate(), outcome(running)]
        long = pool.submit(h.sleep_then, 2)
        started = time.monotonic()
        shorts = [pool.submit(h.sleep_then, 0.05) for _ in range(12)]
        [f.result(10) for f in shorts]
        out["fair_elapsed"] = time.monotonic() - started
        out["long_done_early"] = long.done()
        names = []
        f = pool.submit(h.thread_name)
        f.add_done_callback(lambda fut: names.append(threading.current_thread().name))
        out["callback_thread"] = [f.result(10), threading.current_thread().name, names]
        out["stats"] = [pool.stats().kind, pool.stats().size]
        pool.grow(1)
        pool.shrink(2)
        out["resized"] = pool.size
        cold = create_pool(kind, size=1)
        busy = cold.submit(h.sleep_then, 30)
        time.sleep(0.05)
        queued = cold.submit(h.sleep_then, 30)
        cold.shutdown(wait=False, cancel_futures=True)
        out["cold"] = [outcome(busy), queued.cancelled()]
    try:
        pool.submit(h.noop)
    except pools.PoolClosedError as exc:
        out["closed"] = str(exc)
    print(json.dumps(out))
"""


def run(kind: str, script: str = SCRIPT) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), kind],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gevent", "eventlet"])
def test_green_pool_behaviour(kind: str) -> None:
    out = run(kind)
    assert out["kind"] == f"{kind.capitalize()}Pool"
    assert out["add"] == 3
    assert out["many"] == [2 * i for i in range(50)]
    assert out["error"] == ["CustomError", "green"]
    # time.sleep is patched, so it switches and the soft limit interrupts it.
    assert out["soft_sleep"][0] == "ok"
    assert str(out["soft_sleep"][1]).startswith("soft after 0.")
    # A CPU loop never switches: the soft limit cannot act before it ends.
    assert out["soft_cpu"] == ["ok", "finished"]
    assert out["hard"][0] == "TimeLimitExceeded"
    assert float(out["hard_elapsed"]) < 0.9  # type: ignore[arg-type]
    # Under CPU load the hub cannot run: the call returns its value.
    assert out["hard_cpu"] == ["ok", "finished"]
    assert out["terminate"] == [True, ["TerminatedError", "the call was terminated"]]
    assert float(out["fair_elapsed"]) < 1.5  # type: ignore[arg-type]
    assert out["long_done_early"] is False
    # Done-callbacks run in the green thread that ran the call.
    call_thread, caller, callback_threads = out["callback_thread"]  # type: ignore[misc]
    assert callback_threads == [call_thread]
    assert call_thread != caller
    assert out["stats"] == [kind, 4]
    assert out["resized"] == 3
    assert out["cold"] == [["TerminatedError", "the call was terminated"], True]
    assert "shut down" in str(out["closed"])


UNPATCHED = """
    import sys, warnings
    warnings.simplefilter("ignore", DeprecationWarning)
    import json, pools
    try:
        pools.create_pool(sys.argv[1])
    except ValueError as exc:
        print(json.dumps({"error": str(exc)}))
"""


@pytest.mark.parametrize("kind", ["gevent", "eventlet"])
def test_green_pool_without_monkey_patching_is_refused(kind: str) -> None:
    out = run(kind, UNPATCHED)
    assert f"pools.monkey_patch('{kind}')" in str(out["error"])
