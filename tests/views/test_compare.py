"""``xlexp compare``: paired bootstrap over test examples (or over seeds), delta matrix outputs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from conftest import TINY, compose_cfg, write_nusax_like
from synthetic import make_records, standard_store, write
from xlexp import XlexpError, load_predictions, load_records, run_experiment
from xlexp.results.significance import (
    hierarchical_bootstrap,
    hierarchical_score_bootstrap,
    paired_bootstrap,
    resample_weights,
    seed_bootstrap,
    weighted_metric,
)
from xlexp.views.compare import compare

ONE_TO_THREE = ["langpair.sources=[eng]", "langpair.targets=[eng,ind,jav]"]


# ---- the statistics --------------------------------------------------------------------------


@pytest.mark.unit
def test_weighted_metric_matches_sklearn_and_resamples():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=200)
    preds = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 2, size=200))  # class 2 under-predicted
    ones = np.ones((1, 200))
    assert weighted_metric("accuracy", labels, preds, ones, 3)[0] == pytest.approx(accuracy_score(labels, preds))
    # label 3 is in neither gold nor predictions: not averaged over (sklearn's default label set)
    assert weighted_metric("macro_f1", labels, preds, ones, 4)[0] == pytest.approx(
        f1_score(labels, preds, average="macro", zero_division=0)
    )
    # a weighted resample is the metric of the resampled examples
    w = resample_weights(200, 5, rng)
    assert (w.sum(axis=1) == 200).all()
    idx = np.repeat(np.arange(200), w[3].astype(int))
    assert weighted_metric("macro_f1", labels, preds, w, 3)[3] == pytest.approx(
        f1_score(labels[idx], preds[idx], labels=[0, 1, 2], average="macro", zero_division=0)
    )


@pytest.mark.unit
def test_paired_bootstrap_null_and_clear_difference():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    same = np.where(rng.random(300) < 0.5, labels, (labels + 1) % 3)
    t = paired_bootstrap(labels, same[None], same[None], "accuracy", 500, np.random.default_rng(0), 3)
    assert t.delta == 0 and t.p == 1.0 and t.ci_low == t.ci_high == 0 and t.method == "examples"
    better = np.where(rng.random(300) < 0.85, labels, (labels + 1) % 3)
    t = paired_bootstrap(labels, same[None], better[None], "macro_f1", 1000, np.random.default_rng(0), 3)
    assert t.delta > 0.2 and t.p < 0.01 and t.ci_low > 0 and t.ci_low <= t.delta <= t.ci_high
    # small differences on few examples are not significant
    few = labels[:30]
    a = np.where(rng.random(30) < 0.5, few, (few + 1) % 3)
    b = a.copy()
    b[0] = few[0]
    t = paired_bootstrap(few, a[None], b[None], "accuracy", 1000, np.random.default_rng(0), 3)
    assert t.p > 0.05
    # two seeds per side are averaged inside each resample
    t2 = paired_bootstrap(
        labels, np.stack([same, same]), np.stack([better, same]), "accuracy", 300, np.random.default_rng(0), 3
    )
    assert t2.delta == pytest.approx((accuracy_score(labels, better) - accuracy_score(labels, same)) / 2)


@pytest.mark.unit
def test_seed_bootstrap():
    rng = np.random.default_rng(0)
    t = seed_bootstrap(np.array([0.50, 0.51, 0.49]), np.array([0.60, 0.61, 0.59]), 1000, rng)
    assert t.method == "seeds" and t.delta == pytest.approx(0.1) and t.p < 0.01
    t = seed_bootstrap(np.array([0.5]), np.array([0.6]), 1000, rng)
    assert t.method == "none" and np.isnan(t.p)


# ---- on real runs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A barely trained model (seed 42) and a well trained one (seed 7), both with per-example
    test predictions in the store."""
    root = tmp_path_factory.mktemp("compare")
    dirs = {"data": write_nusax_like(root / "data"), "results": root / "results", "cache": root / "cache"}
    run_experiment(
        compose_cfg(dirs, *TINY, *ONE_TO_THREE, "name=weak", "seed=42", "trainer.epochs=1", "optimizer.lr=1e-5")
    )
    run_experiment(compose_cfg(dirs, *TINY, *ONE_TO_THREE, "name=strong", "seed=7", "trainer.epochs=6"))
    return dirs


def test_compare_on_predictions_of_two_seeds(two_runs):
    c = compare(two_runs["results"], "weak", "strong", "accuracy", n_boot=1000)
    cells = c.cells.set_index("target")
    assert set(cells.index) == {"eng", "ind", "jav"} and set(cells["method"]) == {"examples"}
    assert (cells["n"] == 40).all()
    # the points are the recorded test scores (same examples, same metric code)
    rec = load_records(two_runs["results"]).query(
        "split == 'test' and selection == 'source_dev' and metric == 'accuracy'"
    )
    for side, col in (("weak", "a"), ("strong", "b")):
        values = rec[rec["experiment"] == side].set_index("target")["value"]
        assert np.allclose(cells[col], values.reindex(cells.index))
    eng = cells.loc["eng"]
    assert eng["delta"] > 0.2 and eng["significant"] and eng["p"] < 0.05  # in-language training clearly helps
    assert (cells["ci_low"] <= cells["delta"]).all() and (cells["delta"] <= cells["ci_high"]).all()
    # the same call gives the same numbers (seeded)
    again = compare(two_runs["results"], "weak", "strong", "accuracy", n_boot=1000).cells.set_index("target")
    assert np.allclose(again["p"], cells["p"])


def test_compare_by_run_ids_and_macro_f1(two_runs):
    runs = load_records(two_runs["results"]).drop_duplicates("experiment").set_index("experiment")["run_id"]
    c = compare(two_runs["results"], runs["weak"][:20], runs["strong"], "macro_f1", n_boot=300)
    assert set(c.cells["method"]) == {"examples"} and len(c.cells) == 3
    assert not load_predictions(two_runs["results"], [runs["weak"]]).empty


def test_cli_compare_prints_marks_and_writes_csv_and_heatmap(two_runs):
    env = {**os.environ, "XLEXP_RESULTS_DIR": str(two_runs["results"])}
    out = subprocess.run(
        [sys.executable, "-m", "xlexp.cli.main", "compare", "weak", "strong", "--n-boot", "500"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "macro_f1: strong − weak (test)" in text  # the default: the primary metric (macro_f1 for older stores)
    assert (
        "* p < 0.05" in text
        and "paired bootstrap over test examples (500 resamples; one training seed per side: "
        "test-example variance only): 3 cell(s)"
        in text.replace("\n", " ")
    )
    assert "warning: 3 cell(s) have one training seed on a side" in text.replace("\n", " ")
    eng_line = next(line for line in text.splitlines() if "eng (English)" in line)
    assert "*" in eng_line and "+0." in eng_line  # significant gain, marked
    csv = pd.read_csv(two_runs["results"] / "compare" / "weak_vs_strong.macro_f1.csv")
    assert {"source", "target", "a", "b", "delta", "ci_low", "ci_high", "p", "significant", "method", "mark"} <= set(
        csv
    )
    assert csv.set_index("target").loc["eng", "mark"] in ("*", "**")
    png = two_runs["results"] / "compare" / "weak_vs_strong.macro_f1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    print(f"compare heatmap: {png}")


# ---- without predictions: seeds -----------------------------------------------------------------


@pytest.mark.unit
def test_falls_back_to_seeds_and_says_so(tmp_path):
    results = standard_store(tmp_path / "results")
    shifted = [
        r.__class__(**{**r.__dict__, "experiment": "zs_plus", "run_id": "plus-" + r.run_id, "value": r.value + 0.1})
        for r in make_records("zs", seeds=(1, 2, 3))
    ]
    write(results, shifted, "plus")
    c = compare(results, "zs", "zs_plus", "accuracy", n_boot=500)
    assert set(c.cells["method"]) == {"seeds"} and (c.cells["n"] == 6).all()
    assert np.allclose(c.cells["delta"], 0.1) and c.cells["significant"].all()
    with pytest.raises(
        XlexpError, match="no records for experiment 'nothing-like-this' \\(nor a run id starting with it"
    ):
        compare(results, "zs", "nothing-like-this")
    with pytest.raises(
        XlexpError,
        match=r"'fs' has no test records with selection last and no shots.*"
        r"its K values here: 1, 5, 10 \(choose one with --k\)",
    ):
        compare(results, "fs", "zs", selection="last")
    few = compare(results, "fs", "fs", "accuracy", n_boot=200, k=5)  # a side against itself: no difference
    assert np.allclose(few.cells["delta"], 0) and not few.cells["significant"].any()


# ---- training-seed variance: hierarchical bootstrap over seeds and examples -----------------------


def _seed_models(labels: np.ndarray, accuracy: float, seeds: int, rng: np.random.Generator) -> np.ndarray:
    """(seeds, n) predictions of one config: each seed is right on its own random subset of examples,
    with a seed-dependent accuracy around ``accuracy`` (training-seed noise)."""
    out = []
    for _ in range(seeds):
        acc = accuracy + rng.normal(0, 0.06)
        out.append(np.where(rng.random(len(labels)) < acc, labels, (labels + 1) % 3))
    return np.stack(out)


@pytest.mark.unit
def test_hierarchical_bootstrap_covers_seed_noise():
    """Two configs of equal quality whose seeds scatter: resampling only the examples calls most of
    such pairs "significant" (10 of these 20); resampling seeds and examples together few (3: above
    the nominal 1 in 20, since 3 seeds resampled understate their variance). A real difference stays
    significant."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=400)
    flat, nested = 0, 0
    for trial in range(20):
        a, b = _seed_models(labels, 0.6, 3, rng), _seed_models(labels, 0.6, 3, rng)
        flat += paired_bootstrap(labels, a, b, "accuracy", 400, np.random.default_rng(trial), 3).p < 0.05
        t = hierarchical_bootstrap(labels, a, b, "accuracy", 400, np.random.default_rng(trial), 3)
        nested += t.p < 0.05
        assert t.method == "hierarchical" and t.n == 400
    assert flat >= 8 and nested <= 3, (flat, nested)
    a, b = _seed_models(labels, 0.5, 3, rng), _seed_models(labels, 0.9, 3, rng)
    t = hierarchical_bootstrap(labels, a, b, "macro_f1", 500, np.random.default_rng(0), 3)
    assert t.p < 0.01 and t.ci_low > 0.2
    # the point estimate is the mean over seeds of the recorded metric, as for the paired bootstrap
    assert t.b == pytest.approx(np.mean([f1_score(labels, p, average="macro") for p in b]))
    scores = hierarchical_score_bootstrap(a.astype(float), a.astype(float), 300, np.random.default_rng(0))
    assert scores.delta == 0 and scores.method == "hierarchical"


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    """One config (tiny random model), trained with different seeds only: three seeds per side, and
    one seed per side."""
    root = tmp_path_factory.mktemp("seeds")
    dirs = {"data": write_nusax_like(root / "data"), "results": root / "results", "cache": root / "cache"}
    for name, seeds in (("cfgA", "[1,2,3]"), ("cfgB", "[4,5,6]")):
        run_experiment(compose_cfg(dirs, *TINY, *ONE_TO_THREE, f"name={name}", f"regime.seeds={seeds}"))
    for name, seed in (("oneA", 1), ("oneB", 4)):
        run_experiment(compose_cfg(dirs, *TINY, *ONE_TO_THREE, f"name={name}", f"seed={seed}"))
    return dirs


def test_two_seed_sets_of_one_config_are_not_significant(seed_runs):
    c = compare(seed_runs["results"], "cfgA", "cfgB", "accuracy", n_boot=1000)
    assert set(c.cells["method"]) == {"hierarchical"} and not c.warnings()
    assert not c.cells["significant"].any(), c.cells[["target", "delta", "p"]]
    one = compare(seed_runs["results"], "oneA", "oneB", "accuracy", n_boot=1000)
    assert set(one.cells["method"]) == {"examples"}
    from xlexp.views.compare import legend

    text = legend(one)
    assert "one training seed per side: test-example variance only" in text
    assert "warning: 3 cell(s) have one training seed on a side" in text and "seed noise" in text
    print(one.cells[["target", "delta", "p"]].to_string(), c.cells[["target", "delta", "p"]].to_string(), sep="\n")
