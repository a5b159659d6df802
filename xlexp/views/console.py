"""The terminal view: source x target matrices, selection-rule gaps and few-shot tables with rich.

``show`` is ``xlexp matrix`` (an experiment's whole matrix from the store, plus its CSV and PNG
files); ``show_run`` is the end of ``xlexp run`` (only that run's matrix, from its records in
memory: it never reads the store). The records come from ``xlexp.results.query``; the PNGs are
drawn by ``xlexp.views.figures``.

Imports: rich, ``xlexp.results``, ``xlexp.views.figures`` and ``xlexp.errors`` only.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from xlexp.errors import XlexpError
from xlexp.results.languages import display_name
from xlexp.results.query import (Matrix, default_metric, few_shot_summary, k_value, latest_experiment, load, pivot,
                                 selection_gap)

# Off a terminal (CI logs, files) rich would wrap tables at 80 columns; matrices need more.
console = Console(width=None if sys.stdout.isatty() else 160)


def _has_few_shot(records: pd.DataFrame) -> bool:
    return bool(records["k"].map(k_value).notna().any())


def _titled(title: str) -> Table:
    return Table(title=title, min_width=len(title) + 4)


def render(m: Matrix, title: str | None = None) -> Table:
    """Rich table. Rows of few sources with many targets are shown transposed (one line per target,
    with its language name), which fits a terminal and reads better; a diagonal-only matrix (the
    full regime) as one in-language column."""
    m = m.in_language() or m
    n_sources, n_targets = m.mean.shape
    transpose = n_targets > n_sources and (n_sources <= 3 or n_targets > 14)
    mean, std, n = (m.mean.T, m.std.T, m.n.T) if transpose else (m.mean, m.std, m.n)
    table = _titled(title or f"{m.experiment}: {m.metric} (test)")
    table.add_column("target \\ source" if transpose else "source \\ target", style="bold")
    for col in mean.columns:
        table.add_column(str(col), justify="right")
    if not transpose:
        table.add_column("mean", justify="right", style="italic")
    for row in mean.index:
        cells = []
        for col in mean.columns:
            v, s, k = mean.at[row, col], std.at[row, col], n.at[row, col]
            cells.append("" if pd.isna(v) else (f"{v:.3f}" if not k or k < 2 or pd.isna(s) else f"{v:.3f}±{s:.3f}"))
        if not transpose:
            cells.append(f"{np.nanmean(mean.loc[row].to_numpy(dtype=float)):.3f}")
        table.add_row(f"{row} ({display_name(str(row))})" if transpose else str(row), *cells)
    if transpose:
        table.add_section()
        table.add_row("mean", *(f"{np.nanmean(mean[col].to_numpy(dtype=float)):.3f}" for col in mean.columns), style="italic")
    return table


def render_gap(gap: pd.DataFrame, title: str) -> Table:
    """``query.selection_gap``: one row per (source, target), the score per rule and the differences."""
    table = _titled(title)
    table.add_column("source → target", style="bold")
    for col in gap.columns:
        table.add_column(col, justify="right")
    for (source, target), row in gap.iterrows():
        table.add_row(f"{source} → {target} ({display_name(str(target))})",
                      *("" if pd.isna(v) else f"{v:+.3f}" if " - " in col else f"{v:.3f}" for col, v in row.items()))
    table.add_section()
    table.add_row("mean", *(f"{gap[c].mean():+.3f}" if " - " in c else f"{gap[c].mean():.3f}" for c in gap.columns), style="italic")
    return table


def render_few_shot(summary: pd.DataFrame) -> Table:
    """``query.few_shot_summary``: one row per (source, target), mean ± std (n) per K."""
    ks = sorted(summary["k"].unique())
    table = _titled(f"{summary.attrs['experiment']}: {summary.attrs['metric']} (test) by K, mean ± std (n)")
    table.add_column("source → target", style="bold")
    for k in ks:
        table.add_column(f"K={k}", justify="right")
    for (source, target), rows in summary.groupby(["source", "target"], sort=False):
        by_k = rows.set_index("k")
        cells = []
        for k in ks:
            if k not in by_k.index:
                cells.append("")
                continue
            r = by_k.loc[k]
            cells.append(f"{r['mean']:.3f}" + ("" if pd.isna(r["std"]) else f"±{r['std']:.3f}") + f" ({int(r['count'])})")
        table.add_row(f"{source} → {target} ({display_name(str(target))})", *cells)
    return table


def _matrices_dir(results_dir: Path | str) -> Path:
    out = Path(results_dir) / "matrices"
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_outputs(m: Matrix, results_dir: Path | str, selection: str | None = None) -> tuple[Path, Path]:
    """CSV (mean, and std when there are several seeds) and a heatmap PNG under results/matrices/."""
    from xlexp.views.figures import matrix_png

    out = _matrices_dir(results_dir)
    stem = f"{m.experiment}.{m.metric}" + (f".{selection}" if selection and selection != "source_dev" else "")
    stem = stem.replace("/", "_")
    csv_path, png_path = out / f"{stem}.csv", out / f"{stem}.png"
    m.mean.to_csv(csv_path, index_label="source")
    if (m.n > 1).any().any():
        m.std.to_csv(out / f"{stem}.std.csv", index_label="source")
    matrix_png(m, png_path)
    return csv_path, png_path


def _write_few_shot(summary: pd.DataFrame, results_dir: Path | str) -> None:
    from xlexp.views.figures import kcurve_png

    out = _matrices_dir(results_dir)
    stem = f"{summary.attrs['experiment']}.{summary.attrs['metric']}.few_shot".replace("/", "_")
    summary.to_csv(out / f"{stem}.csv", index=False)
    kcurve_png(summary, out / f"{stem}.png")
    console.print(f"K-curves -> {out / (stem + '.png')}, table -> {out / (stem + '.csv')}")


def _print_gap(gap: pd.DataFrame, title: str, quiet: bool = False) -> None:
    """The gap table; one line when every rule chose the same checkpoint (e.g. classical models: one
    fit) or, unless ``quiet``, when there is no second rule to compare with source_dev."""
    if gap.empty:
        if not quiet:
            console.print(f"{title}: no cell has source_dev and another rule", highlight=False)
    elif (gap.filter(like=" - source_dev").fillna(0.0) == 0.0).all().all():
        console.print(f"{title}: every rule gives the same score (one checkpoint per cell)", highlight=False)
    else:
        console.print(render_gap(gap, title))


def show(results_dir: Path | str, experiment: str | None = None, metrics: list[str] | None = None,
         split: str = "test", selection: str | None = None, regime: str | None = None, gap: bool = False,
         predicted: bool = False) -> list[Matrix]:
    """``xlexp matrix``: print the matrix per metric and write CSV + heatmap next to the records;
    ``regime='few_shot'`` shows mean ± std per (target, K) and writes the K-curve PNG; ``gap``
    adds the table of selection-rule differences."""
    df = load(results_dir)
    if regime:
        df = df[df["regime"] == regime]
        if df.empty:
            raise XlexpError(f"no records with regime '{regime}' under {results_dir}")
    experiment = experiment or latest_experiment(df)
    if not metrics:
        metrics = sorted(df[(df["experiment"] == experiment) & (df["split"] == split)]["metric"].unique()) or [None]
    shown = []
    for metric in metrics:
        m = pivot(df, experiment, metric, split, selection=selection)
        console.print(render(m, f"{m.experiment}: {m.metric} ({split}, selection {selection or 'source_dev'})"))
        csv_path, png_path = write_outputs(m, results_dir, selection)
        console.print(f"{m.shape[0]} x {m.shape[1]} matrix -> {csv_path} and heatmap {png_path}")
        shown.append(m)
        if predicted:
            show_with_predicted(results_dir, m)
        if regime == "few_shot" or _has_few_shot(df[df["experiment"] == experiment]):
            summary = few_shot_summary(df, experiment, metric)
            console.print(render_few_shot(summary))
            _write_few_shot(summary, results_dir)
        if gap and split == "test":
            _print_gap(selection_gap(df, experiment, metric), f"{experiment}: test {m.metric} by selection rule")
    return shown


def show_run(records: pd.DataFrame, metrics: list[str], results_dir: Path | str) -> None:
    """End of ``xlexp run``: this run's matrix per metric (and its few-shot table and its gap between
    selection rules) from the run's own records; the store is not read, no file is written."""
    if records.empty:
        return
    experiment, run_id = str(records["experiment"].iloc[0]), str(records["run_id"].iloc[0])
    k = pd.to_numeric(records["k"], errors="coerce") if "k" in records else pd.Series(dtype=float)
    if len(k) and not (k.isna() | (k == 0)).any():  # only cells with shots (regime=icl regime.k=[4]): mean per (target, K)
        test = records[records["split"] == "test"]
        for metric in metrics:
            cells = test[test["metric"] == metric].groupby(["source", "target", "k"])["value"].agg(["mean", "std", "count"])
            console.print(f"{experiment} (run {run_id}): {metric} (test)\n{cells.round(4).to_string()}",
                          highlight=False, markup=False)
        return
    for metric in metrics:
        console.print(render(pivot(records, experiment, metric), f"{experiment} (run {run_id}): {metric} (test)"))
        if _has_few_shot(records):
            console.print(render_few_shot(few_shot_summary(records, experiment, metric)))
    primary = default_metric(metrics)
    _print_gap(selection_gap(records, experiment, primary), f"{experiment}: test {primary} by checkpoint selection rule",
               quiet=True)
    command = f"xlexp matrix --experiment {shlex.quote(experiment)}"
    if Path(results_dir).resolve() != Path(os.environ.get("XLEXP_RESULTS_DIR", "results")).resolve():
        command += f" --results-dir {shlex.quote(str(results_dir))}"
    console.print(f"`{command}` prints the whole experiment's matrix (every run) and writes its CSV and heatmap",
                  highlight=False, markup=False, soft_wrap=True)


# ---- predicted cells (``xlexp predict``; ``xlexp matrix --predicted``) --------------------------------

def render_predicted(cells: pd.DataFrame, title: str) -> Table:
    """Long cells (source, target, value, predicted[, low, high]) as a matrix: measured cells in full,
    predicted ones dim with a ``*`` (transposed like ``render`` when targets outnumber sources)."""
    sources, targets = list(dict.fromkeys(cells["source"])), list(dict.fromkeys(cells["target"]))
    value = cells.pivot(index="source", columns="target", values="value").reindex(index=sources, columns=targets)
    flag = cells.pivot(index="source", columns="target", values="predicted").reindex(index=sources, columns=targets)
    transpose = len(targets) > len(sources) and (len(sources) <= 3 or len(targets) > 14)
    if transpose:
        value, flag = value.T, flag.T
    table = _titled(title)
    table.add_column("target \\ source" if transpose else "source \\ target", style="bold")
    for col in value.columns:
        table.add_column(str(col), justify="right")
    for row in value.index:
        out = []
        for col in value.columns:
            v, p = value.at[row, col], flag.at[row, col]
            out.append("" if pd.isna(v) else (f"[dim italic]{v:.3f}*[/]" if bool(p) else f"{v:.3f}"))
        table.add_row(f"{row} ({display_name(str(row))})" if transpose else str(row), *out)
    return table


def show_predicted(cells: pd.DataFrame, experiment: str, metric: str) -> None:
    console.print(render_predicted(cells, f"{experiment}: {metric} (test), measured and predicted (* dim: predicted)"))


def show_with_predicted(results_dir: Path | str, m: Matrix) -> Path | None:
    """``xlexp matrix --predicted``: the measured matrix plus the predicted cells of ``xlexp predict``
    (never mixed: they come from ``results/predicted/``), printed and drawn as ``<stem>.predicted.png``."""
    from xlexp.results.query import predicted_cells
    from xlexp.views.figures import predicted_png

    pred = predicted_cells(results_dir, m.experiment, m.metric)
    if pred.empty:
        console.print(f"no predicted cells for {m.experiment} ({m.metric}): run `xlexp predict --experiment {m.experiment}`",
                      highlight=False)
        return None
    measured = m.mean.rename_axis(index="source", columns="target").reset_index().melt(
        id_vars="source", var_name="target", value_name="value").dropna(subset=["value"]).assign(predicted=False)
    predicted = pred[["source", "target", "value"]].assign(predicted=True)
    cells = pd.concat([measured, predicted[~predicted.set_index(["source", "target"]).index.isin(
        measured.set_index(["source", "target"]).index)]], ignore_index=True)
    show_predicted(cells, m.experiment, m.metric)
    wide = pred.pivot(index="source", columns="target", values="value")
    path = _matrices_dir(results_dir) / f"{m.experiment}.{m.metric}.predicted.png".replace("/", "_")
    predicted_png(m.mean, wide, path, title=f"{m.experiment}: {m.metric} — hatched/grey cells are predicted",
                  label=m.metric)
    console.print(f"{len(pred)} predicted cell(s) from {pred['method'].iloc[0]}; heatmap -> {path}", highlight=False)
    return path
