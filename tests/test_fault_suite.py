"""The fault suite (``bench/faults.py``) at its CI size: 3 workers and 2 ingesters on
the suite's own PostgreSQL and Mosquitto, SIGKILLs, a broker restart, a database crash
restart and 20 % vendor faults; the result must equal a one-process reference run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]
SUITE = Path(__file__).resolve().parents[1] / "bench" / "faults.py"


def test_the_fault_suite_loses_and_doubles_nothing_at_its_small_size():
    r = subprocess.run([sys.executable, str(SUITE), "--small"], capture_output=True, text=True, timeout=840)
    report = r.stdout[r.stdout.find("fault suite"):]
    print(report)  # the figures, in the test's captured output
    assert r.returncode == 0, report + r.stderr[-4000:]
    assert "RESULT: PASS" in report
    for line in report.splitlines():
        if " lost " in line and "raw payloads" not in line:
            assert " lost      0  duplicated/extra      0  changed      0" in line, line
    assert "2 worker SIGKILLs, 1 ingester SIGKILLs, 1 Mosquitto restarts, 1 PostgreSQL crash-restarts" in report
