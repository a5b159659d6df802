"""regime=probe: frozen sentence vectors, MTEB's draws and logistic regression; bitext mining; the
embedding cache; one-line refusals (tiny random model, data the tests build)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import compose_cfg
from xlexp import XlexpError, run_experiment
from xlexp.data.tokenized import TokenizedSplit
from xlexp.engine.bitext import bitext_mining_metrics
from xlexp.engine.inference import compute_metrics
from xlexp.experiment.regimes.probe import label_metrics, undersample
from xlexp.results.store import RECORD_COLUMNS, load_records

TINY = ["model=tiny_random", "trainer.progress=false", "regime=probe", "regime.per_label=5", "regime.draws=3"]


def _test(dirs, name):
    df = load_records(dirs["results"])
    return df[(df["experiment"] == name) & (df["split"] == "test")]


def test_probe_matrix_records_draws_as_shot_sets(dirs):
    run_experiment(compose_cfg(dirs, *TINY, "langpair.sources=[eng,ind]", "langpair.targets=[eng,ind,jav]", "name=p"))
    df = load_records(dirs["results"])
    assert list(df.columns) == RECORD_COLUMNS
    test = _test(dirs, "p")
    assert set(zip(test["source"], test["target"])) == {(s, t) for s in ("eng", "ind") for t in ("eng", "ind", "jav")}
    assert set(test["shot_set"].astype(int)) == {0, 1, 2} and test["k"].isna().all()
    assert set(test["selection"]) == {"last"} and (test["regime"] == "probe").all()  # one rule: no checkpoints
    assert (test["n_examples"] == 40).all() and len(test) == 2 * 3 * 3 * 2  # cells x draws x metrics
    assert (df["split"] != "dev").all()  # no dev split is read or scored
    # embeddings were cached: one file per (language, split) read
    files = sorted(
        p.name.split(".")[0] + "." + p.name.split(".")[1] for p in (dirs["cache"] / "embeddings").rglob("*.npz")
    )
    assert files == ["eng.test", "eng.train", "ind.test", "ind.train", "jav.test"]


def test_probe_rerun_reads_cached_vectors_and_gives_the_same_numbers(dirs, monkeypatch):
    args = [*TINY, "langpair.sources=[eng]", "langpair.targets=[eng,jav]"]
    run_experiment(compose_cfg(dirs, *args, "name=a"))
    import xlexp.models.embeddings as emb

    def boom(*a, **k):
        raise AssertionError("embedded again although cached")

    monkeypatch.setattr(emb, "embed_texts", boom)
    run_experiment(compose_cfg(dirs, *args, "name=b"))
    a, b = _test(dirs, "a"), _test(dirs, "b")
    key = ["source", "target", "metric", "selection", "shot_set"]
    assert np.allclose(a.sort_values(key)["value"].to_numpy(), b.sort_values(key)["value"].to_numpy())


def test_prefix_is_part_of_the_cache_key(dirs):
    run_experiment(compose_cfg(dirs, *TINY, "langpair.sources=[eng]", "langpair.targets=[eng]", "name=a"))
    run_experiment(
        compose_cfg(
            dirs, *TINY, "langpair.sources=[eng]", "langpair.targets=[eng]", "regime.prefix='query: '", "name=b"
        )
    )
    files = list((dirs["cache"] / "embeddings").rglob("eng.test.*.npz"))
    assert len(files) == 2
    x, y = (np.load(f)["emb"] for f in files)
    assert not np.allclose(x, y)


@pytest.mark.unit
def test_undersample_is_mteb_draws():
    labels = np.array([0, 1, 2] * 10)
    draws = undersample(labels, 2, 3, 42)
    # MTEB: one permutation, re-shuffled in place before each draw by a fresh RandomState(42)
    idxs = np.arange(30)
    for d in draws:
        np.random.RandomState(42).shuffle(idxs)
        want = [i for k, i in enumerate(idxs) if list(labels[idxs[:k]]).count(labels[i]) < 2]
        assert d.tolist() == want
        assert np.bincount(labels[d]).tolist() == [2, 2, 2]
    assert draws[0].tolist() != draws[1].tolist()


@pytest.mark.unit
def test_bitext_mining_metrics_match_mteb_definition():
    rng = np.random.default_rng(0)
    pivot = rng.normal(size=(6, 8))
    xx = pivot.copy()
    xx[4] = pivot[2] + 0.01  # sentence 4 matches pivot 2: one error, pivot 2 is chosen twice
    m = bitext_mining_metrics(xx, pivot)
    assert m["accuracy"] == pytest.approx(5 / 6) and m["acc1_xx2en"] == m["accuracy"]
    # weighted over gold ids (each support 1): F1 of id 2 is 2/3 (precision 1/2, recall 1), id 4 is 0
    assert m["f1"] == pytest.approx((4 * 1 + 2 / 3 + 0) / 6)
    assert m["precision"] == pytest.approx((4 + 0.5 + 0) / 6) and m["recall"] == pytest.approx(5 / 6)
    with pytest.raises(XlexpError, match="line-aligned"):
        bitext_mining_metrics(xx[:5], pivot)


def test_probe_on_a_retrieval_task_is_mteb_bitext_mining(dirs, caplog):
    caplog.set_level("INFO", logger="xlexp.experiment.regimes.probe")
    folder = dirs["data"] / "tatoeba"
    folder.mkdir()
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    for code in ("afr", "deu"):
        (folder / f"tatoeba.{code}-eng.{code}").write_text(
            "\n".join(f"{w} {code}" for w in words) + "\n", encoding="utf-8"
        )
        (folder / f"tatoeba.{code}-eng.eng").write_text("\n".join(f"{w} eng" for w in words) + "\n", encoding="utf-8")
    run_experiment(
        compose_cfg(
            dirs,
            "model=tiny_random",
            "trainer.progress=false",
            "regime=probe",
            "task=tatoeba",
            "langpair=tatoeba_all",
            "langpair.targets=[afr,deu]",
            "name=bt",
        )
    )
    test = _test(dirs, "bt")
    assert set(test["source"]) == {"eng"} and set(test["target"]) == {"afr", "deu"}
    assert set(test["metric"]) == {"f1", "accuracy", "precision", "recall", "acc1_xx2en", "acc1_en2xx"}
    assert (test["n_examples"] == 8).all() and set(test["selection"]) == {"last"}
    cell = test[(test["target"] == "afr") & (test["selection"] == "last")].set_index("metric")["value"]
    assert cell["accuracy"] == cell["acc1_xx2en"] == cell["recall"] and 0 <= cell["f1"] <= cell["accuracy"] <= 1
    # progress: one line per pair, in order, with the recorded score
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("bitext mining ")]
    assert [ln.split(":")[0] for ln in lines[:2]] == ["bitext mining afr (1/2)", "bitext mining deu (2/2)"]
    assert f"f1 {cell['f1']:.4f}" in lines[0]


@pytest.mark.unit
def test_fast_label_metrics_equal_the_engine_metrics():
    rng = np.random.default_rng(1)
    for n_labels, n in ((7, 204), (3, 5), (4, 50)):
        gold = rng.integers(0, n_labels, n)
        pred = np.where(rng.random(n) < 0.6, gold, rng.integers(0, n_labels - 1, n))  # label n-1 rarely predicted
        fast = label_metrics(pred, gold, ("accuracy", "macro_f1"), n_labels)
        ref = compute_metrics(
            pred,
            TokenizedSplit(input_ids=[], labels=gold),
            ("accuracy", "macro_f1"),
            tuple(str(i) for i in range(n_labels)),
        )
        assert fast == pytest.approx(ref, abs=1e-12)
    assert label_metrics(gold, gold, ("accuracy", "weighted_f1"), 4) is None
