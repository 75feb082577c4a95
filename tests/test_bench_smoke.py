"""The benchmark harness runs end to end in its quick mode.

No timing is asserted: the point is that ``python -m bench all --quick``
starts its loopback feed server, runs every workload (newsbot's side only
when ``reader`` is not installed) and prints its table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres import SKIP_REASON, find_postgres_bindir

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_prints_a_table(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--quick", "--workdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert "| workload | newsbot | reader |" in result.stdout
    for row in (
        "W1 cold",
        "W2 unchanged",
        "W3 unchanged",
        "W4 one new item",
        "search",
        "memory",
        "outbox on SQLite",
        "push: WebSub push to card",
    ):
        assert row in result.stdout
    assert "Checks that failed" not in result.stdout


@pytest.mark.skipif(find_postgres_bindir() is None, reason=SKIP_REASON)
def test_quick_benchmark_runs_newsbot_on_postgresql(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "w1",
            "w2",
            "search",
            "outbox",
            "--quick",
            "--no-reader",
            "--backend",
            "postgresql",
            "--workdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    for row in ("W1 cold", "W2 unchanged", "on PostgreSQL: p50 / p95", "outbox on PostgreSQL"):
        assert row in result.stdout
    assert "Checks that failed" not in result.stdout
