"""Round 2 (issue #28), item 8: `xlexp predict --evaluate --matrix-csv F` reads a user's file: every
way it can be wrong is one line, never a silent average, an extra source, a traceback or a
300-digit MAE."""

from __future__ import annotations

import subprocess
import sys

import pytest

from xlexp import XlexpError
from xlexp.predict.predictor import matrix_from_csv

GOOD_LONG = "source,target,value\neng,eng,0.9\neng,ind,0.7\nind,eng,0.6\nind,ind,0.8\n"


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, needle",
    [
        (None, "no such file"),
        ("", "the file is empty"),
        ("source,target,value\n", "a header and no rows"),
        ("source,eng,ind\neng,,\nind,,\n", "0 source(s) x 0 target(s)"),
        ("source,target,value\neng,eng,0.9\n", "1 source(s) x 1 target(s)"),
        (GOOD_LONG + "eng,ind,0.2\n", "cell(s) given twice with different values, first (eng, ind): [0.2, 0.7]"),
        ("source,eng,ind\neng,0.9,0.7\nind,0.6,0.8\neng,0.9,0.5\n", "source row(s) ['eng'] appear twice"),
        ("source,eng,eng\neng,0.9,0.7\nind,0.6,0.8\n", "column(s) ['eng'] appear twice"),
        ("source,eng,ind\neng,0.9,1e300\nind,0.6,0.8\n", "line 2, column 'ind': '1e300' is not a score"),
        ("source,eng,ind\neng,0.9,inf\nind,0.6,0.8\n", "'inf' is not a score"),
        ("source,eng,ind\neng,0.9,high\nind,0.6,0.8\n", "'high' is not a score"),
        ("lang_train,lang_pred,score\neng,eng,0.9\neng,ind,x\n", "column 'score': 'x' is not a score"),
    ],
)
def test_fault_a_bad_matrix_csv_is_one_line(tmp_path, text, needle):
    path = tmp_path / "m.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(XlexpError, match="--matrix-csv") as e:
        matrix_from_csv(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.unit
def test_identical_duplicates_and_empty_cells_are_fine(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(GOOD_LONG + "eng,ind,0.7\n")
    wide = matrix_from_csv(path)
    assert wide.shape == (2, 2) and wide.loc["eng", "ind"] == 0.7
    path.write_text("source,eng,ind,jav\neng,0.9,0.7,\nind,0.6,0.8,NA\njav,,0.5,0.4\n")
    wide = matrix_from_csv(path)
    assert wide.shape == (3, 3) and wide.isna().sum().sum() == 3


def test_the_cli_says_it_in_one_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("source,target,value\n")
    out = subprocess.run(
        [sys.executable, "-m", "xlexp.cli.main", "predict", "--evaluate", "--matrix-csv", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("xlexp: error: --matrix-csv")
