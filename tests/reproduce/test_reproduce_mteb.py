"""``xlexp reproduce`` with MTEB-style extras (issue #29): the share of cells within 2 reference sds,
Δ by group (script) and the paired comparison of two variants, on a tiny SIB-like dataset with
regime=probe and the tiny random model; plus the shipped MTEB reference files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.reproduce.test_reproduce import SUBSET, write_sib_like
from xlexp.reproduce.output import paired_summary
from xlexp.reproduce.runner import reproduce
from xlexp.reproduce.spec import load_reference, load_reproduction

SPEC = {
    "name": "mini-mteb",
    "title": "mini",
    "citation": "test",
    "metric": "accuracy",
    "scale": 100,
    "reference": {"file": "ref.csv", "key": "code", "sd": "sd", "within_sd": 2, "group": "script"},
    "paired": ["plain", "prefixed"],
    "variants": [
        {
            "name": "plain",
            "column": "accuracy",
            "runs": [
                {
                    "overrides": [
                        "model=tiny_random",
                        "task=sib200",
                        "regime=probe",
                        "regime.in_language=true",
                        "regime.per_label=4",
                        "regime.draws=3",
                        "langpair=sib200_all_self",
                    ],
                    "cells": "target",
                }
            ],
        },
        {
            "name": "prefixed",
            "column": "accuracy_b",
            "runs": [
                {
                    "overrides": [
                        "model=tiny_random",
                        "task=sib200",
                        "regime=probe",
                        "regime.in_language=true",
                        "regime.per_label=4",
                        "regime.draws=3",
                        "langpair=sib200_all_self",
                        "regime.prefix='query: '",
                    ],
                    "cells": "target",
                }
            ],
        },
    ],
}


def test_within_sd_groups_and_paired(tmp_path: Path):
    data = write_sib_like(tmp_path / "data")
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "mini-mteb.yaml").write_text(yaml.safe_dump(SPEC, allow_unicode=True), encoding="utf-8")
    ref = tmp_path / "ref.csv"
    pd.DataFrame(
        {
            "code": ["eng_Latn", "fra_Latn", "hin_Deva"],
            "script": ["Latn", "Latn", "Deva"],
            "accuracy": [90.0, 50.0, 40.0],
            "accuracy_b": [80.0, 55.0, 45.0],
            "sd": [3.0, 1.0, 100.0],
        }
    ).to_csv(ref, index=False)
    res = reproduce(
        "mini-mteb",
        results_dir=tmp_path / "results",
        subset=SUBSET.split(","),
        reference=ref,
        folder=folder,
        overrides=[f"paths.data_dir={data}", f"paths.cache_dir={tmp_path / 'cache'}", "trainer.progress=false"],
    )
    cells = res.cells
    assert set(cells["cell"]) == {"eng_Latn", "fra_Latn", "hin_Deva"}  # nqo_Nkoo is not in the reference
    for v in ("plain", "prefixed"):
        mine = cells[cells["variant"] == v].set_index("cell")
        want = float(np.mean(np.abs(mine["delta"]) <= 2 * mine["paper_sd"]))
        got = res.summary.set_index("variant").at[v, "within_sd_share"]
        assert got == pytest.approx(want)
        assert mine.at["hin_Deva", "paper_sd"] == 100.0 and np.abs(mine.at["hin_Deva", "delta"]) <= 200  # always inside
    groups = res.groups.set_index(["variant", "group"])
    plain = cells[cells["variant"] == "plain"].set_index("cell")["delta"]
    assert groups.at[("plain", "Latn"), "n"] == 2
    assert groups.at[("plain", "Latn"), "mean_delta"] == pytest.approx(plain[["eng_Latn", "fra_Latn"]].mean())
    p = res.paired.set_index("cell")
    assert p.at["eng_Latn", "paper_diff"] == pytest.approx(10.0)
    assert p["ours_diff"].to_numpy() == pytest.approx((p["ours_a"] - p["ours_b"]).to_numpy())
    s = paired_summary(res.paired)
    assert s["n"] == 3 and s["mean_paper_diff"] == pytest.approx((10 - 5 - 5) / 3)
    for name in ("by_group.csv", "paired.csv", "summary.csv", "table.md"):
        assert (res.files["markdown"].parent / name).exists()
    assert "Δ by script" in res.files["markdown"].read_text(encoding="utf-8")


@pytest.mark.unit
@pytest.mark.parametrize(
    "name, n, column, mean",
    [
        ("mteb-sib200-e5small", 197, "accuracy", 57.53),
        ("mteb-tatoeba-e5small", 112, "f1_query_prefix", 63.90),
        ("mteb-tatoeba-e5small", 112, "f1_no_prefix", 68.94),
    ],
)
def test_shipped_mteb_references(name, n, column, mean):
    """The package copies match the MTEB README's counts and means (scores x 100)."""
    repro = load_reproduction(name)
    ref = load_reference(repro)
    assert len(ref) == n and ref[column].notna().all()
    assert ref[column].mean() == pytest.approx(mean, abs=0.01)
    assert ref[repro.group_column].notna().all()


def test_a_wider_subset_counts_the_units_an_earlier_subset_finished(tmp_path: Path):
    """Resume by content skips the eng_Latn unit on the second call; its records carry the first call's
    config hash and must still be compared (they were left out before: 1 cell instead of 2)."""
    data = write_sib_like(tmp_path / "data")
    folder = tmp_path / "specs"
    folder.mkdir()
    spec = {**SPEC, "variants": SPEC["variants"][:1], "paired": None}
    spec.pop("paired")
    (folder / "mini-mteb.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    ref = tmp_path / "ref.csv"
    pd.DataFrame(
        {"code": ["eng_Latn", "fra_Latn"], "script": ["Latn", "Latn"], "accuracy": [90.0, 50.0], "sd": [3.0, 1.0]}
    ).to_csv(ref, index=False)
    kw = dict(
        results_dir=tmp_path / "results",
        reference=ref,
        folder=folder,
        overrides=[f"paths.data_dir={data}", f"paths.cache_dir={tmp_path / 'cache'}", "trainer.progress=false"],
    )
    first = reproduce("mini-mteb", subset=["eng_Latn"], **kw)
    second = reproduce("mini-mteb", subset=["eng_Latn", "fra_Latn"], **kw)
    assert set(second.cells["cell"]) == {"eng_Latn", "fra_Latn"}
    assert second.cells.set_index("cell").at["eng_Latn", "ours"] == first.cells.set_index("cell").at["eng_Latn", "ours"]
