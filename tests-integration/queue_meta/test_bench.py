"""``queue bench`` runs end to end on Redis: a smoke test small enough for CI.

The real figures come from ``nox -s bench -- queue-meta`` (20,000 tasks,
beside Celery); here a few hundred tasks only show that every measurement
runs and reports a figure.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

FIGURES = (
    "publish_one_by_one_per_s",
    "publish_batched_per_s",
    "processed_solo_per_s",
    "processed_threads_per_s",
    "round_trip_p50_ms",
    "round_trip_p90_ms",
    "round_trip_p99_ms",
    "idle_rss_solo_mib",
)


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "queue_meta", "bench", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )


def test_bench_reports_every_figure_on_redis(redis_url: str, tmp_path: Path) -> None:
    done = _bench(
        tmp_path,
        "--broker", redis_url,
        "--tasks", "200",
        "--latency", "20",
        "--pools", "solo,threads",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    figures = report["figures"]
    assert sorted(figures) == sorted(FIGURES)
    for name in FIGURES:
        value = figures[name]
        assert math.isfinite(value), (name, value)
        assert value > 0, (name, value)
    assert (
        figures["round_trip_p50_ms"]
        <= figures["round_trip_p90_ms"]
        <= figures["round_trip_p99_ms"]
    )
    assert report["tasks"] == 200
    assert report["acks_late"] is True
    assert set(report["details"]) == {"startup_solo_s", "startup_threads_s"}


def test_bench_rejects_an_unknown_pool_in_one_line(tmp_path: Path) -> None:
    done = _bench(tmp_path, "--pools", "solo,fork", "--tasks", "10")
    assert done.returncode == 1
    assert done.stderr.startswith("queue bench: error: --pools takes")
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
