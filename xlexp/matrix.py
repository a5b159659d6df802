"""Source x target transfer matrices from the results store: pivot, terminal table, CSV, heatmap."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from xlexp.errors import XlexpError
from xlexp.languages import display_name
from xlexp.records import require_records

# Off a terminal (CI logs, files) rich would wrap tables at 80 columns; matrices need more.
console = Console(width=None if sys.stdout.isatty() else 160)


@dataclass
class Matrix:
    experiment: str
    metric: str
    mean: pd.DataFrame   # sources x targets
    std: pd.DataFrame
    n: pd.DataFrame      # seeds (runs) per cell

    @property
    def shape(self) -> tuple[int, int]:
        return self.mean.shape


def latest_experiment(df: pd.DataFrame) -> str:
    return str(df.sort_values("timestamp").iloc[-1]["experiment"])


def select(df: pd.DataFrame, experiment: str | None = None, metric: str | None = None, split: str = "test",
           run_id: str | None = None) -> tuple[pd.DataFrame, str, str]:
    """Records of one experiment/metric/split. Per (source, target, seed) the latest run wins, so a
    re-run replaces a cell instead of being averaged with it; different seeds are averaged."""
    experiment = experiment or latest_experiment(df)
    sub = df[df["experiment"] == experiment]
    if sub.empty:
        raise XlexpError(f"no records for experiment '{experiment}'. Known: {', '.join(sorted(df['experiment'].unique()))}")
    if run_id is not None:
        sub = sub[sub["run_id"] == run_id]
    sub = sub[sub["split"] == split]
    metrics = sorted(sub["metric"].unique())
    metric = metric or ("macro_f1" if "macro_f1" in metrics else metrics[0])
    if metric not in metrics:
        raise XlexpError(f"experiment '{experiment}' has no metric '{metric}'. Its metrics: {', '.join(metrics)}")
    sub = sub[sub["metric"] == metric].sort_values("timestamp")
    sub = sub.drop_duplicates(subset=["source", "target", "seed"], keep="last")
    return sub, experiment, metric


def pivot(df: pd.DataFrame, experiment: str | None = None, metric: str | None = None, split: str = "test",
          run_id: str | None = None) -> Matrix:
    sub, experiment, metric = select(df, experiment, metric, split, run_id)
    sources = list(dict.fromkeys(sub["source"]))
    targets = list(dict.fromkeys(sub["target"]))
    grouped = sub.groupby(["source", "target"])["value"]

    def table(series: pd.Series) -> pd.DataFrame:
        return series.unstack("target").reindex(index=sources, columns=targets)

    return Matrix(experiment, metric, table(grouped.mean()), table(grouped.std(ddof=1)), table(grouped.count()))


def render(m: Matrix, title: str | None = None) -> Table:
    """Rich table. Rows of few sources with many targets are shown transposed (one line per target,
    with its language name), which fits a terminal and reads better."""
    n_sources, n_targets = m.mean.shape
    transpose = n_targets > n_sources and (n_sources <= 3 or n_targets > 14)
    mean, std, n = (m.mean.T, m.std.T, m.n.T) if transpose else (m.mean, m.std, m.n)
    corner = "target \\ source" if transpose else "source \\ target"
    title = title or f"{m.experiment}: {m.metric} (test)"
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column(corner, style="bold")
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


def write_outputs(m: Matrix, results_dir: Path | str) -> tuple[Path, Path]:
    """CSV (mean, and std when there are several seeds) and a heatmap PNG under results/matrices/."""
    out = Path(results_dir) / "matrices"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{m.experiment}.{m.metric}".replace("/", "_")
    csv_path, png_path = out / f"{stem}.csv", out / f"{stem}.png"
    m.mean.to_csv(csv_path, index_label="source")
    if (m.n > 1).any().any():
        m.std.to_csv(out / f"{stem}.std.csv", index_label="source")
    heatmap(m, png_path)
    return csv_path, png_path


def heatmap(m: Matrix, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display here or on cluster nodes
    import matplotlib.pyplot as plt

    data = m.mean
    transpose = data.shape[1] > 30 and data.shape[1] > data.shape[0]
    if transpose:
        data = data.T
    rows, cols = data.shape
    fig, ax = plt.subplots(figsize=(min(2 + 0.6 * cols, 40), min(1.5 + 0.35 * rows, 80)))
    im = ax.imshow(data.to_numpy(dtype=float), cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(cols), [str(c) for c in data.columns], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(rows), [str(r) for r in data.index], fontsize=8)
    ax.set_xlabel("source" if transpose else "target")
    ax.set_ylabel("target" if transpose else "source")
    if rows * cols <= 400:
        for r in range(rows):
            for c in range(cols):
                v = data.iat[r, c]
                if not pd.isna(v):
                    ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03, label=m.metric)
    ax.set_title(f"{m.experiment}: {m.metric} (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def show(results_dir: Path | str, experiment: str | None = None, metrics: list[str] | None = None,
         split: str = "test") -> list[Matrix]:
    """``xlexp matrix``: print the matrix per metric and write CSV + heatmap next to the records."""
    df = require_records(results_dir)
    experiment = experiment or latest_experiment(df)
    if not metrics:
        metrics = sorted(df[(df["experiment"] == experiment) & (df["split"] == split)]["metric"].unique()) or [None]
    shown = []
    for metric in metrics:
        m = pivot(df, experiment, metric, split)
        console.print(render(m))
        csv_path, png_path = write_outputs(m, results_dir)
        console.print(f"{m.shape[0]} x {m.shape[1]} matrix -> {csv_path} and heatmap {png_path}")
        shown.append(m)
    return shown


def show_run(results_dir: Path | str, run_id: str, metrics) -> None:
    """End-of-run summary: this run's cells, and the experiment's matrix files refreshed."""
    df = require_records(results_dir)
    experiment = str(df[df["run_id"] == run_id]["experiment"].iloc[0])
    for metric in metrics:
        console.print(render(pivot(df, experiment, metric, run_id=run_id), f"{experiment} (run {run_id}): {metric} (test)"))
        csv_path, png_path = write_outputs(pivot(df, experiment, metric), results_dir)
        console.print(f"matrix -> {csv_path}, heatmap -> {png_path}")
