"""``xlexp report``: a self-contained HTML page of the results store, readable offline, no account.

An overview, then the cross-experiment explorer (``xlexp.views.explorer``: selectors for
experiment(s), metric, rule, K and language grouping; B − A with significance marks; dev curves;
log links). Per experiment: a plotly heatmap per (model, task, regime, selection rule[, K]) and
metric, with values and language names on hover (one per metric when the rules agree); a sortable
table of the same cells with script and family; few-shot K-curves with error bars; the
selection-rule gap; links to the runs' log folders. A sweep study is one section (its trials in a
table, its best trial's matrices), not one per trial. plotly.js is inlined once (one file to mail
around) or written next to the page (``--plotlyjs alongside``). The records and their summaries
come from ``xlexp.results.query``, the page's building blocks (styles, sortable tables) from
``xlexp.views.page``, and each experiment's section (its heatmaps from ``xlexp.views.figures``, its cells
table, and the per-class, K-curve and selection-gap sections of ``xlexp.views.report_sections``) from
``xlexp.views.report_experiment``; this module assembles the page around them and writes it.

Layout: the page fits windows 1280-1920 px wide (figures shrink with the window); one colour range per
metric across all heatmaps (``scale``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from plotly.offline import get_plotlyjs

from xlexp.errors import XlexpError
from xlexp.results.languages import info
from xlexp.results.query import (
    default_metric,
    experiments_by_recency,
    is_in_language,
    load,
    metrics_of,
    recorded_primary,
    unknown_experiment,
)
from xlexp.results.slices import headline, slice_keys, slice_matrix
from xlexp.views.explorer import explorer_section
from xlexp.views.explorer_js import EXPLORER_JS
from xlexp.views.page import CSS, SORT_JS, Column, Page, esc, slug, sortable_table
from xlexp.views.png import fitted_range
from xlexp.views.report_experiment import experiment_section


def metric_ranges(df: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """One colour range per metric for every heatmap of the page (issue #33: a range fitted per heatmap
    drew the same 0.46 purple in one and blue in another): min..max of the cell means (over seeds and
    shot sets) of every experiment, rule and K, as :func:`fitted_range` widens them."""
    test = df[df["split"] == "test"]
    if test.empty:
        return {}
    keys = [
        c
        for c in ("experiment", "model", "task", "regime", "selection", "k", "source", "target", "metric")
        if c in test
    ]
    means = test.assign(k=test["k"].fillna(-1) if "k" in test else -1).groupby(keys, dropna=False)["value"].mean()
    return {str(m): fitted_range(v.to_numpy()) for m, v in means.groupby(level="metric")}


def _overview(df: pd.DataFrame, experiments: list[str], labels: dict[str, str] | None = None) -> str:
    """One row per experiment's headline slice: what it is and its mean test score per metric."""
    metrics = sorted(df[(df["split"] == "test") & df["experiment"].isin(experiments)]["metric"].unique())
    cols = [
        Column("experiment"),
        Column("model"),
        Column("task"),
        Column("regime"),
        Column("selection"),
        Column("sources", numeric=True),
        Column("targets", numeric=True),
        Column("seeds", numeric=True),
    ]
    cols += [Column(f"mean {m}", numeric=True) for m in metrics] + [Column("last record")]
    rows = []
    for experiment in experiments:
        sub = df[df["experiment"] == experiment]
        keys = slice_keys(sub)
        if not keys:
            continue
        key = headline(keys)
        means = []
        for metric in metrics:
            try:
                means.append(slice_matrix(sub, key, metric).transfer_mean())
            except XlexpError:
                means.append(np.nan)
        test = sub[sub["split"] == "test"]
        rows.append(
            [
                (labels or {}).get(experiment, experiment),
                key.model,
                key.task,
                key.regime,
                key.selection,
                *[(v, str(v)) for v in (test["source"].nunique(), test["target"].nunique(), sub["seed"].nunique())],
                *means,
                sub["timestamp"].max(),
            ]
        )
    return (
        '<section id="overview"><h2>Overview</h2><p class="note">Each experiment\'s headline matrix (no shots, '
        "source-dev selection when recorded): mean over its cross-lingual cells (in-language cells left out); "
        f"a sweep study is one row (its best trial by dev score).</p>{sortable_table(cols, rows)}</section>"
    )


def _languages_section(df: pd.DataFrame) -> str:
    codes = sorted(set(df["target"].astype(str)) | set(df["source"].astype(str).str.split("+").explode()))
    cols = [Column("code"), Column("name"), Column("BCP-47 tag"), Column("script"), Column("family")]
    rows = [[c, info(c).name, info(c).tag, info(c).script, info(c).family] for c in codes]
    return (
        '<section id="languages"><h2>Languages</h2><p class="note">Script: from the task code or CLDR '
        "likely-subtags data (langcodes). Family: top-level family (Glottolog names) where xlexp knows it; blank "
        f"otherwise.</p>{sortable_table(cols, rows)}</section>"
    )


def _predicted_section(page: Page, results_dir: str, experiment: str, metrics: list[str] | None) -> None:
    """The cells ``xlexp predict`` predicted for this experiment (``results/predicted/``): greyed,
    with their intervals on hover, beside the measured cells in colour; nothing when there are none."""
    from xlexp.results.predicted import load_predicted
    from xlexp.results.query import pivot
    from xlexp.views.figures import predicted_heatmap_figure

    pred = load_predicted(results_dir, experiment)
    if pred.empty:
        return
    df = load(results_dir)
    page.add(
        f'<section class="predicted" id="pred-{slug(experiment)}"><h3>{esc(experiment)}: predicted cells</h3>'
        '<p class="note">Grey cells marked * are <b>predicted</b> by <code>xlexp predict</code> (matrix completion '
        "from the measured cells and language features; hover for the 90% interval), never measured; coloured "
        "cells are measured records.</p>"
    )
    for metric in sorted(pred["metric"].unique()):
        if metrics and metric not in metrics:
            continue
        cells = pred[pred["metric"] == metric]
        try:
            measured = pivot(df, experiment, metric, selection=str(cells["selection"].iloc[0])).mean
        except XlexpError:
            measured = pd.DataFrame()

        def wide(col: str, cells: pd.DataFrame = cells) -> pd.DataFrame:
            return cells.pivot(index="source", columns="target", values=col)

        page.figure(
            predicted_heatmap_figure(
                measured, wide("value"), wide("low"), wide("high"), f"{experiment}: {metric} (test)", metric
            ),
            "heatmap",
        )
        note = str(cells["missing_features"].iloc[0] or "")
        if note:
            page.add(f'<p class="note">{esc(note)}</p>')
    page.add("</section>")


def build_html(
    df: pd.DataFrame,
    experiments: list[str],
    metrics: list[str] | None,
    results_dir: str,
    plotly_js: str,
    scale: str = "metric",
) -> tuple[str, int]:
    """The page's HTML and its number of figures. ``plotly_js``: an inline script or a src tag; ``scale``:
    ``metric`` (one colour range per metric across every heatmap) or ``heatmap`` (fitted to each)."""
    page = Page()
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    plain, studies = _by_study(df, experiments)
    best = {study: _best_trial(df, trials) for study, trials in studies.items()}
    nav = " ".join(
        [f'<a href="#exp-{slug(e)}">{esc(e)}</a>' for e in plain]
        + [f'<a href="#study-{slug(s)}">study {esc(s)}</a>' for s in studies]
    )
    page.add(
        f'<header><h1>xlexp report</h1><p class="meta">results store {esc(Path(results_dir).resolve())} · '
        f'{len(df)} records · generated {generated}</p><nav><a href="#explore">explore</a> {nav} '
        f'<a href="#languages">languages</a></nav></header>'
    )
    labels = {b: f"study {s}: best of {len(studies[s])} trial(s) ({b})" for s, b in best.items()}
    page.add(_overview(df, [*plain, *best.values()], labels))
    page.add(explorer_section(df, experiments))
    page.n_figures += 2  # the explorer's heatmap and dev curves, drawn by its script
    ranges = metric_ranges(df[df["experiment"].isin(experiments)]) if scale == "metric" else None
    for experiment in plain:
        experiment_section(page, df, experiment, metrics, ranges, results_dir)
        _predicted_section(page, results_dir, experiment, metrics)
    for study, trials in studies.items():
        _study_section(page, df, study, trials, best[study], metrics, ranges, results_dir)
    page.add(_languages_section(df[df["experiment"].isin(experiments)]))
    body = "\n".join(page.parts)
    markup = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>xlexp report</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><style>{CSS}</style>{plotly_js}</head>'
        f"<body>\n{body}\n<script>{SORT_JS}</script><script>{EXPLORER_JS}</script></body></html>\n"
    )
    return markup, page.n_figures


def _by_study(df: pd.DataFrame, experiments: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Experiments of no sweep study, and the trials (experiments) of each study (``study`` column)."""
    if "study" not in df:
        return list(experiments), {}
    study_of = df.dropna(subset=["study"]).groupby("experiment")["study"].first().astype(str).to_dict()
    plain = [e for e in experiments if e not in study_of]
    studies: dict[str, list[str]] = {}
    for e in experiments:
        if e in study_of:
            studies.setdefault(study_of[e], []).append(e)
    return plain, studies


def _dev_score(sub: pd.DataFrame) -> float:
    """A trial's best dev score: the default metric on its source languages' own dev sets, mean over
    them, best evaluation step (what a sweep optimises by default); NaN without dev records."""
    dev = sub[(sub["split"] == "dev") & sub["step"].notna()]
    if dev.empty:
        return float("nan")
    dev = dev[dev["metric"] == default_metric(dev["metric"], recorded_primary(dev))]
    own = dev[[is_in_language(s, t) for s, t in zip(dev["source"], dev["target"])]]
    if own.empty:
        return float("nan")
    return float(own.groupby("step")["value"].mean().max())


def _best_trial(df: pd.DataFrame, trials: list[str]) -> str:
    """The trial with the best dev score (a trial with none counts as worst), ties to the earlier one."""
    scores = [(_dev_score(df[df["experiment"] == t]), t) for t in trials]
    ranked = sorted(scores, key=lambda st: (np.isnan(st[0]), -st[0] if not np.isnan(st[0]) else 0))
    return ranked[0][1]


def _study_section(
    page: Page,
    df: pd.DataFrame,
    study: str,
    trials: list[str],
    best: str,
    metrics: list[str] | None,
    ranges: dict | None = None,
    results_dir: str | None = None,
) -> None:
    """One section per sweep study: its trials in one sortable table, then the best trial's matrices
    (a 50-trial study is one section, not 50)."""
    sub = df[df["experiment"].isin(trials)]
    metric_names = [m for m in metrics_of(sub) if not metrics or m in metrics]
    cols = [Column("trial", numeric=True), Column("experiment"), Column("best dev score", numeric=True)]
    cols += [Column(f"mean {m} (test)", numeric=True) for m in metric_names] + [Column("log folder")]
    rows = []
    for t in trials:
        part = df[df["experiment"] == t]
        trial = part["trial"].dropna()
        keys = slice_keys(part)
        means = []
        for m in metric_names:
            try:
                means.append(slice_matrix(part, headline(keys), m).transfer_mean() if keys else np.nan)
            except XlexpError:
                means.append(np.nan)
        logs = part["log_dir"].dropna() if "log_dir" in part else pd.Series(dtype=str)
        rows.append(
            [
                (int(trial.iloc[0]), str(int(trial.iloc[0]))) if len(trial) else (np.nan, ""),
                t,
                _dev_score(part),
                *means,
                logs.iloc[0] if len(logs) else "",
            ]
        )
    page.add(
        f'<section class="study" id="study-{slug(study)}"><h2>study {esc(study)}</h2>'
        f'<p class="meta">{len(trials)} trial(s); best by dev score: {esc(best)}. Every trial is in the '
        f"explorer (under this study).</p><details open><summary>trials (click a header to sort)</summary>"
        f"{sortable_table(cols, rows)}</details></section>"
    )
    experiment_section(page, df, best, metrics, ranges, results_dir)


@dataclass
class ReportResult:
    path: Path
    experiments: list[str]
    figures: int


def write_report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    experiments: list[str] | None = None,
    metrics: list[str] | None = None,
    plotlyjs: str = "inline",
    scale: str = "metric",
) -> ReportResult:
    if scale not in ("metric", "heatmap"):
        raise XlexpError(f"--colour-scale must be metric or heatmap, got {scale!r}")
    df = load(results_dir)
    missing = [e for e in experiments or [] if e not in set(df["experiment"])]
    if missing:
        raise unknown_experiment(df, missing)
    experiments = experiments or experiments_by_recency(df)  # newest first: the one just run is at the top
    out = Path(out_dir) if out_dir else Path(results_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    if plotlyjs == "inline":
        script = f"<script>{get_plotlyjs()}</script>"
    elif plotlyjs == "alongside":
        (out / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
        script = '<script src="plotly.min.js"></script>'
    else:
        raise XlexpError(f"--plotlyjs must be inline or alongside, got {plotlyjs!r}")
    markup, n = build_html(df, experiments, metrics, str(results_dir), script, scale)
    path = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(markup, encoding="utf-8")
    tmp.replace(path)
    return ReportResult(path, experiments, n)
