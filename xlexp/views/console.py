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
from xlexp.results.languages import display_name
from xlexp.results.store import require_records

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
           run_id: str | None = None, selection: str | None = None, few_shot: bool = False) -> tuple[pd.DataFrame, str, str]:
    """Records of one experiment/metric/split under one selection rule (default: source_dev when
    recorded). Zero-shot views keep K = 0 cells only; ``few_shot`` keeps K > 0. Per (source, target,
    seed, K, shot set) the latest run wins, so a re-run replaces a cell instead of being averaged
    with it; seeds and shot sets are averaged."""
    experiment = experiment or latest_experiment(df)
    sub = df[df["experiment"] == experiment]
    if sub.empty:
        raise XlexpError(f"no records for experiment '{experiment}'. Known: {', '.join(sorted(df['experiment'].unique()))}")
    if run_id is not None:
        sub = sub[sub["run_id"] == run_id]
    sub = sub[sub["split"] == split]
    k = pd.to_numeric(sub["k"], errors="coerce")
    sub = sub[k > 0] if few_shot else sub[k.isna() | (k == 0)]
    if sub.empty:
        raise XlexpError(f"experiment '{experiment}' has no {'few-shot (K > 0) ' if few_shot else ''}{split} records here")
    # few-shot cells have their own rule (last, or target_dev when asked for); filter only if told
    if split == "test" and (selection or not few_shot):
        rules = sorted(sub["selection"].unique())
        selection = selection or ("source_dev" if "source_dev" in rules else rules[0])
        if selection not in rules:
            raise XlexpError(f"experiment '{experiment}' has no records under selection '{selection}'. Recorded: {', '.join(rules)}")
        sub = sub[sub["selection"] == selection]
    metrics = sorted(sub["metric"].unique())
    metric = metric or ("macro_f1" if "macro_f1" in metrics else metrics[0])
    if metric not in metrics:
        raise XlexpError(f"experiment '{experiment}' has no metric '{metric}'. Its metrics: {', '.join(metrics)}")
    sub = sub[sub["metric"] == metric].sort_values("timestamp")
    sub = sub.drop_duplicates(subset=["source", "target", "seed", "k", "shot_set", "step" if split == "dev" else "seed"], keep="last")
    return sub, experiment, metric


def pivot(df: pd.DataFrame, experiment: str | None = None, metric: str | None = None, split: str = "test",
          run_id: str | None = None, selection: str | None = None) -> Matrix:
    sub, experiment, metric = select(df, experiment, metric, split, run_id, selection)
    sources = list(dict.fromkeys(sub["source"]))
    targets = list(dict.fromkeys(sub["target"]))
    grouped = sub.groupby(["source", "target"])["value"]

    def table(series: pd.Series) -> pd.DataFrame:
        return series.unstack("target").reindex(index=sources, columns=targets)

    return Matrix(experiment, metric, table(grouped.mean()), table(grouped.std(ddof=1)), table(grouped.count()))


def selection_gap(df: pd.DataFrame, experiment: str | None = None, metric: str | None = None) -> pd.DataFrame:
    """Per (source, target): test score under each recorded rule and the differences to source_dev."""
    experiment = experiment or latest_experiment(df)
    rules = [r for r in ("source_dev", "target_dev", "last") if r in _zero_shot_rules(df[df["experiment"] == experiment])]
    cols = {}
    for rule in rules:
        m = pivot(df, experiment, metric, selection=rule)
        metric = m.metric
        cols[rule] = m.mean.stack()
    gap = pd.DataFrame(cols).dropna(how="all")  # cells no rule has (the off-diagonal of a full-regime matrix)
    gap.index.names = ["source", "target"]
    for rule in rules[1:]:
        gap[f"{rule} - source_dev"] = gap[rule] - gap["source_dev"]
    gap.attrs["metric"] = metric
    return gap


def render_gap(gap: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("source → target", style="bold")
    for col in gap.columns:
        table.add_column(col, justify="right")
    for (source, target), row in gap.iterrows():
        table.add_row(f"{source} → {target} ({display_name(str(target))})",
                      *("" if pd.isna(v) else f"{v:+.3f}" if " - " in col else f"{v:.3f}" for col, v in row.items()))
    table.add_section()
    table.add_row("mean", *(f"{gap[c].mean():+.3f}" if " - " in c else f"{gap[c].mean():.3f}" for c in gap.columns), style="italic")
    return table


def few_shot_summary(df: pd.DataFrame, experiment: str | None = None, metric: str | None = None) -> pd.DataFrame:
    """Mean, std and n over shot sets x seeds per (source, target, K), with the K = 0 cell added."""
    sub, experiment, metric = select(df, experiment, metric, few_shot=True)
    zero, _, _ = select(df, experiment, metric)
    both = pd.concat([zero.assign(k=0), sub])
    both["k"] = pd.to_numeric(both["k"]).astype(int)
    out = both.groupby(["source", "target", "k"])["value"].agg(["mean", "std", "count"]).reset_index()
    out.attrs.update(experiment=experiment, metric=metric)
    return out


def render_few_shot(summary: pd.DataFrame) -> Table:
    ks = sorted(summary["k"].unique())
    title = f"{summary.attrs['experiment']}: {summary.attrs['metric']} (test) by K, mean ± std (n)"
    table = Table(title=title, min_width=len(title) + 4)
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


def k_curve(summary: pd.DataFrame, path: Path) -> None:
    """Score vs K per target with std error bars (over shot sets x seeds)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (source, target), rows in summary.groupby(["source", "target"], sort=False):
        rows = rows.sort_values("k")
        ax.errorbar(rows["k"], rows["mean"], yerr=rows["std"].fillna(0.0), marker="o", capsize=3,
                    label=f"{source}→{target}")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("K (shots)")
    ax.set_ylabel(summary.attrs["metric"])
    ax.set_title(f"{summary.attrs['experiment']}: few-shot curves (mean ± std)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display here or on cluster nodes
    import matplotlib.pyplot as plt

    return plt


def in_language(m: Matrix) -> Matrix | None:
    """A matrix whose only cells are its diagonal (regime=full: every target trained on itself) as
    one row, ``in-language``, over the targets; None for any other matrix."""
    rows, cols = [str(r) for r in m.mean.index], [str(c) for c in m.mean.columns]
    if len(rows) < 2:
        return None
    eye = np.array([[r == c for c in cols] for r in rows])
    if not (m.mean.notna().to_numpy() == eye).all():
        return None
    diagonal = [r for r in rows if r in cols]

    def row(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame([[frame.at[c, c] for c in diagonal]], index=["in-language"], columns=diagonal)

    return Matrix(m.experiment, m.metric, row(m.mean), row(m.std), row(m.n))


def render(m: Matrix, title: str | None = None) -> Table:
    """Rich table. Rows of few sources with many targets are shown transposed (one line per target,
    with its language name), which fits a terminal and reads better; a diagonal-only matrix (the
    full regime) as one in-language column."""
    m = in_language(m) or m
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


def write_outputs(m: Matrix, results_dir: Path | str, selection: str | None = None) -> tuple[Path, Path]:
    """CSV (mean, and std when there are several seeds) and a heatmap PNG under results/matrices/."""
    out = Path(results_dir) / "matrices"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{m.experiment}.{m.metric}" + (f".{selection}" if selection and selection != "source_dev" else "")
    stem = stem.replace("/", "_")
    csv_path, png_path = out / f"{stem}.csv", out / f"{stem}.png"
    m.mean.to_csv(csv_path, index_label="source")
    if (m.n > 1).any().any():
        m.std.to_csv(out / f"{stem}.std.csv", index_label="source")
    heatmap(m, png_path)
    return csv_path, png_path


def heatmap(m: Matrix, path: Path) -> None:
    plt = _pyplot()
    data = (in_language(m) or m).mean
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
         split: str = "test", selection: str | None = None, regime: str | None = None, gap: bool = False) -> list[Matrix]:
    """``xlexp matrix``: print the matrix per metric and write CSV + heatmap next to the records;
    ``regime='few_shot'`` shows mean ± std per (target, K) and writes the K-curve PNG; ``gap``
    adds the table of selection-rule differences."""
    df = require_records(results_dir)
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
        if regime == "few_shot" or _has_few_shot(df, experiment):
            _show_few_shot(df, experiment, metric, results_dir)
        if gap and split == "test":
            console.print(render_gap(selection_gap(df, experiment, metric), f"{experiment}: {metric} by selection rule"))
    return shown


def _zero_shot_rules(df: pd.DataFrame) -> set[str]:
    """Selection rules recorded for test cells of trained models (K = 0 or no K)."""
    k = pd.to_numeric(df["k"], errors="coerce")
    return set(df[(df["split"] == "test") & (k.isna() | (k == 0))]["selection"])


def _has_few_shot(df: pd.DataFrame, experiment: str) -> bool:
    return bool((pd.to_numeric(df[df["experiment"] == experiment]["k"], errors="coerce") > 0).any())


def _show_few_shot(df: pd.DataFrame, experiment: str, metric: str | None, results_dir: Path | str) -> None:
    summary = few_shot_summary(df, experiment, metric)
    console.print(render_few_shot(summary))
    out = Path(results_dir) / "matrices"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{experiment}.{summary.attrs['metric']}.few_shot".replace("/", "_")
    summary.to_csv(out / f"{stem}.csv", index=False)
    k_curve(summary, out / f"{stem}.png")
    console.print(f"K-curves -> {out / (stem + '.png')}, table -> {out / (stem + '.csv')}")


def show_run(results_dir: Path | str, run_id: str, metrics) -> None:
    """End-of-run summary: this run's cells, and the experiment's matrix files refreshed."""
    df = require_records(results_dir)
    experiment = str(df[df["run_id"] == run_id]["experiment"].iloc[0])
    multi_rule = len(_zero_shot_rules(df[df["run_id"] == run_id])) > 1
    for metric in metrics:
        console.print(render(pivot(df, experiment, metric, run_id=run_id), f"{experiment} (run {run_id}): {metric} (test)"))
        csv_path, png_path = write_outputs(pivot(df, experiment, metric), results_dir)
        console.print(f"matrix -> {csv_path}, heatmap -> {png_path}")
        if _has_few_shot(df[df["run_id"] == run_id], experiment):
            _show_few_shot(df, experiment, metric, results_dir)
    if multi_rule:
        primary = metrics[-1] if "macro_f1" not in metrics else "macro_f1"
        gap = selection_gap(df[df["run_id"] == run_id], experiment, primary)
        if (gap.filter(like=" - source_dev").fillna(0.0) == 0.0).all().all():  # e.g. classical models: one fit
            console.print(f"{experiment}: every selection rule gives the same test {primary} (one checkpoint per cell)")
        else:
            console.print(render_gap(gap, f"{experiment}: test {primary} by checkpoint selection rule"))
