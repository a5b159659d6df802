"""``xlexp table``: Markdown and LaTeX tables with mean ± std and averages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from synthetic import make_records, standard_store, write
from xlexp import XlexpError
from xlexp.results.query import TRANSFER_MEAN
from xlexp.views.tables import TableOptions, latex_escape, render_table


@pytest.fixture
def store(tmp_path):
    return standard_store(tmp_path / "results")


def _rows(markdown: str) -> dict[str, list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|") and not line.startswith("|:--")]
    return {
        cells[0].strip("* "): [c.strip("* ") for c in cells[1:]]
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)
    }


@pytest.mark.unit
def test_markdown_mean_std_and_averages(store):
    text = render_table(str(store), "zs", "accuracy", TableOptions())
    rows = _rows(text)
    # synthetic accuracy: 0.5 + 0.05*target - 0.02*source + 0.01*(seed % 3); seeds 1,2,3 -> +0.01 ± 0.01
    # every average is the one matrix mean's: the in-language cells (eng->eng, ind->ind) left out
    assert rows["source \\ target"] == ["eng", "ind", "jav", TRANSFER_MEAN]
    assert rows["eng"] == ["51.0 ± 1.0", "56.0 ± 1.0", "61.0 ± 1.0", "58.5"]
    assert rows["ind"] == ["49.0 ± 1.0", "54.0 ± 1.0", "59.0 ± 1.0", "54.0"]
    assert rows[TRANSFER_MEAN] == ["49.0", "56.0", "60.0", f"{(56 + 61 + 49 + 59) / 4:.1f}"]
    assert "selection source_dev" in text and "mean ± std over seeds" in text


@pytest.mark.unit
def test_rows_target_selection_and_raw_values(store):
    rows = _rows(
        render_table(
            str(store), "zs", "accuracy", TableOptions(rows="target", percent=False, digits=2), selection="target_dev"
        )
    )
    assert rows["target \\ source"] == ["eng", "ind", TRANSFER_MEAN]
    assert rows["jav"] == ["0.65 ± 0.01", "0.63 ± 0.01", "0.64"]  # target_dev: +0.04


@pytest.mark.unit
def test_chosen_rows_and_columns(store):
    rows = _rows(render_table(str(store), "zs", "accuracy", TableOptions(sources=["ind"], targets=["jav", "eng"])))
    assert rows["source \\ target"] == ["jav", "eng", TRANSFER_MEAN] and rows["ind"] == [
        "59.0 ± 1.0",
        "49.0 ± 1.0",
        "54.0",
    ]
    with pytest.raises(XlexpError, match="no target sun in this matrix; its targets: eng, ind, jav"):
        render_table(str(store), "zs", "accuracy", TableOptions(targets=["sun"]))


@pytest.mark.unit
def test_few_shot_k_and_single_seed(store, tmp_path):
    text = render_table(str(store), "fs", "accuracy", TableOptions(), k=5)
    assert "K=5" in text and "seeds × shot sets" in text
    results = tmp_path / "one"
    write(results, make_records("single", sources=("eng",), targets=("ind", "jav")), "single")
    rows = _rows(render_table(str(results), "single", "macro_f1", TableOptions(names=True)))
    # seed 1: +0.01; macro-F1: -0.05. No ± with one seed; no average row for one source
    assert rows["eng (English)"] == ["51.0", "56.0", "53.5"] and TRANSFER_MEAN not in rows


@pytest.mark.unit
def test_latex_is_escaped_and_uses_booktabs(store):
    text = render_table(str(store), "zs", "macro_f1", TableOptions(fmt="latex"))
    assert text.startswith("\\begin{table}[t]") and "\\toprule" in text and "\\bottomrule" in text
    assert "46.0 $\\pm$ 1.0" in text and "tiny\\_random" in text
    assert "\\begin{tabular}{lrrrr}" in text  # label + 3 targets + avg
    assert "_" not in text.replace("\\_", "")  # every underscore escaped
    assert latex_escape("a_b & 50% #1") == "a\\_b \\& 50\\% \\#1"


@pytest.mark.unit
def test_errors_name_the_fix(store):
    with pytest.raises(XlexpError, match="no k '7'. Its k values: 1, 5, 10, none"):
        render_table(str(store), "fs", None, TableOptions(), k=7)
    with pytest.raises(XlexpError, match="no records for experiment 'nope'. Known: fs, zs"):
        render_table(str(store), "nope", None, TableOptions())
    with pytest.raises(XlexpError, match="no metric 'bleu'"):
        render_table(str(store), "zs", "bleu", TableOptions())


def test_cli_table_to_stdout_and_file(store, tmp_path):
    out_file = tmp_path / "t" / "zs.tex"
    env = {**os.environ, "XLEXP_RESULTS_DIR": str(store)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "xlexp.cli.main",
            "table",
            "--experiment",
            "zs",
            "--format",
            "latex",
            "--metric",
            "accuracy",
            "--targets",
            "ind,jav",
            "--out",
            str(out_file),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "\\begin{tabular}{lrrr}" in run.stdout and out_file.read_text() == run.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "xlexp.cli.main", "table", "--experiment", "zs", "--k", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2 and "xlexp: error:" in bad.stderr and "Traceback" not in bad.stderr
