"""Issue 5: selection rules, few-shot, multi-source, seeds — with the tiny model on test-built data."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import TINY, compose_cfg
from xlexp import XlexpError, load_predictions, load_records, run_experiment
from xlexp.data.fewshot import sample_shots
from xlexp.experiment.regimes.multi_source import sampling_weights
from xlexp.results.frames import selection_gap
from xlexp.results.query import few_shot_summary, pivot

ZS = [*TINY, "trainer.epochs=3", "trainer.eval_every=4", "langpair.sources=[eng]", "langpair.targets=[eng,ind,jav]"]


def test_zero_shot_records_three_rules_and_target_dev_bookkeeping(dirs):
    run_experiment(compose_cfg(dirs, *ZS, "name=rules"))
    df = load_records(dirs["results"])
    test = df[(df["split"] == "test") & (df["metric"] == "macro_f1")]
    assert set(test["selection"]) == {"source_dev", "target_dev", "last"}
    assert test.groupby("target")["selection"].nunique().eq(3).all()
    dev = df[(df["split"] == "dev") & (df["metric"] == "macro_f1")].set_index(["target", "step"])["value"]
    assert dev.index.get_level_values("step").nunique() > 3  # every evaluation recorded
    for target in ["eng", "ind", "jav"]:
        rows = test[test["target"] == target].set_index("selection")["step"]
        # the checkpoint target_dev chose has a dev score >= the one source_dev chose (on that target)
        assert dev[(target, rows["target_dev"])] >= dev[(target, rows["source_dev"])]
        assert dev[(target, rows["target_dev"])] == dev.loc[target].max()
    # the source language's own dev decides source_dev
    eng = dev.loc["eng"]
    assert test[(test["target"] == "ind") & (test["selection"] == "source_dev")]["step"].item() == eng.idxmax()
    assert rows["last"] == dev.index.get_level_values("step").max()
    gap = selection_gap(df, "rules", "macro_f1")
    assert list(gap.columns[:3]) == ["source_dev", "target_dev", "last"] and len(gap) == 3
    assert (gap["target_dev - source_dev"] == gap["target_dev"] - gap["source_dev"]).all()
    # predictions are stored per example for every rule
    preds = load_predictions(dirs["results"])
    assert len(preds) == 3 * 3 * 40 and set(preds["selection"]) == {"source_dev", "target_dev", "last"}


def test_no_checkpoint_files_left_behind(dirs):
    run_experiment(compose_cfg(dirs, *ZS, "name=clean"))
    ckpt = dirs["cache"] / "checkpoints"
    assert not ckpt.exists() or not any(ckpt.rglob("*.pt"))


FS = [
    *TINY,
    "regime=few_shot",
    "langpair.sources=[eng]",
    "langpair.targets=[ind,jav]",
    "regime.k=[2,5]",
    "regime.shot_sets=3",
    "regime.finetune.epochs=2",
    "regime.finetune.lr=1e-3",
    "name=fs",
]


def test_few_shot_trains_source_once_and_reports_mean_std(dirs, caplog):
    caplog.set_level("INFO", logger="xlexp")
    run_experiment(compose_cfg(dirs, *FS))
    assert sum("training source model eng" in m for m in caplog.messages) == 1
    cached = list((dirs["cache"] / "source_models").glob("*.pt"))
    assert len(cached) == 1
    df = load_records(dirs["results"])
    fs = df[(df["split"] == "test") & (pd.to_numeric(df["k"]) > 0) & (df["metric"] == "accuracy")]
    assert len(fs) == 2 * 2 * 3  # targets x K x shot sets
    assert set(fs["selection"]) == {"last"} and set(fs["shot_set"]) == {0, 1, 2}
    summary = few_shot_summary(df, "fs", "accuracy")
    assert sorted(summary["k"].unique()) == [0, 2, 5]
    assert (summary[summary["k"] > 0]["count"] == 3).all() and summary[summary["k"] > 0]["std"].notna().all()
    # shot sets are saved with their ids and hash
    files = sorted((dirs["results"] / "shots" / "nusax_senti" / "ind").glob("*.json"))
    assert len(files) == 6
    shot = json.loads(files[0].read_text())
    assert len(shot["ids"]) == shot["k"] * 3 and shot["hash"]

    caplog.clear()
    mtime = cached[0].stat().st_mtime_ns
    run_experiment(
        compose_cfg(dirs, *FS, "rerun=true")
    )  # second run (rerun: else skipped): the source model from the cache
    assert not any("training source model" in m for m in caplog.messages)
    assert any("reusing the cached source model" in m for m in caplog.messages)
    assert cached[0].stat().st_mtime_ns == mtime
    df2 = load_records(dirs["results"])
    runs = sorted(df2["run_id"].unique())
    a, b = (
        df2[
            (df2["run_id"] == r)
            & (df2["split"] == "test")
            & (df2["selection"] != "target_dev")
            & (df2["selection"] != "last")
            | (df2["run_id"] == r) & (pd.to_numeric(df2["k"]) > 0)
        ]
        .sort_values(["target", "k", "shot_set", "metric"])["value"]
        .tolist()
        for r in runs
    )
    assert a == b  # same seed, same shots: identical numbers


@pytest.mark.unit
def test_shot_sets_are_deterministic_and_class_balanced():
    labels = np.array([0, 1, 2] * 10)
    a = sample_shots(labels, ("a", "b", "c"), "t", "ind", 4, "class", 1, 0)
    b = sample_shots(labels, ("a", "b", "c"), "t", "ind", 4, "class", 1, 0)
    c = sample_shots(labels, ("a", "b", "c"), "t", "ind", 4, "class", 2, 0)
    assert a == b and a.ids != c.ids and a.hash == b.hash
    assert np.bincount(labels[list(a.ids)]).tolist() == [4, 4, 4]
    with pytest.raises(XlexpError, match="only 10 example\\(s\\) of class 'a'"):
        sample_shots(labels, ("a", "b", "c"), "t", "ind", 11, "class", 0, 0)


def test_shots_imported_from_a_file(dirs, tmp_path):
    path = tmp_path / "shots.json"
    path.write_text(json.dumps({"ind": {"2": [[0, 1, 2, 3, 4, 5]]}, "jav": {"2": [[6, 7, 8, 9, 10, 11]]}}))
    run_experiment(
        compose_cfg(
            dirs,
            *TINY,
            "regime=few_shot",
            "langpair.sources=[eng]",
            "langpair.targets=[ind,jav]",
            "regime.k=[2]",
            f"regime.shots_file={path}",
            "regime.finetune.epochs=1",
            "name=file",
        )
    )
    df = load_records(dirs["results"])
    assert len(df[(pd.to_numeric(df["k"]) == 2) & (df["metric"] == "accuracy")]) == 2


def test_multi_source_is_one_row(dirs):
    run_experiment(
        compose_cfg(
            dirs,
            *TINY,
            "regime=multi_source",
            "langpair.sources=[eng,ind,jav]",
            "langpair.targets=[eng,ind,jav]",
            "regime.sampling=uniform",
            "name=ms",
        )
    )
    m = pivot(load_records(dirs["results"]), "ms", "accuracy")
    assert list(m.mean.index) == ["eng+ind+jav"] and m.shape == (1, 3)


def test_multi_source_needs_two_sources(dirs):
    with pytest.raises(XlexpError, match="at least two sources"):
        run_experiment(
            compose_cfg(dirs, *TINY, "regime=multi_source", "langpair.sources=[eng]", "langpair.targets=[ind]")
        )


@pytest.mark.unit
def test_sampling_weights():
    assert sampling_weights([10, 30], "proportional", 1.0) is None
    w = sampling_weights([10, 30], "uniform", 1.0)
    assert np.isclose(w[:10].sum(), 0.5) and np.isclose(w.sum(), 1.0)
    t = sampling_weights([10, 90], "temperature", 2.0)  # p ~ sqrt(n): 3.16 vs 9.49
    assert np.isclose(t[:10].sum(), np.sqrt(10) / (np.sqrt(10) + np.sqrt(90)))


def test_seeds_give_mean_std_and_n(dirs):
    run_experiment(
        compose_cfg(
            dirs, *TINY, "langpair.sources=[eng]", "langpair.targets=[ind,jav]", "regime.seeds=[1,2,3]", "name=seeds"
        )
    )
    m = pivot(load_records(dirs["results"]), "seeds", "accuracy")
    assert (m.n == 3).all().all() and m.std.notna().all().all()
