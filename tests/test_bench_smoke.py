"""The benchmark harness runs end to end in its quick mode.

No timing is asserted: the point is that ``python -m bench all --quick``
starts its loopback feed server, runs every workload (newsbot's side only
when ``reader`` is not installed) and prints its table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    for row in ("W1 cold", "W2 unchanged", "W3 unchanged", "W4 one new item", "search", "memory"):
        assert row in result.stdout
    assert "Checks that failed" not in result.stdout
