"""The README tells the truth (issue #33): its quickstart numbers are the measured ones (the block that
`benchmarks/quickstart_numbers.py --write` generates beside docs/models.md's, which `make
docs-numbers-check` re-measures), its task count is the number of shipped tasks, its speed claim is the
equal-arithmetic one, and it stays under 8 KB."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import quickstart_numbers as q  # noqa: E402

pytestmark = pytest.mark.unit

README = (ROOT / "README.md").read_text(encoding="utf-8")
NUMBERS = {
    5: "Five",
    6: "Six",
    7: "Seven",
    8: "Eight",
    9: "Nine",
    10: "Ten",
    11: "Eleven",
    12: "Twelve",
    13: "Thirteen",
    14: "Fourteen",
    15: "Fifteen",
}


def test_the_readme_quickstart_numbers_are_the_measured_ones():
    rows = q.summary_from_block((ROOT / "docs" / "models.md").read_text(encoding="utf-8"))
    assert set(rows) == {"source_dev", "target_dev", "last"}
    expected = q.readme_block(rows)
    found = README[README.index(q.R_START) : README.index(q.R_END) + len(q.R_END)]
    assert found == expected, (
        "README's quickstart block differs from docs/models.md's measured one: run make docs-numbers"
    )
    # and nothing outside the block quotes a stale figure of the old README
    assert not re.search(r"\.597|\.707|\.610", README.replace(found, ""))


def test_the_summary_block_fails_on_a_changed_number():
    rows = q.summary_from_block((ROOT / "docs" / "models.md").read_text(encoding="utf-8"))
    rows["source_dev"]["mean11"] += 0.001
    assert q.readme_block(rows) not in README


def test_readme_claims_are_true_and_it_is_small():
    assert len(README.encode("utf-8")) <= 8 * 1024
    tasks = sorted(p.stem for p in (ROOT / "xlexp" / "conf" / "task").glob("*.yaml"))
    assert f"**Tasks are YAML.** {NUMBERS[len(tasks)]} ship" in README, tasks
    first = README.split("\n\n")[1]
    assert all(word in first for word in ("encoder", "decoder", "Five task kinds", "regimes", "xlexp predict"))
    kinds = sorted(p.stem for p in (ROOT / "xlexp" / "tasks" / "types").glob("*.py") if p.stem != "__init__")
    assert kinds == [
        "extractive_qa",
        "generation",
        "pair_classification",
        "retrieval",
        "sentence_classification",
        "token_classification",
    ]  # five kinds: classification of sentences and pairs counts once
    regimes = sorted(p.stem for p in (ROOT / "xlexp" / "conf" / "regime").glob("*.yaml"))
    assert regimes == ["few_shot", "full", "icl", "multi_source", "probe", "zero_shot"] and "six regimes" in first
    speed = re.search(r"at ([\d.]+)× a `Trainer` peer's wall time[^(]*\(([^)]*)", README, re.S)
    assert speed and speed.group(1) == "0.86" and "equal arithmetic" in README and "§13" in speed.group(2)
    benchmarks = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert "| **0.86** |" in benchmarks  # the number BENCHMARKS §13 measured
