"""``xlexp reproduce``: dry runs of every shipped reproduction, and a real sib200-mlp run on a tiny
SIB-like dataset against a tiny reference, checking Δ / means / Spearman by hand and the reuse of
records on a second call."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import compose_cfg
from xlexp import XlexpError, load_records, run_experiment
from xlexp.reproduce.runner import reproduce, summarize
from xlexp.reproduce.spec import available, load_reference, load_reproduction

LABELS = ["entertainment", "geography", "health", "politics", "science/technology", "sports", "travel"]
# per language: how often the label's cue word is replaced by noise (so languages score differently)
NOISE = {"eng_Latn": 0.0, "fra_Latn": 0.35, "hin_Deva": 0.6, "nqo_Nkoo": 0.2}
SUBSET = "eng_Latn,fra_Latn,hin_Deva,nqo_Nkoo"


def write_sib_like(root: Path, sizes=(140, 28, 70), seed: int = 0) -> Path:
    """``sib200/<code>/{train,dev,test}.tsv`` (index_id, category, text) with a cue word per label."""
    rng = random.Random(seed)
    for code, noise in NOISE.items():
        cues = {label: f"{code[:3]}cue{i}" for i, label in enumerate(LABELS)}
        filler = [f"{code[:3]}w{i}" for i in range(30)]
        for split, n in zip(("train", "dev", "test"), sizes):
            out = root / "sib200" / code
            out.mkdir(parents=True, exist_ok=True)
            with (out / f"{split}.tsv").open("w", encoding="utf-8", newline="") as f:
                w = csv.writer(f, delimiter="\t")
                w.writerow(["index_id", "category", "text"])
                for i in range(n):
                    label = LABELS[i % len(LABELS)]
                    words = [rng.choice(filler) for _ in range(6)]
                    if split == "train" or rng.random() >= noise:
                        words.insert(rng.randrange(7), cues[label])
                    w.writerow([i, label, " ".join(words)])
    return root


@pytest.fixture
def sib(tmp_path: Path) -> dict[str, Path]:
    data = write_sib_like(tmp_path / "data")
    ref = tmp_path / "reference.csv"
    # deu_Latn is in the reference but not run; nqo_Nkoo is run but not in the reference (as in SIB-200)
    pd.DataFrame(
        {
            "language": ["English", "French", "Hindi", "German"],
            "code": ["eng_Latn", "fra_Latn", "hin_Deva", "deu_Latn"],
            "mlp": [95.0, 60.0, 70.0, 50.0],
        }
    ).to_csv(ref, index=False)
    return {"data": data, "results": tmp_path / "results", "cache": tmp_path / "cache", "reference": ref}


def _paths(d: dict[str, Path]) -> list[str]:
    # paths.* are not part of the config hash; model.tokenizer=tiny_random keeps the test off the e5 build
    return [
        f"paths.data_dir={d['data']}",
        f"paths.cache_dir={d['cache']}",
        "trainer.progress=false",
        "model.tokenizer=tiny_random",
    ]


def _run(d, **kw):
    return reproduce(
        "sib200-mlp",
        results_dir=d["results"],
        subset=SUBSET.split(","),
        overrides=_paths(d),
        reference=d["reference"],
        **kw,
    )


@pytest.mark.unit
def test_summary_math_by_hand():
    cells = pd.DataFrame({"ours": [60.0, 70.0, 80.0, 90.0], "paper": [62.0, 65.0, 90.0, 85.0]})
    s = summarize(cells)
    assert s["n"] == 4 and s["mean_ours"] == 75.0 and s["mean_paper"] == 75.5
    assert s["mean_delta"] == pytest.approx(-0.5) and s["mean_abs_delta"] == pytest.approx(5.5)  # |-2|+5+10+5
    assert s["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))  # ranks 1234 vs 1243: sum d^2 = 2
    assert s["pearson"] == pytest.approx(np.corrcoef(cells["ours"], cells["paper"])[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x)).astype(float)


def test_sib200_mlp_on_tiny_data_then_reuse(sib, capsys):
    res = _run(sib)
    out = capsys.readouterr().out
    df = load_records(sib["results"])
    for variant in ("word", "subword"):
        ours = (
            df[
                (df["experiment"] == f"reproduce-sib200-mlp-{variant}")
                & (df["split"] == "test")
                & (df["metric"] == "accuracy")
                & (df["selection"] == "source_dev")
            ].set_index("target")["value"]
            * 100
        )
        assert sorted(ours.index) == sorted(NOISE)  # the four subset languages ran, in-language
        cells = res.cells[res.cells["variant"] == variant].set_index("cell")
        assert sorted(cells.index) == ["eng_Latn", "fra_Latn", "hin_Deva"]  # the intersection with the reference
        paper = pd.Series({"eng_Latn": 95.0, "fra_Latn": 60.0, "hin_Deva": 70.0})
        a, b = ours[paper.index].to_numpy(), paper.to_numpy()
        assert cells.loc[paper.index, "ours"].to_numpy() == pytest.approx(a)
        assert cells.loc[paper.index, "delta"].to_numpy() == pytest.approx(a - b)
        row = res.summary.set_index("variant").loc[variant]
        assert row["mean_ours"] == pytest.approx(a.mean()) and row["mean_paper"] == pytest.approx(b.mean())
        assert row["mean_abs_delta"] == pytest.approx(np.abs(a - b).mean())
        if np.ptp(a) > 0:
            assert row["spearman"] == pytest.approx(np.corrcoef(_ranks(a), _ranks(b))[0, 1])
        assert res.ours_only[variant] == ["nqo_Nkoo"] and res.paper_only[variant] == ["deu_Latn"]
    assert ours["eng_Latn"] > 90  # the cue words are learnable
    for f in ("cells", "markdown", "latex", "heatmap"):
        assert res.files[f].exists() and res.files[f].stat().st_size > 100
    assert res.files["markdown"].parent == sib["results"] / "reproduce" / "sib200-mlp-subset"
    md = res.files["markdown"].read_text()
    assert "Adelani et al." in md and "| eng_Latn (English) |" in md and "mean |Δ|" in md.replace("\\|", "|")
    assert "Spearman" in out and "furthest from the paper" in out and "nqo_Nkoo" in out and "deu_Latn" in out

    # a second call reuses every record: no new record files, the same numbers
    files = sorted((sib["results"] / "runs").glob("*.parquet"))
    again = _run(sib)
    assert sorted((sib["results"] / "runs").glob("*.parquet")) == files
    pd.testing.assert_frame_equal(again.cells, res.cells)
    assert "reuse records of 'reproduce-sib200-mlp-word'" in capsys.readouterr().out


def test_reuses_a_plain_run_of_the_same_config(sib):
    """An `xlexp run` with the reproduction's overrides (another experiment name) is reused."""
    dirs = {"data": sib["data"], "results": sib["results"], "cache": sib["cache"]}
    run_experiment(
        compose_cfg(
            dirs,
            "model=classical_mlp",
            "task=sib200",
            "regime=full",
            "langpair=sib200_all_self",
            "model.features=word",
            "model.tokenizer=tiny_random",
            f"langpair.targets=[{SUBSET}]",
            "trainer.progress=false",
            "name=plain",
        )
    )
    n_files = len(list((sib["results"] / "runs").glob("*.parquet")))
    res = _run(sib, variants=["word"])
    assert len(list((sib["results"] / "runs").glob("*.parquet"))) == n_files
    assert res.runs[0].reuse[0] == "plain"


@pytest.mark.parametrize("name", available())
def test_dry_run_of_every_reproduction(name, tmp_path, capsys):
    assert reproduce(name, results_dir=tmp_path / "results", dry_run=True) is None
    out = capsys.readouterr().out
    repro = load_reproduction(name)
    assert "xlexp run " in out and "the paper's hyperparameters" in out and "expected cost" in out
    assert repro.citation.split(",")[0] in out
    if repro.runs_on == "gpu":
        assert "GPU-hour" in out or "A100-hour" in out
    assert not (tmp_path / "results" / "runs").exists()  # nothing ran
    ref = load_reference(repro)
    for v in repro.variants:
        assert ref[v.column].notna().any()
    if name == "sib200-mlp":
        assert len(ref) == 204 and ref["mlp"].mean() == pytest.approx(62.3, abs=0.05)


def test_subset_of_a_matrix_reproduction(tmp_path, capsys):
    reproduce("udpos-xpos", results_dir=tmp_path, dry_run=True, subset=["en", "wo", "yo"])
    out = capsys.readouterr().out
    assert "langpair.sources=[en_ewt]" in out and "langpair.sources=[wo_wtb]" in out
    assert "langpair.targets=[en_ewt,wo_wtb,yo_ytb]" in out and "fr_gsd]" not in out


@pytest.mark.unit
def test_unknown_reproduction_and_variant(tmp_path):
    with pytest.raises(XlexpError, match=r"unknown reproduction 'nope'. Available: .*sib200-mlp.*xtreme-avg"):
        reproduce("nope", results_dir=tmp_path)
    with pytest.raises(XlexpError, match=r"no variant\(s\) \['big'\]; its variants: word, subword, word_sklearn"):
        reproduce("sib200-mlp", results_dir=tmp_path, variants=["big"])


@pytest.mark.unit
def test_gpu_reproduction_refuses_to_run_on_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(XlexpError, match=r"GPU config and there is no GPU here: use --dry-run"):
        reproduce("xnli-xlmr", results_dir=tmp_path)
