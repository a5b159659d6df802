"""Every number right (issue #27): macro-F1 of a target that lacks a label, summaries that count each
cell once, regime x task-kind compatibility declared and checked before any work, views that never
mix models, and one matrix mean in console, table, PNG, HTML and W&B."""

from __future__ import annotations

import csv
import logging
import re

import numpy as np
import pytest
from sklearn.metrics import f1_score

from conftest import TINY, compose_cfg
from synthetic import make_records, write
from xlexp import XlexpError, load_predictions, load_records
from xlexp.experiment import regimes
from xlexp.experiment.runner import resolve_settings, run_experiment
from xlexp.results.query import TRANSFER_MEAN, pivot


def _drop_label(data_dir, folder: str, label: str) -> None:
    """Remove every ``label`` row from one language's test split (the MasakhaNEWS shape)."""
    path = data_dir / "nusax_senti" / folder / "test.csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text", "label"])
        w.writeheader()
        w.writerows(r for r in rows if r["label"] != label)


def test_a_target_without_a_label_gets_sklearns_macro_f1_over_present_labels(dirs, caplog):
    _drop_label(dirs["data"], "javanese", "neutral")
    cfg = compose_cfg(dirs, *TINY, "langpair.sources=[eng]", "langpair.targets=[eng,jav]", "name=absent")
    with caplog.at_level(logging.WARNING):
        run_experiment(cfg)
    assert "target jav: its test gold has 2 of the task's 3 labels" in caplog.text
    df = load_records(dirs["results"])
    preds = load_predictions(dirs["results"])
    cells = df[(df["split"] == "test") & (df["metric"] == "macro_f1")]
    assert len(cells) > 0
    for row in cells.itertuples():
        p = preds[(preds["target"] == row.target) & (preds["selection"] == row.selection)]
        expected = f1_score(p["label"], p["pred"], average="macro", zero_division=0)
        assert row.value == pytest.approx(expected, abs=1e-12)
        assert row.n_labels == len(set(p["label"]) | set(p["pred"]))
        if row.target == "jav":
            assert p["label"].nunique() == 2  # positive, negative: neutral is gone from the gold
    assert set(df["primary_metric"].dropna()) == {"macro_f1"}


def test_icl_summary_counts_each_cell_once_n_is_shot_sets_times_seeds(dirs):
    from xlexp.results.query import few_shot_summary

    cfg = compose_cfg(
        dirs,
        "model=tiny_random_decoder",
        "regime=icl",
        "regime.k=[0,2]",
        "regime.shot_sets=2",
        "regime.seeds=[1,2]",
        "langpair.sources=[eng]",
        "langpair.targets=[ind]",
        "name=iclcount",
        "data.max_eval_examples=12",
        "trainer.progress=false",
    )
    run_experiment(cfg)
    df = load_records(dirs["results"])
    assert set(df[df["split"] == "test"]["selection"]) == {"none"}
    summary = few_shot_summary(df, "iclcount", "macro_f1")
    by_k = summary.set_index("k")["count"]
    assert by_k.loc[2] == 2 * 2  # shot sets x seeds, once each (three rules made it 12)
    assert by_k.loc[0] == 2  # the K = 0 cell: one per seed


# ---- compatibility: the whole regime x task-type x family grid ---------------------------------------

TASKS = {
    "sentence_classification": "nusax_senti",
    "pair_classification": "pawsx",
    "token_classification": "masakhapos",
    "extractive_qa": "xquad",
    "retrieval": "tatoeba",
    "generation": "tatoeba_mt",
}
MODELS = {"encoder": "tiny_random", "decoder": "tiny_random_decoder", "seq2seq": "tiny_random_seq2seq"}
# the pairs each run end to end, with their records' labels checked, in these tests
RUN_BY = {
    ("zero_shot", "sentence_classification"): "test_regimes.py",
    ("few_shot", "sentence_classification"): "test_regimes.py",
    ("full", "sentence_classification"): "test_regimes.py",
    ("multi_source", "sentence_classification"): "test_regimes.py",
    ("icl", "sentence_classification"): "test_icl.py",
    ("zero_shot", "token_classification"): "test_task_types.py",
    ("zero_shot", "extractive_qa"): "test_qa.py",
    ("zero_shot", "retrieval"): "test_tasks.py",
    ("zero_shot", "generation"): "test_generation.py",
    ("icl", "generation"): "test_generation.py",
}


@pytest.mark.unit
@pytest.mark.parametrize("regime", sorted(regimes.available()))
@pytest.mark.parametrize("task_type", sorted(TASKS))
def test_every_regime_task_pair_is_declared_and_refused_before_any_work_or_accepted(tmp_path, regime, task_type):
    declared = regimes.get(regime).task_types
    supported = declared is None or task_type in declared
    dirs = {"data": tmp_path / "none", "results": tmp_path / "r", "cache": tmp_path / "c"}  # no data: nothing read
    for family, model in MODELS.items():
        families = regimes.get(regime).families
        if task_type == "generation" and family == "encoder":
            continue  # generation needs a decoder or seq2seq model (its own check)
        cfg = compose_cfg(dirs, f"task={TASKS[task_type]}", f"model={model}", f"regime={regime}")
        if supported and (families is None or family in families):
            resolve_settings(cfg)  # accepted: no error at settings time
        else:
            with pytest.raises(XlexpError, match=rf"regime {regime} (does not run {task_type}|needs a)"):
                resolve_settings(cfg)


def test_generation_few_shot_is_one_line_exit_2_not_a_mislabelled_zero_shot_run(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "xlexp.cli.main",
            "run",
            "task=tatoeba_mt",
            "model=tiny_random_seq2seq",
            "regime=few_shot",
            "regime.k=[4]",
            f"paths.results_dir={tmp_path / 'r'}",
            f"paths.data_dir={tmp_path / 'none'}",
            f"paths.cache_dir={tmp_path / 'c'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("xlexp: error: regime few_shot does not run generation tasks"), out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "r" / "runs").exists() or not any((tmp_path / "r" / "runs").iterdir())


@pytest.mark.unit
def test_the_declared_grid_is_what_the_tests_run():
    for regime, task_type in RUN_BY:
        declared = regimes.get(regime).task_types
        assert declared is None or task_type in declared


@pytest.mark.unit
@pytest.mark.parametrize(
    "override,key", [("+task.n_best=0", "n_best"), ("+task.max_answer_length=0", "max_answer_length")]
)
def test_bad_qa_options_are_refused_when_the_task_is_read(tmp_path, override, key):
    dirs = {"data": tmp_path / "none", "results": tmp_path / "r", "cache": tmp_path / "c"}
    cfg = compose_cfg(dirs, "task=xquad", "model=tiny_random", override.replace("+", ""))
    with pytest.raises(XlexpError, match=rf"{key} must be an integer >= 1, got 0"):
        resolve_settings(cfg)  # the task is parsed once, with the settings


@pytest.mark.unit
def test_a_metric_the_task_type_does_not_compute_is_refused_when_read():
    from xlexp import TaskSpec

    with pytest.raises(
        XlexpError, match=r"metric\(s\) \['span_f1'\] do not apply to task type sentence_classification"
    ):
        TaskSpec.from_config(
            {
                "name": "t",
                "type": "sentence_classification",
                "languages": ["eng"],
                "labels": ["a", "b"],
                "metrics": ["accuracy", "span_f1"],
            }
        )


# ---- views never mix two models ---------------------------------------------------------------------


def _two_models(results) -> None:
    write(results, make_records("mixed", sources=("eng",), model="me5_small_offline", run_id="r-e5"), "r-e5")
    write(
        results,
        make_records(
            "mixed", sources=("eng",), model="tiny_random", run_id="r-tiny", timestamp="2026-01-02T00:00:00+00:00"
        ),
        "r-tiny",
    )


@pytest.mark.unit
def test_matrix_table_compare_and_report_never_average_two_models(tmp_path, capsys):
    from xlexp.views.compare import compare
    from xlexp.views.console import show
    from xlexp.views.html import write_report
    from xlexp.views.tables import TableOptions, render_table

    results = tmp_path / "results"
    _two_models(results)
    with pytest.raises(XlexpError, match=r"holds several models \(me5_small_offline, tiny_random\).*--model"):
        show(results, "mixed")
    with pytest.raises(XlexpError, match="several models"):
        render_table(str(results), "mixed", None, TableOptions())
    with pytest.raises(XlexpError, match=r"several models .* run id: r-e5 \(me5_small_offline\)"):
        compare(results, "mixed", "mixed")
    (m,) = show(results, "mixed", ["accuracy"], model="tiny_random")
    assert (m.n == 1).all().all()  # one model's cells: n is its seeds, not 2 models
    report = write_report(results)
    html = report.path.read_text(encoding="utf-8")
    assert "me5_small_offline" in html and "tiny_random" in html  # split: each model's own matrix


# ---- one mean -------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_one_mean_in_console_table_png_html_and_wandb(tmp_path, capsys, monkeypatch):
    from xlexp.tracking.wandb_results import summary_keys
    from xlexp.views import png
    from xlexp.views.console import show
    from xlexp.views.html import write_report
    from xlexp.views.tables import TableOptions, render_table

    results = tmp_path / "results"
    write(results, make_records("one", sources=("eng", "ind"), targets=("eng", "ind", "jav")), "one")
    df = load_records(results)
    m = pivot(df, "one", "macro_f1")
    cells = m.mean.to_numpy(dtype=float)
    expected = float(np.mean([cells[0, 1], cells[0, 2], cells[1, 0], cells[1, 2]]))  # eng->eng, ind->ind left out
    assert m.transfer_mean() == pytest.approx(expected)
    text = f"{expected:.3f}"

    titles = []
    real = png._png_heatmap
    monkeypatch.setattr(
        png, "_png_heatmap", lambda data, path, **kw: (titles.append(kw["title"]), real(data, path, **kw))
    )
    show(results, "one", ["macro_f1"])
    console = capsys.readouterr().out
    assert TRANSFER_MEAN in console and text in console
    assert any(f"{TRANSFER_MEAN}" in t and text in t for t in titles)  # PNG
    table = render_table(str(results), "one", "macro_f1", TableOptions(percent=False, digits=3))
    assert TRANSFER_MEAN in table and text in table  # table
    assert summary_keys(df)["xfer/mean/macro_f1"] == pytest.approx(expected)  # W&B
    html = write_report(results).path.read_text(encoding="utf-8")
    assert TRANSFER_MEAN in html and text in html  # HTML
    # and the old, different number (the in-language cells averaged in) is printed nowhere
    wrong = f"{float(np.nanmean(cells)):.3f}"
    assert wrong != text and wrong not in re.sub(r"\d\.\d{4,}", "", console)
