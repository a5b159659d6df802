"""Round 2 (issue #28), item 9: a storage password with an unencoded '@' is never printed, even in
part, and the error says to percent-encode it."""

from __future__ import annotations

import pytest

from sweeps_helpers import cli, write_sweep
from xlexp.tracking.masking import mask_url, url_hint

PASSWORD = "p@ss@w0rd"


@pytest.mark.unit
@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://postgres:{PASSWORD}@db.example/optuna",
        f"postgresql+psycopg://postgres:{PASSWORD}@db.example:5432/optuna?sslmode=require",
        f"error: cannot connect to postgresql://postgres:{PASSWORD}@db.example/optuna (timeout)",
    ],
)
def test_fault_a_password_with_an_unencoded_at_is_masked_whole(text):
    """Before: 'postgresql://postgres:p@ss@w0rd@host/db' printed as 'postgresql://postgres:***@ss@w0rd@host/db'."""
    masked = mask_url(text)
    assert "ss@w0rd" not in masked and "w0rd" not in masked and "postgres:***@db.example" in masked


@pytest.mark.unit
def test_other_at_signs_in_free_text_are_left_alone():
    assert (
        mask_url("mail me@example.org about postgresql://u:pw@h/db")
        == "mail me@example.org about postgresql://u:***@h/db"
    )
    assert url_hint("postgresql://u:pw@h/db") == ""
    assert "percent-encode it as %40" in url_hint(f"postgresql://u:{PASSWORD}@h/db")


def test_fault_the_sweep_error_masks_it_and_says_to_percent_encode(dirs, tmp_path):
    sweep = write_sweep(tmp_path / "pw.yaml", {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))"}, 1)
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/optuna"
    out = cli(dirs, "sweep", str(sweep), "--storage", url, timeout=120)
    assert out.returncode == 2, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "w0rd" not in text and "ss@" not in text and "Traceback" not in text, text[-3000:]
    assert "percent-encode it as %40" in out.stderr.strip().splitlines()[-1]
