"""Round 2 (issue #28), items 5, 6 and 10: the store checks types, runs check every folder they
write before any work, and the quarantine never overwrites."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from synthetic import make_records, write
from tests.conftest import write_nusax_like
from tests.faults.test_fault_store import SMALL, cli, error_lines, n_records
from xlexp.results.store import RECORD_COLUMNS, load_records, runs_dir
from xlexp.results.store_check import check_store, quarantine_dir


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    data = write_nusax_like(tmp_path / "data", sizes=(30, 12, 18))
    return {"data": data, "results": tmp_path / "results", "cache": tmp_path / "cache"}


def _string_values(results: Path, name: str = "bad") -> Path:
    """A record file with every required column, whose values are strings ('0.5')."""
    records = make_records("x", run_id="x-bad")
    frame = pd.DataFrame([dataclasses.asdict(r) for r in records], columns=RECORD_COLUMNS)
    frame["value"] = frame["value"].map(lambda v: f"{v:.3f}")
    path = runs_dir(results) / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize(
    "verb", [["matrix", "--experiment", "x"], ["table", "--experiment", "x"], ["compare", "x", "x"]]
)
def test_fault_a_record_file_with_string_values_is_skipped_by_every_view_and_found_by_store_check(dirs, verb):
    """Before: matrix/report/table failed with 'agg function failed', compare with ValueError, and
    `store check` passed the file."""
    write(dirs["results"], make_records("x", run_id="x-1"), "good")
    bad = _string_values(dirs["results"])
    out = cli(dirs, *verb)
    assert out.returncode == 0, out.stderr[-3000:]
    warnings = [line for line in out.stderr.splitlines() if "skipping unreadable results file" in line]
    assert len(warnings) == 1 and str(bad) in warnings[0] and "'value' must hold numbers" in warnings[0]
    assert "Traceback" not in out.stderr
    check = cli(dirs, "store", "check")
    assert check.returncode == 1 and f"bad: {bad} (wrong column type(s): 'value' must hold numbers" in check.stdout


@pytest.mark.unit
@pytest.mark.parametrize(
    "column, bad_value, needle",
    [
        ("source", 3, "'source' must hold names"),
        ("target", None, "'target' must hold names"),
        ("seed", "one", "'seed' must hold numbers"),
        ("value", True, "'value' must hold numbers"),
    ],
)
def test_fault_other_wrong_types_are_bad_files(tmp_path, column, bad_value, needle):
    records = make_records("x", run_id="x-1")
    frame = pd.DataFrame([dataclasses.asdict(r) for r in records], columns=RECORD_COLUMNS)
    frame[column] = [bad_value] * len(frame)
    runs_dir(tmp_path).mkdir(parents=True)
    frame.to_parquet(runs_dir(tmp_path) / "f.parquet", index=False)
    good, bad = check_store(tmp_path)
    assert good == 0 and len(bad) == 1 and needle in bad[0][1]
    assert load_records(tmp_path).empty


@pytest.mark.unit
def test_fault_repairing_a_second_file_of_a_quarantined_name_keeps_both(tmp_path):
    """Before: `store check --repair` of a second bad file with an already-quarantined name
    overwrote the first."""
    runs = runs_dir(tmp_path)
    runs.mkdir(parents=True)
    (runs / "r.parquet").write_bytes(b"first bad file")
    check_store(tmp_path, repair=True)
    (runs / "r.parquet").write_bytes(b"second bad file")
    check_store(tmp_path, repair=True)
    (runs / "r.parquet").write_bytes(b"third")
    check_store(tmp_path, repair=True)
    kept = {p.name: p.read_bytes() for p in (quarantine_dir(tmp_path) / "runs").iterdir()}
    assert kept == {"r.parquet": b"first bad file", "r.1.parquet": b"second bad file", "r.2.parquet": b"third"}


@pytest.mark.parametrize("blocked", ["predictions", "claims", "cache/checkpoints"])
def test_fault_every_folder_a_run_writes_is_checked_before_training(dirs, blocked):
    """Before: `results/predictions` being a file was found after training (a traceback; status then
    blamed SIGKILL): the whole training was lost."""
    base = dirs["cache"].parent if blocked.startswith("cache") else dirs["results"]
    target = base / blocked
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("a file where a folder belongs")
    out = cli(dirs, "run", *SMALL)
    assert out.returncode == 2, out.stderr[-3000:]
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and "cannot write" in lines[0] and str(target) in lines[0], out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "training source model" not in out.stderr
    assert n_records(dirs) == 0
