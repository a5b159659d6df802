"""``xlexp.results.query``: the one query layer. Every view reads the store through it, so the rules
checked here (latest replicate, default metric and selection rule, the unknown-experiment error)
hold for the matrix, the table, the report, compare and reproduce alike."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthetic import make_records, standard_store, value, write
from xlexp.errors import XlexpError
from xlexp.results import frames, query, slices
from xlexp.results.store import load_records
from xlexp.views.console import show_run
from xlexp.views.html import write_report
from xlexp.views.tables import TableOptions, render_table

pytestmark = pytest.mark.unit

LATER = "2026-02-01T00:00:00+00:00"


def _rerun(records, shift: float, run_id: str):
    return [dataclasses.replace(r, value=r.value + shift, run_id=run_id, timestamp=LATER) for r in records]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Seeds 1 and 2 of one experiment, then a later re-run of seed 1 with every value + 0.2."""
    results = tmp_path / "results"
    for seed in (1, 2):
        write(
            results,
            make_records("x", seeds=(seed,), selections=("source_dev", "last"), run_id=f"x-{seed}"),
            f"x-{seed}",
        )
    write(results, _rerun(make_records("x", seeds=(1,), selections=("source_dev", "last")), 0.2, "x-1b"), "x-1b")
    return results


def _expected(source: str, target: str, metric: str = "macro_f1", selection: str = "source_dev") -> float:
    """The re-run replaces seed 1; seed 2 stays: the mean of the two."""
    return np.mean(
        [
            value(source, target, 1, selection, None, None, metric) + 0.2,
            value(source, target, 2, selection, None, None, metric),
        ]
    )


def test_latest_replicate_wins_in_every_reader(store):
    df = load_records(store)
    m = query.pivot(df, "x")
    assert m.metric == "macro_f1" and (m.n == 2).all().all()  # two seeds, not three records
    assert m.mean.at["eng", "jav"] == pytest.approx(_expected("eng", "jav"))
    key = slices.choose_slice(df, "x")
    assert key.selection == "source_dev"
    pd.testing.assert_frame_equal(slices.slice_matrix(df, key, "macro_f1").mean, m.mean)
    cells = frames.config_cells(df, "x", "0" * 12, "macro_f1", "source_dev").set_index(["source", "target"])["value"]
    assert cells[("ind", "eng")] == pytest.approx(_expected("ind", "eng"))
    _, side = frames.compare_side(df, "x", None, None)
    assert len(side) == 2 * 3 * 2 * 2 and set(side["run_id"]) == {"x-1b", "x-2"}  # sources x targets x seeds x metrics
    gap = frames.selection_gap(df, "x")
    assert gap.at[("eng", "ind"), "last"] == pytest.approx(_expected("eng", "ind", selection="last"))
    text = render_table(str(store), "x", None, TableOptions(percent=False, digits=4))
    assert f"{_expected('eng', 'jav'):.4f}" in text


def test_dev_records_keep_one_replicate_per_step():
    base = make_records("d", sources=("eng",), targets=("eng",), metrics=("accuracy",))[0]
    dev = [dataclasses.replace(base, split="dev", selection="eval", step=s, value=v) for s, v in ((4, 0.2), (8, 0.4))]
    df = pd.DataFrame([dataclasses.asdict(r) for r in dev])
    assert len(query.latest(df)) == 2
    assert query.pivot(df, "d", split="dev").mean.at["eng", "eng"] == pytest.approx(0.3)


def test_default_metric_and_selection_rules():
    assert query.default_metric(["accuracy", "macro_f1"]) == "macro_f1"
    assert query.default_metric(["span_f1/PER", "span_f1"]) == "span_f1"
    assert query.default_selection(["last", "target_dev", "source_dev"]) == "source_dev"
    assert query.default_selection(["last", "target_dev"]) == "target_dev"  # the order of SELECTION_ORDER
    assert query.default_selection(["zzz", "aaa"]) == "aaa"
    df = pd.DataFrame(
        [
            dataclasses.asdict(r)
            for r in make_records("o", selections=("last", "target_dev"), metrics=("accuracy", "f1"))
        ]
    )
    m = query.pivot(df, "o")
    assert m.metric == "accuracy" and slices.headline(slices.slice_keys(df)).selection == "target_dev"
    assert m.mean.at["eng", "ind"] == pytest.approx(value("eng", "ind", 1, "target_dev", None, None, "accuracy"))


def test_one_unknown_experiment_error_everywhere(tmp_path):
    results = standard_store(tmp_path / "results")
    df = load_records(results)
    message = re.escape("no records for experiment 'nope'") + r".*Known: fs, zs$"
    for call in (
        lambda: query.pivot(df, "nope"),
        lambda: slices.choose_slice(df, "nope"),
        lambda: frames.compare_side(df, "nope", None, None),
        lambda: render_table(str(results), "nope", None, TableOptions()),
        lambda: write_report(results, tmp_path / "out", experiments=["nope"]),
    ):
        with pytest.raises(XlexpError, match=message):
            call()
    with pytest.raises(XlexpError, match=r"no records for experiments 'a', 'b'\. Known: fs, zs"):
        write_report(results, tmp_path / "out", experiments=["a", "zs", "b"])
    assert query.latest_experiment(df) in ("fs", "zs") and query.experiments_by_recency(df)[
        0
    ] == query.latest_experiment(df)


def test_show_run_prints_the_runs_matrix_from_memory(tmp_path, capsys):
    records = make_records("mem", seeds=(1,), selections=("source_dev", "target_dev", "last"), run_id="mem-1")
    frame = pd.DataFrame([dataclasses.asdict(r) for r in records])
    results = tmp_path / "never-written"
    show_run(frame, ["accuracy", "macro_f1"], results)
    out = capsys.readouterr().out
    assert "mem (run mem-1): accuracy (test)" in out and "mem (run mem-1): macro_f1 (test)" in out
    assert "by checkpoint selection rule" in out and "target_dev - source_dev" in out
    assert f"xlexp matrix --experiment mem --results-dir {results}" in out
    assert not results.exists()  # nothing read, nothing written


def test_no_other_module_writes_its_own_query_rules():
    """The replicate key, the 'Known: ...' message and the default metric live in the query layer:
    results/query.py and the slices and frames built on it (results/slices.py, results/frames.py)."""
    root = Path(query.__file__).resolve().parents[1]
    offenders = []
    for path in root.rglob("*.py"):
        if path.name in ("query.py", "slices.py", "frames.py") and path.parent.name == "results":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"drop_duplicates\(|Known: |\"macro_f1\" if \"macro_f1\" in", text):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
