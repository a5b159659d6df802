"""One convention across views (issue #33): the task's primary metric by default, sources in rows,
any recorded metric accepted, and one meaning of "the latest experiment"."""

from __future__ import annotations

import re

import pytest

from synthetic import make_records, write
from xlexp import XlexpError, load_records
from xlexp.results.units import UnitEntry, latest_activity, write_entry

pytestmark = pytest.mark.unit


def _store(results, primary="accuracy"):
    recs = make_records(
        "conv",
        sources=("eng", "ind"),
        targets=("eng", "ind", "jav"),
        seeds=(1, 2),
        selections=("source_dev", "target_dev", "last"),
    )
    from dataclasses import replace

    write(results, [replace(r, primary_metric=primary) for r in recs], "conv")


def test_matrix_and_compare_default_to_the_recorded_primary_metric(tmp_path, capsys):
    from xlexp.views.compare import compare
    from xlexp.views.console import show

    results = tmp_path / "results"
    _store(results, primary="accuracy")  # SIB-200's primary is accuracy although macro_f1 is recorded
    shown = show(results, "conv")
    assert shown[0].metric == "accuracy"
    c = compare(results, "conv", "conv", n_boot=100)
    assert c.metric == "accuracy"
    c = compare(results, "conv", "conv", metric="macro_f1", n_boot=100)
    assert c.metric == "macro_f1"
    with pytest.raises(XlexpError, match="has no test metric 'chrf_xx2en'; its metrics: accuracy, macro_f1"):
        compare(results, "conv", "conv", metric="chrf_xx2en", n_boot=100)


def test_compare_prints_sources_in_rows_even_for_one_source(tmp_path, capsys):
    from xlexp.views.compare import compare, render
    from xlexp.views.console_tables import console

    results = tmp_path / "results"
    write(results, make_records("one", sources=("eng",), targets=("eng", "ind", "jav"), seeds=(1, 2)), "one")
    console.print(render(compare(results, "one", "one", n_boot=100)))
    out = capsys.readouterr().out
    assert "source \\ target" in out and "target \\ source" not in out
    assert re.search(r"eng \(English\)\s*│", out)  # the source is a row


def test_gap_prints_rules_in_rows_and_targets_in_columns(tmp_path, capsys):
    from xlexp.views.console import show

    results = tmp_path / "results"
    write(
        results,
        make_records(
            "gap", sources=("eng",), targets=("eng", "ind", "jav"), selections=("source_dev", "target_dev", "last")
        ),
        "gap",
    )
    show(results, "gap", ["macro_f1"], gap=True)
    out = capsys.readouterr().out
    table = out[out.index("by selection rule") :]
    header = next(line for line in table.splitlines() if "source eng →" in line)
    assert "ind" in header and "jav" in header
    assert re.search(r"│ target_dev - source_dev\s*│ \+0\.040", table)


def test_latest_experiment_is_the_same_for_matrix_status_and_table(tmp_path):
    results = tmp_path / "results"
    write(results, make_records("old", timestamp="2026-01-01T00:00:00+00:00"), "old")
    write(results, make_records("new", timestamp="2026-01-02T00:00:00+00:00"), "new")
    df = load_records(results)
    assert latest_activity(results, df) == "new"
    # a matrix whose units started after both: it is the latest for every command
    write_entry(
        results, UnitEntry(experiment="running", unit_key="k1", source="eng", seed=1, targets=["ind"], state="running")
    )
    assert latest_activity(results, df) == "running"
