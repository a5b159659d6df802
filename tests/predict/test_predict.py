"""``xlexp predict`` / ``recommend`` (issue #18): completion, intervals, unknown languages, the
separation of predicted cells from records, the CLI on a tiny store, and the evaluation on the
published xpos UD-POS matrix (slow)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlexp.cli.main import main
from xlexp.predict.complete import CompletionSettings, complete
from xlexp.predict.features import pair_features
from xlexp.results.languages import normalize_tag
from xlexp.results.predicted import load_predicted, predicted_dir
from xlexp.results.store import Record, load_records, runs_dir, write_records

XPOS = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "xpos_udpos_xlmr_base_ft10000.csv"


def low_rank(n_s=40, n_t=60, rank=1, noise=0.5, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (
        60
        + rng.normal(0, 8, (n_s, 1))
        + rng.normal(0, 10, (1, n_t))
        + rng.normal(0, 3, (n_s, rank)) @ rng.normal(0, 1, (rank, n_t))
        + rng.normal(0, noise, (n_s, n_t))
    )


@pytest.mark.unit
def test_completion_recovers_hidden_cells_of_a_low_rank_matrix():
    y = low_rank()
    mask = np.random.default_rng(1).random(y.shape) < 0.3
    res = complete(y, mask)
    hidden = ~mask
    mae = np.abs(res.mean[hidden] - y[hidden]).mean()
    naive = np.abs(y[mask].mean() - y[hidden]).mean()  # the observed mean everywhere
    biases = complete(y, mask, cfg=CompletionSettings(rank=0, folds=1))
    assert mae < 0.15 * naive, (mae, naive)
    assert mae < 0.7 * np.abs(biases.mean[hidden] - y[hidden]).mean()  # the interaction is recovered too
    assert res.settings.rank != 0  # auto picked the low-rank ensemble here


def clustered(n_s=30, n_t=50, groups=5, seed=0):
    """Sources and targets in language groups: the interaction is group x group, and the language
    similarity (1 within a group, 0.1 across) knows the groups, not the values."""
    rng = np.random.default_rng(seed)
    gs, gt = rng.integers(0, groups, n_s), rng.integers(0, groups, n_t)
    block = rng.normal(0, 6, (groups, groups))
    y = 60 + rng.normal(0, 4, (n_s, 1)) + rng.normal(0, 6, (1, n_t)) + block[gs][:, gt] + rng.normal(0, 1, (n_s, n_t))

    def sim(g):
        return np.where(g[:, None] == g[None], 1.0, 0.1)

    return y, sim(gs), sim(gt)


@pytest.mark.unit
def test_the_language_prior_lends_strength_to_sparse_rows_and_columns():
    """At 8 % observed (2-4 cells per target) the similarity prior on biases and factors cuts the
    error against the same ensemble with an independent ridge (before it, the similarities only
    filled rows or columns without any cell)."""
    errors = {0.0: [], 0.5: []}
    for seed in range(3):
        y, s_sim, t_sim = clustered(seed=seed)
        mask = np.random.default_rng(seed + 5).random(y.shape) < 0.08
        for prior in errors:
            res = complete(
                y, mask, cfg=CompletionSettings(folds=1, prior=prior, restarts=2), row_sim=s_sim, col_sim=t_sim
            )
            errors[prior].append(np.abs(res.mean[~mask] - y[~mask]).mean())
    assert np.mean(errors[0.5]) < 0.85 * np.mean(errors[0.0]), errors


@pytest.mark.unit
def test_the_profile_pass_finds_languages_that_behave_alike():
    """Sources that are also targets (the same_language feature) and no language similarity at all:
    the second pass learns which languages behave alike from their fitted rows and columns."""
    errors = {0.0: [], 0.5: []}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        groups = rng.integers(0, 4, 60)  # 40 languages are sources and targets, 20 only targets
        block = rng.normal(0, 6, (4, 4))
        block = (block + block.T) / 2
        y = (
            60
            + rng.normal(0, 3, (40, 1))
            + rng.normal(0, 5, (1, 60))
            + block[groups[:40]][:, groups]
            + rng.normal(0, 1, (40, 60))
        )
        same = np.zeros((40, 60, 1))
        same[np.arange(40), np.arange(40), 0] = 1.0
        mask = np.random.default_rng(seed + 7).random(y.shape) < 0.1
        for mix in errors:
            res = complete(y, mask, same, CompletionSettings(folds=1, restarts=2, profiles=mix), ["same_language"])
            errors[mix].append(np.abs(res.mean[~mask] - y[~mask]).mean())
    assert np.mean(errors[0.5]) < 0.92 * np.mean(errors[0.0]), errors


@pytest.mark.unit
def test_intervals_cover_at_a_sane_rate():
    covered = []
    for seed in range(3):
        y = low_rank(seed=seed, noise=2.0)
        mask = np.random.default_rng(seed + 10).random(y.shape) < 0.25
        res = complete(y, mask, cfg=CompletionSettings(level=0.9))
        hidden = ~mask
        covered.append(((y[hidden] >= res.low[hidden]) & (y[hidden] <= res.high[hidden])).mean())
        assert (res.high[hidden] > res.low[hidden]).all()
    assert 0.75 <= np.mean(covered) <= 0.99, covered


@pytest.mark.unit
def test_uriel_distances_match_urielplus():
    urielplus = pytest.importorskip("urielplus.urielplus", reason="the predict extra (urielplus) is not installed")
    import logging

    from xlexp.predict.uriel import distances

    logging.disable(logging.INFO)  # URIELPlus() logs every file it copies
    try:
        ref = urielplus.URIELPlus()
        ours = distances(["en", "swh_Latn"], ["fra", "zho_Hans"])
        for cat in ("genetic", "geographic", "syntactic", "script"):
            for (i, a), (j, b) in itertools.product(enumerate(["eng", "swh"]), enumerate(["fra", "zho"])):
                assert ours[cat][i, j] == pytest.approx(ref.new_distance(cat, [a, b]), abs=1e-3), (cat, a, b)
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.unit
def test_unknown_language_codes_degrade_gracefully():
    pytest.importorskip("urielplus", reason="the predict extra (urielplus) is not installed")
    feats = pair_features(["en", "qqx_Zzzz", "fr"], ["de", "zzq", "es"])
    assert np.isnan(feats.feature("uriel_genetic")[1]).all()  # the unknown source: NaN, not an error
    assert np.isfinite(feats.feature("uriel_genetic")[0, 0])
    note = feats.missing_note()
    assert "uriel_genetic" in note and "qqx_Zzzz" in note and "zzq" in note
    y = np.array([[90.0, 40.0, 80.0], [np.nan, np.nan, 50.0], [85.0, np.nan, np.nan]])
    res = complete(
        y,
        np.isfinite(y),
        feats.values,
        CompletionSettings(folds=1),
        feats.names,
        feats.source_similarity,
        feats.target_similarity,
    )
    assert np.isfinite(res.mean).all()


@pytest.mark.unit
def test_without_the_predict_extra_the_other_features_are_used_and_named(monkeypatch):
    import xlexp.predict.uriel as uriel
    from xlexp import XlexpError

    def missing():
        raise XlexpError("URIEL features need the urielplus package: pip install 'xlexp[predict]'")

    uriel.database.cache_clear()
    uriel.uriel_code.cache_clear()
    monkeypatch.setattr(uriel, "_folder", missing)
    try:
        feats = pair_features(["en", "fr"], ["de", "sw"])
        assert feats.names == ["same_language", "script_match"]
        assert "xlexp[predict]" in feats.missing_note()
    finally:
        uriel.database.cache_clear()
        uriel.uriel_code.cache_clear()


# ---- a tiny store: 4 sources x 5 targets, some cells never measured --------------------------------

SOURCES, TARGETS = ["eng", "ind", "jav", "sun"], ["ace", "ban", "bjn", "min", "mad"]


def tiny_store(results: Path) -> int:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 0.05, len(SOURCES)), rng.normal(0, 0.08, len(TARGETS))
    n = 0
    for i, s in enumerate(SOURCES):
        recs = []
        for j, t in enumerate(TARGETS):
            if (i + j) % 3 == 0 and s != "eng":  # unmeasured cells
                continue
            recs.append(
                Record(
                    experiment="tiny",
                    run_id=f"r-{s}",
                    model="tiny_random",
                    task="nusax_senti",
                    regime="zero_shot",
                    source=s,
                    target=t,
                    target_tag=normalize_tag(t),
                    split="test",
                    metric="accuracy",
                    value=float(0.6 + a[i] + b[j]),
                    n_examples=40,
                    seed=1,
                    selection="source_dev",
                    config_hash="0" * 12,
                    git_commit="test",
                    timestamp="2026-01-01T00:00:00+00:00",
                )
            )
        write_records(recs, results, f"r-{s}")
        n += len(recs)
    return n


@pytest.mark.unit
def test_predicted_values_never_land_in_the_records(tmp_path, capsys):
    results = tmp_path / "results"
    n = tiny_store(results)
    before = {p.name: p.stat().st_mtime_ns for p in runs_dir(results).iterdir()}
    assert (
        main(
            [
                "predict",
                "--experiment",
                "tiny",
                "--results-dir",
                str(results),
                "--no-model-features",
                "--data-dir",
                str(tmp_path / "none"),
                "--cache-dir",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "predicted cell(s)" in out and "*" in out
    records = load_records(results)
    assert len(records) == n  # nothing added to the store
    assert {p.name: p.stat().st_mtime_ns for p in runs_dir(results).iterdir()} == before
    pred = load_predicted(results, "tiny", "accuracy")
    assert pred["predicted"].all() and len(pred) == len(SOURCES) * len(TARGETS) - n
    measured = set(zip(records["source"], records["target"]))
    assert not measured & set(zip(pred["source"], pred["target"]))  # never a measured cell
    assert (pred["low"] <= pred["value"]).all() and (pred["value"] <= pred["high"]).all()
    assert not list(runs_dir(results).glob("*predicted*")) and predicted_dir(results).is_dir()


@pytest.mark.unit
def test_write_predicted_refuses_measured_rows(tmp_path):
    from xlexp.results.predicted import PREDICTED_COLUMNS, write_predicted

    row = {c: "x" for c in PREDICTED_COLUMNS} | dict(value=0.5, low=0.4, high=0.6, predicted=False)
    with pytest.raises(ValueError, match="measured row"):
        write_predicted(pd.DataFrame([row]), tmp_path, "e", "accuracy")
    assert not predicted_dir(tmp_path).exists()
    write_predicted(pd.DataFrame([row | dict(predicted=True)]), tmp_path, "e", "accuracy")
    assert load_predicted(tmp_path, "e")["predicted"].all()


def test_cli_matrix_recommend_next_and_evaluate_on_a_tiny_store(tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="xlexp.predict")
    results = tmp_path / "results"
    tiny_store(results)
    common = [
        "--results-dir",
        str(results),
        "--no-model-features",
        "--data-dir",
        str(tmp_path / "none"),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main(["predict", "--experiment", "tiny", *common]) == 0
    assert main(["matrix", "--experiment", "tiny", "--predicted", "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "predicted" in out and (results / "matrices" / "tiny.accuracy.predicted.png").is_file()
    assert (
        main(
            [
                "recommend",
                "--experiment",
                "tiny",
                "--target",
                "ban",
                "--target",
                "min",
                "--k",
                "3",
                "--next",
                "1",
                *common,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "best sources for ban" in out and "1. " in out and "3. " in out
    assert "next sources to train" in out or "nothing to train" in out
    assert main(["recommend", "--experiment", "tiny", "--target", "qqq_Zzzz", "--k", "2", *common]) == 0
    out = capsys.readouterr().out  # an unknown target: predicted, features named
    assert "best sources for qqq_Zzzz" in out and "qqq_Zzzz" in out.split("best sources")[0]
    assert "no measured cell for qqq_Zzzz: its own difficulty is unknown" in out  # the level is not a prediction
    assert (
        main(
            [
                "predict",
                "--evaluate",
                "--experiment",
                "tiny",
                "--observed",
                "0.5",
                "--masks",
                "2",
                "--skip-loto",
                *common,
            ]
        )
        == 0
    )
    from xlexp.predict.evaluate import OURS

    assert OURS in capsys.readouterr().out
    # without a terminal the evaluation's progress goes to the log (an hour on a 205 x 205 matrix)
    said = [r.getMessage() for r in caplog.records if r.name == "xlexp.predict"]
    assert "random masks: 2 step(s) to do" in said and "random masks: 2/2 step(s)" in "\n".join(said)
    # the HTML report draws the predicted cells apart
    assert main(["report", "--results-dir", str(results), "--experiment", "tiny"]) == 0
    html = (results / "report" / "index.html").read_text(encoding="utf-8")
    assert "predicted cells" in html and "PREDICTED" in html


@pytest.mark.unit
def test_model_view_is_cached_per_model_and_language(tmp_path):
    from tests.conftest import write_nusax_like
    from xlexp.predict.features import task_views

    data = write_nusax_like(tmp_path / "data")
    cache = tmp_path / "cache"
    views = task_views("nusax_senti", "tiny_random", ["eng", "ind", "jav"], data, cache, n_sentences=20)
    assert set(views) == {"eng", "ind", "jav"} and views["eng"].mean.ndim == 1
    import torch

    assert torch.is_grad_enabled()  # once switched off for the whole process: every later training failed
    files = sorted((cache / "predict" / "tiny_random").glob("*.npz"))
    assert len(files) == 3
    stamps = [f.stat().st_mtime_ns for f in files]
    again = task_views("nusax_senti", "tiny_random", ["eng", "ind", "jav"], data, cache, n_sentences=20)
    assert [f.stat().st_mtime_ns for f in files] == stamps  # read back, not recomputed
    assert np.allclose(again["ind"].mean, views["ind"].mean)
    from xlexp.predict.represent import language_texts

    assert language_texts("nusax_senti", "qqq", data, 20) == []  # not a task language: no text, no error
    partial = task_views("nusax_senti", "tiny_random", ["eng", "qqq"], data, cache, n_sentences=20)
    assert set(partial) == {"eng"}
    by_language = task_views(
        "nusax_senti", "tiny_random", ["en", "id", "jv", "zz"], data, cache, n_sentences=20, by_language=True
    )  # another matrix's codes: the same views
    assert set(by_language) == {"en", "id", "jv"} and np.allclose(by_language["en"].mean, views["eng"].mean)
    feats = pair_features(["eng", "ind"], ["jav"], views=views)
    assert np.isfinite(feats.feature("model_similarity")).all() and np.isfinite(feats.feature("vocab_overlap")).all()


@pytest.mark.unit
def test_matrix_codes_find_the_text_of_their_language_in_another_task():
    """``--text-task sib200`` for the xpos matrix: UD's ISO 639-1/3 codes -> SIB-200's Flores keys."""
    from xlexp.predict.features import language_keys
    from xlexp.tasks.spec import load_task

    keys = list(load_task("sib200").languages)
    got = language_keys(["en", "sr", "zh", "ar", "fa", "no", "tl", "gsw", "lzh", "qqq", "eng_Latn"], keys)
    assert got == {
        "en": "eng_Latn",
        "sr": "srp_Cyrl",  # SIB-200 has Serbian in Cyrillic only
        "zh": "zho_Hans",
        "ar": "arb_Arab",  # the usual script, not zho_Hant / arb_Latn
        "fa": "pes_Arab",  # Iranian Persian, not Dari (prs_Arab)
        "no": "nob_Latn",
        "tl": "tgl_Latn",  # macrolanguage -> its standard; tl -> fil
        "eng_Latn": "eng_Latn",
    }  # gsw (not German), lzh, qqq: no text, missing


@pytest.mark.slow
@pytest.mark.skipif(not XPOS.is_file(), reason=f"{XPOS} absent (the published xpos UD-POS matrix)")
def test_evaluate_on_the_xpos_matrix():
    """The measured numbers of BENCHMARKS.md, with margin: better than its own ablation and the
    baselines, Spearman >= 0.8 at 10 % observed. (The issue's MAE <= 3.0 is not reached: see
    BENCHMARKS.md.)"""
    pytest.importorskip("urielplus", reason="the predict extra (urielplus) is not installed")
    from xlexp.predict.evaluate import OURS, loto_ranking, mask_evaluation
    from xlexp.predict.predictor import matrix_from_csv

    wide = matrix_from_csv(XPOS)
    y = wide.to_numpy(dtype=float)
    feats = pair_features([str(s) for s in wide.index], [str(t) for t in wide.columns])
    masks = mask_evaluation(y, feats, (0.1,), n_masks=3).set_index("method")
    assert masks.loc[OURS, "spearman"] >= 0.8
    assert masks.loc[OURS, "mae"] < masks.loc["biases only (no features, no language prior)", "mae"]
    assert masks.loc[OURS, "mae"] < masks.loc["ensemble without language prior", "mae"]
    assert masks.loc[OURS, "mae"] <= 4.8  # 4.39 measured on 10 masks (the previous model: 5.06; the issue asks 3.0)
    assert 0.8 <= masks.loc[OURS, "coverage"] <= 0.97
    loto = loto_ranking(y, feats).set_index("method")["ndcg"]
    assert loto[OURS] > loto["English always"] and loto[OURS] > loto["URIEL distance only"]


@pytest.mark.slow
def test_budget_trains_the_chosen_sources_as_normal_runs_and_resumes(tmp_path, caplog, capsys):
    """``xlexp run ... langpair.budget=2`` with three candidates: two normal one-source runs (records
    as usual, each under its unit key), then the third row predicted (never a record); the same
    command again trains nothing; a budget of 3 continues the same matrix with the last source."""
    import logging

    from conftest import TINY, compose_cfg
    from tests.conftest import write_nusax_like
    from xlexp.cli.run import dispatch  # what `xlexp run` calls: langpair.budget -> xlexp.fill

    dirs = {"data": write_nusax_like(tmp_path / "data"), "results": tmp_path / "results", "cache": tmp_path / "cache"}
    args = [
        *TINY,
        "trainer.epochs=1",
        "task=nusax_senti",
        "langpair.sources=[eng,ind,jav]",
        "langpair.targets=[eng,ind,jav]",
        "regime.dev_targets=none",
        "name=fill",
    ]
    caplog.set_level(logging.INFO, logger="xlexp")
    objective = dispatch(compose_cfg(dirs, *args, "langpair.budget=2"))
    steps = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("active filling 1/2") or r.getMessage().startswith("active filling 2/2")
    ]
    assert len(steps) == 2, steps
    records = load_records(dirs["results"])
    trained = set(records["source"])
    assert len(trained) == 2 and records["unit_key"].notna().all() and records["run_id"].nunique() == 2
    test = records[
        (records["split"] == "test") & (records["metric"] == "macro_f1") & (records["selection"] == "source_dev")
    ]
    assert objective == pytest.approx(test["value"].mean())
    pred = load_predicted(dirs["results"], "fill")
    assert set(pred["source"]) == {"eng", "ind", "jav"} - trained and pred["predicted"].all()
    assert "predicted" in capsys.readouterr().out  # the matrix with the predicted row

    caplog.clear()
    dispatch(compose_cfg(dirs, *args, "langpair.budget=2"))  # resumes: nothing left to train
    assert not [r for r in caplog.records if r.getMessage().startswith("active filling 1/")]
    assert len(load_records(dirs["results"])) == len(records)
    dispatch(compose_cfg(dirs, *args, "langpair.budget=100%"))  # a larger budget: the third source only
    assert set(load_records(dirs["results"])["source"]) == {"eng", "ind", "jav"}
    assert load_records(dirs["results"])["run_id"].nunique() == 3


def test_budget_is_checked_before_any_work(tmp_path):
    from conftest import TINY, compose_cfg
    from tests.conftest import write_nusax_like
    from xlexp.cli.run import dispatch  # what `xlexp run` calls: langpair.budget -> xlexp.fill
    from xlexp.errors import XlexpError

    dirs = {"data": write_nusax_like(tmp_path / "data"), "results": tmp_path / "results", "cache": tmp_path / "cache"}
    for bad in ("0", "abc", "150%", "true"):
        with pytest.raises(XlexpError, match="langpair.budget must be"):
            dispatch(compose_cfg(dirs, *TINY, "task=nusax_senti", f"langpair.budget={bad}"))
    with pytest.raises(XlexpError, match="regime=zero_shot"):
        dispatch(compose_cfg(dirs, *TINY, "task=nusax_senti", "regime=full", "langpair.budget=1"))
    with pytest.raises(XlexpError, match="unknown|not a language|xyz"):
        dispatch(compose_cfg(dirs, *TINY, "task=nusax_senti", "langpair.sources=[eng,xyz]", "langpair.budget=1"))
    assert not (dirs["results"] / "runs").exists() or not any((dirs["results"] / "runs").iterdir())


def test_one_experiment_refuses_a_budget_and_a_fill_step_is_the_run_by_hand(tmp_path):
    """Active filling is the stage above the experiment: ``run_experiment`` with ``langpair.budget``
    says where it runs (a sweep trial: drop it), and a step's settings (``xlexp.fill.budget.one_source``)
    hash as ``langpair.sources=[src]`` composed by hand, so a step's records are that run's."""
    from conftest import TINY, compose_cfg
    from tests.conftest import write_nusax_like
    from xlexp.errors import XlexpError
    from xlexp.experiment import regimes
    from xlexp.experiment.context import RunHooks
    from xlexp.experiment.plan import make_plan
    from xlexp.experiment.resume import unit_keys
    from xlexp.experiment.runner import resolve_settings, run_experiment
    from xlexp.fill.budget import one_source
    from xlexp.results.store import run_config_hash

    dirs = {"data": write_nusax_like(tmp_path / "data"), "results": tmp_path / "results", "cache": tmp_path / "cache"}
    args = [*TINY, "task=nusax_senti", "langpair.sources=[eng,ind,jav]", "langpair.targets=[eng,ind]"]
    with pytest.raises(XlexpError, match="xlexp run"):
        run_experiment(compose_cfg(dirs, *args, "langpair.budget=2"))
    with pytest.raises(XlexpError, match="not for sweep trials"):
        run_experiment(compose_cfg(dirs, *args, "langpair.budget=2"), RunHooks(on_eval=lambda *a: None))
    step = one_source(resolve_settings(compose_cfg(dirs, *args, "langpair.budget=2")), "ind")
    by_hand = resolve_settings(compose_cfg(dirs, *args[:-2], "langpair.sources=[ind]", "langpair.targets=[eng,ind]"))
    assert step.langpair == by_hand.langpair and step.resolved == by_hand.resolved
    assert run_config_hash(dict(step.resolved)) == run_config_hash(dict(by_hand.resolved))

    def keys(s):
        spec = s.task  # the typed task spec (parsed once with the settings)
        return unit_keys(
            s,
            make_plan(
                regimes.get(s.regime.name),
                s.regime,
                s.langpair.sources,
                s.langpair.targets,
                spec,
                s.paths.data_dir,
                s.data.source,
                s.seeds,
            ),
        )

    assert keys(step) == keys(by_hand)


def test_predict_fill_is_the_budgeted_run(tmp_path, capsys, monkeypatch):
    """``xlexp predict --fill N`` runs ``xlexp run ... langpair.budget=N`` (one code path)."""
    import subprocess

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    assert (
        main(
            [
                "predict",
                "--fill",
                "2",
                "--task",
                "nusax_senti",
                "--model",
                "tiny_random",
                "--experiment",
                "fill",
                "--sources",
                "eng,ind,jav",
                "--results-dir",
                str(tmp_path),
                "trainer.epochs=1",
            ]
        )
        == 0
    )
    assert calls and "langpair.budget=2" in calls[0] and "langpair.sources=[eng,ind,jav]" in calls[0]
    assert "trainer.epochs=1" in calls[0] and "name=fill" in calls[0]


def test_evaluate_checks_its_budget_before_evaluating(tmp_path, capsys, monkeypatch):
    """``predict --evaluate --budget`` reads N or N% as ``langpair.budget`` does (one parser), and a bad
    value is one line before the minutes of masked completions, not a traceback after them."""
    import xlexp.predict.evaluate as evaluate

    results = tmp_path / "results"
    tiny_store(results)
    common = [
        "--results-dir",
        str(results),
        "--no-model-features",
        "--data-dir",
        str(tmp_path / "none"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--skip-loto",
        "--observed",
        "0.5",
        "--masks",
        "1",
    ]
    called = []
    monkeypatch.setattr(evaluate, "mask_evaluation", lambda *a, **k: called.append(1))
    for bad in ("abc", "0", "150%"):
        assert main(["predict", "--evaluate", "--experiment", "tiny", "--budget", bad, *common]) != 0
        assert "--budget must be a positive number of sources or a share like 30%" in capsys.readouterr().err
    assert main(["predict", "--evaluate", "--experiment", "tiny", "--jobs", "0", *common]) != 0
    assert "--jobs must be a number of processes" in capsys.readouterr().err
    assert not called
    monkeypatch.undo()
    # the whole evaluation on the tiny store, leave-one-target-out included: no data dir, so no training
    # sizes for any source (a feature without a value, which the LangRank-style trees must leave out)
    common.remove("--skip-loto")
    assert main(["predict", "--evaluate", "--experiment", "tiny", "--budget", "34%", *common]) == 0
    out = capsys.readouterr().out
    assert "active filling: train 1 of 4 sources" in out and "LangRank-style" in out


def test_evaluation_reports_its_progress_and_runs_on_several_processes():
    """The three stages of ``--evaluate`` call back after each unit of work with (done, total), ending
    at total: the CLI's progress bars (a 205-target leave-one-target-out takes ~50 min on 2 cores)."""
    from xlexp.predict.evaluate import active_evaluation, loto_ranking, mask_evaluation
    from xlexp.predict.features import pair_features

    rng = np.random.default_rng(0)
    sources, targets = ["eng", "ind", "jav", "sun"], ["ace", "ban", "bjn", "min", "mad", "eng"]
    y = 0.6 + rng.normal(0, 0.05, (4, 1)) + rng.normal(0, 0.08, (1, 6)) + rng.normal(0, 0.01, (4, 6))
    feats = pair_features(sources, targets)
    for run, kwargs in (
        (mask_evaluation, dict(fractions=(0.5,), n_masks=3)),
        (loto_ranking, {}),
        (active_evaluation, dict(budget=2)),
    ):
        calls = []
        run(y, feats, **kwargs, on_step=lambda done, total, calls=calls: calls.append((done, total)))
        assert calls and calls[-1][0] == calls[-1][1], (run.__name__, calls)
        assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len({t for _, t in calls}) == 1, calls
    assert calls[-1] == (1 + 6, 1 + 6)  # the chooser's set, then every one of the C(4, 2) = 6 sets
    # on two processes: the same tables (each mask, target and random set is seeded by its arguments)
    for run, kwargs in (
        (mask_evaluation, dict(fractions=(0.5,), n_masks=3)),
        (loto_ranking, {}),
        (active_evaluation, dict(budget=2)),
    ):
        one, two = run(y, feats, **kwargs), run(y, feats, **kwargs, jobs=2)
        pd.testing.assert_frame_equal(one, two)


@pytest.mark.unit
def test_predict_says_what_it_computes_first_and_skips_model_features_when_nothing_is_missing(tmp_path, caplog):
    """Issue #33: on a complete 1 x 12 matrix `xlexp predict` computed the model's view for 5.5 minutes in
    silence and then predicted 0 cells. Now a complete matrix skips the model features (one line says
    so), and a partial one says what it will compute before it does, then logs the encoder's progress."""
    from tests.conftest import write_nusax_like

    data, cache = write_nusax_like(tmp_path / "data"), tmp_path / "cache"
    complete_store = tmp_path / "complete"
    recs = [
        Record(
            experiment="full",
            run_id="r",
            model="tiny_random",
            task="nusax_senti",
            regime="zero_shot",
            source="eng",
            target=t,
            target_tag=normalize_tag(t),
            split="test",
            metric="accuracy",
            value=0.5 + i / 10,
            n_examples=40,
            seed=1,
            selection="source_dev",
            config_hash="0" * 12,
            git_commit="test",
            timestamp="2026-01-01T00:00:00+00:00",
        )
        for i, t in enumerate(["eng", "ind", "jav"])
    ]
    write_records(recs, complete_store, "r")
    common = ["--data-dir", str(data), "--cache-dir", str(cache)]
    with caplog.at_level("INFO"):
        assert main(["predict", "--experiment", "full", "--results-dir", str(complete_store), *common]) == 0
    assert "all 3 cells of the 1 source(s) x 3 target(s) matrix of full are measured" in caplog.text
    assert "model features are not computed" in caplog.text and not (cache / "predict").exists()
    caplog.clear()
    partial = tmp_path / "partial"
    tiny_store(partial)
    with caplog.at_level("INFO"):
        assert main(["predict", "--experiment", "tiny", "--results-dir", str(partial), *common]) == 0
    lines = [r.getMessage() for r in caplog.records]
    said = next(i for i, m in enumerate(lines) if "to predict from" in m)
    assert "tiny_random's view of each of 9 language(s)" in lines[said]
    progress = [i for i, m in enumerate(lines) if m.startswith("model features (tiny_random): ")]
    assert progress and said < progress[0] and lines[progress[-1]].startswith("model features (tiny_random): 3/3 ")
