"""Sections of one experiment in the report beyond its transfer matrices: per-class F1 and label sets
per target (from the stored predictions), few-shot K-curves and the selection-rule gap.

Why a module of its own: each is a self-contained reading of the records (or predictions) of one
experiment, drawn with the page's building blocks (``xlexp.views.page``); ``xlexp.views.report_experiment``
calls them in order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xlexp.results.frames import kcurve_frame, selection_gap_frame
from xlexp.results.languages import info
from xlexp.results.slices import headline, slice_keys
from xlexp.views.figures import gap_figure, kcurve_figure
from xlexp.views.page import Column, Page, esc, mean_std, sortable_table


def per_class_section(sub: pd.DataFrame, results_dir: str) -> str:
    """Per target: the label set of its test split and the per-class F1 of the headline rule's
    predictions (mean over seeds), from the per-example predictions the runs stored (none for QA and
    generation, whose predictions are texts). An empty string when there are none."""
    from xlexp.results.store import load_predictions

    test = sub[sub["split"] == "test"]
    keys = slice_keys(test) if not test.empty else []
    if not keys:
        return ""
    key = headline(keys)
    try:
        preds = load_predictions(results_dir, run_ids=sorted(sub["run_id"].astype(str).unique()))
    except Exception:  # unreadable prediction files are reported by `xlexp store check`, not here
        return ""
    if preds.empty or "label" not in preds:
        return ""
    preds = preds[(preds["split"] == "test") & (preds["selection"] == key.selection) & (preds["label"] >= 0)]
    if "k" in preds and key.k is not None:
        preds = preds[preds["k"].fillna(-1).astype(int) == int(key.k)]
    elif "k" in preds:
        preds = preds[preds["k"].isna() | (preds["k"].fillna(0).astype(int) == 0)]
    if preds.empty:
        return ""
    names = _label_names(str(test["task"].iloc[0]))
    ids = sorted(set(preds["label"].astype(int)) | set(preds["pred"].astype(int)))
    name = [names[i] if i < len(names) else str(i) for i in ids]
    cols = [Column("source"), Column("target"), Column("labels in the test split"), Column("n", numeric=True)]
    cols += [Column(f"F1 {n}", numeric=True) for n in name]
    rows = []
    for (source, target), g in preds.groupby(["source", "target"]):
        per_seed = []
        for _, s in g.groupby("seed"):
            gold, pred = s["label"].to_numpy(int), s["pred"].to_numpy(int)
            f1 = []
            for i in ids:
                tp = int(((gold == i) & (pred == i)).sum())
                denom = int((gold == i).sum() + (pred == i).sum())
                f1.append(2 * tp / denom if denom else np.nan)
            per_seed.append(f1)
        f1 = np.nanmean(np.asarray(per_seed, dtype=float), axis=0) if per_seed else []
        present = [names[i] if i < len(names) else str(i) for i in sorted(set(g["label"].astype(int)))]
        n = int(len(g) / max(g["seed"].nunique(), 1))
        rows.append(
            [
                str(source),
                str(target),
                ", ".join(present),
                (n, str(n)),
                *[(v, "" if np.isnan(v) else f"{v:.3f}") for v in f1],
            ]
        )
    return (
        "<h3>Per-class F1 and label set per target</h3>"
        f'<p class="note">Test predictions under {esc(key.selection)} (mean over seeds; per example, or per word '
        f"for token tasks); a class no gold or predicted example has is blank.</p>"
        f"<details><summary>per-class F1 of {len(rows)} cell(s) (click a header to sort)</summary>"
        f"{sortable_table(cols, rows)}</details>"
    )


def _label_names(task: str) -> list[str]:
    """The task's labels in id order (the predictions store ids); [] when the task is not found."""
    try:
        from xlexp.tasks.spec import load_task

        return list(load_task(task).labels)
    except Exception:  # a task of another config folder: ids are shown instead
        return []


def kcurves(page: Page, sub: pd.DataFrame, experiment: str, metrics: list[str]) -> None:
    frames = {m: kcurve_frame(sub, experiment, m) for m in metrics}
    if all(f.empty for f in frames.values()):
        return
    page.add(
        '<h3>Few-shot K-curves</h3><p class="note">Test score vs K per target: mean ± std over shot sets × '
        "seeds (error bars); K = 0 is the zero-shot result of the same experiment when there is one.</p>"
    )
    for metric, frame in frames.items():
        for (model, task, source, selection), part in frame.groupby(["model", "task", "source", "selection"]):
            title = f"{experiment}: {metric} vs K — {model} · {task} · source {source} · selection {selection}"
            page.figure(kcurve_figure(part, metric, title), "kcurve")
            cols = [
                Column("target"),
                Column("name"),
                Column("K", numeric=True),
                Column(metric, numeric=True),
                Column("n", numeric=True),
            ]
            rows = [
                [
                    r.target,
                    info(str(r.target)).name,
                    (r.k, str(int(r.k))),
                    mean_std(r.mean, r.std, r.n),
                    (r.n, str(int(r.n))),
                ]
                for r in part.itertuples()
            ]
            page.add(f"<details><summary>K-curve table ({esc(metric)})</summary>{sortable_table(cols, rows)}</details>")


def gaps(page: Page, sub: pd.DataFrame, experiment: str, metrics: list[str]) -> None:
    frames = {m: selection_gap_frame(sub, experiment, m) for m in metrics}
    if all(f.empty for f in frames.values()):
        return
    page.add(
        '<h3>Selection-rule gap</h3><p class="note">Test score of the checkpoint chosen on the target\'s dev '
        "set (an oracle no real zero-shot user has) and of the last checkpoint, minus the honest source-dev "
        "choice.</p>"
    )
    for metric, frame in frames.items():
        for (regime, k), part in frame.groupby(["regime", "k"], dropna=False):
            shots = "" if pd.isna(k) else f" · K={int(k)}"
            if len(part) <= 80:
                page.figure(
                    gap_figure(part, metric, f"{experiment}: selection-rule gap ({metric}) — {regime}{shots}"), "gap"
                )
            rules = [
                c for c in part.columns if c in ("source_dev", "target_dev", "last") or c.endswith(" - source_dev")
            ]
            cols = [Column("source"), Column("target"), Column("name"), Column("family")]
            cols += [Column(c, numeric=True) for c in rules]
            rows = [
                [
                    r["source"],
                    r["target"],
                    info(str(r["target"])).name,
                    info(str(r["target"])).family,
                    *[(r[c], "" if pd.isna(r[c]) else (f"{r[c]:+.3f}" if "-" in c else f"{r[c]:.3f}")) for c in rules],
                ]
                for _, r in part.iterrows()
            ]
            page.add(
                f"<details><summary>gap table ({esc(metric)}, {esc(regime)}{esc(shots)})</summary>"
                f"{sortable_table(cols, rows)}</details>"
            )
