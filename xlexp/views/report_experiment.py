"""One experiment's section of the report: what it ran (models, tasks, regimes, rules, sources, seeds,
records, git commit, links to its log folders), a Plotly heatmap per slice and metric (slices whose
selection rules picked the same checkpoints drawn once, and said so) with a sortable table of the
same cells, then the per-class, K-curve and selection-gap sections of ``xlexp.views.report_sections``.

Why a module of its own: this is the unit the page repeats, once per experiment and once per sweep
study's best trial, and it reads only that experiment's records. ``xlexp.views.html`` assembles the
page around it (overview, explorer, studies, predicted cells, languages) and writes the file; it
imports :func:`experiment_section` from here, never the reverse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xlexp.errors import XlexpError
from xlexp.results.languages import info
from xlexp.results.query import Matrix, metrics_of
from xlexp.results.slices import slice_keys, slice_matrix
from xlexp.views.figures import heatmap_figure, ordered
from xlexp.views.page import Column, Page, esc, mean_std, slug, sortable_table
from xlexp.views.report_sections import gaps, kcurves, per_class_section


def _cells_table(matrices: dict[str, Matrix]) -> str:
    """One row per (source, target) of a slice; one column per metric (mean ± std when n > 1)."""
    first = next(iter(matrices.values()))
    cols = [Column("source"), Column("target"), Column("target name"), Column("script"), Column("family")]
    cols += [Column(metric, numeric=True) for metric in matrices] + [Column("n", numeric=True)]
    rows = []
    for source in first.mean.index:
        for target in first.mean.columns:
            i = info(str(target))
            values = [
                mean_std(m.mean.at[source, target], m.std.at[source, target], m.n.at[source, target])
                if source in m.mean.index and target in m.mean.columns
                else (np.nan, "")
                for m in matrices.values()
            ]
            n = first.n.at[source, target]
            rows.append([source, target, i.name, i.script, i.family, *values, (n, "" if pd.isna(n) else str(int(n)))])
    return sortable_table(cols, rows)


def _log_links(sub: pd.DataFrame, limit: int = 5) -> str:
    """Links to the runs' Hydra output folders (their log and saved config), from the records."""
    dirs = sorted(str(d) for d in sub["log_dir"].dropna().unique()) if "log_dir" in sub else []
    if not dirs:
        return ""
    links = " · ".join(f'<a class="logdir" href="{esc(Path(d).as_uri())}">{esc(d)}</a>' for d in dirs[:limit])
    more = f" and {len(dirs) - limit} more" if len(dirs) > limit else ""
    return f'<p class="meta">log folder{"s" if len(dirs) > 1 else ""}: {links}{more}</p>'


def _experiment_meta(sub: pd.DataFrame) -> str:
    def many(col: str) -> str:
        return ", ".join(sorted(str(v) for v in sub[col].dropna().unique()))

    test = sub[sub["split"] == "test"]
    rules = ", ".join(sorted(test["selection"].unique()))

    runs = sub["run_id"].nunique()
    # targets = the test targets: dev records of the source itself (its dev split) are no target
    return (
        f'<p class="meta">models: {esc(many("model"))} · tasks: {esc(many("task"))} · regimes: '
        f"{esc(many('regime'))} · selection rules: {esc(rules)} · sources: {esc(many('source'))} · "
        f"{test['target'].nunique()} targets · seeds: {esc(many('seed'))} · {runs} run(s) · {len(sub)} records · "
        f"last record {esc(sub['timestamp'].max())} · git {esc(many('git_commit'))}</p>" + _log_links(sub)
    )


def _same(a: Matrix, b: Matrix) -> bool:
    return (
        a.mean.shape == b.mean.shape
        and list(a.mean.index) == list(b.mean.index)
        and list(a.mean.columns) == list(b.mean.columns)
        and np.allclose(a.mean.to_numpy(dtype=float), b.mean.to_numpy(dtype=float), equal_nan=True, atol=1e-9)
    )


def _rule_groups(sub: pd.DataFrame, wanted: list[str]) -> list[tuple[list, dict[str, Matrix]]]:
    """Slices with their matrices; slices that differ only in selection rule and whose matrices are
    equal for every metric (one checkpoint per cell: every rule picks it) are merged into one entry."""
    out: list[tuple[list, dict[str, Matrix]]] = []
    for key in slice_keys(sub):
        matrices: dict[str, Matrix] = {}
        for metric in wanted:
            try:
                matrices[metric] = ordered(slice_matrix(sub, key, metric))
            except XlexpError:
                continue
        for keys, seen in out:
            first = keys[0]
            if (
                (first.model, first.task, first.regime, first.k) == (key.model, key.task, key.regime, key.k)
                and set(seen) == set(matrices)
                and all(_same(seen[m], matrices[m]) for m in matrices)
            ):
                keys.append(key)
                break
        else:
            out.append(([key], matrices))
    return out


def experiment_section(
    page: Page,
    df: pd.DataFrame,
    experiment: str,
    metrics: list[str] | None,
    ranges: dict[str, tuple[float, float]] | None = None,
    results_dir: str | None = None,
) -> None:
    sub = df[df["experiment"] == experiment]
    page.add(f'<section class="experiment" id="exp-{slug(experiment)}"><h2>{esc(experiment)}</h2>')
    page.add(_experiment_meta(sub))
    wanted = [m for m in metrics_of(sub) if not metrics or m in metrics]
    if not wanted:
        page.add(f'<p class="note">no test records for metric(s) {esc(", ".join(metrics or []))}</p></section>')
        return
    page.add(
        "<h3>Transfer matrices (test)</h3>"
        '<p class="note">Rows: source (training) language; columns: target (test) language, grouped by '
        "family then script. Hover a cell for language names, mean ± std over seeds (and shot sets) and n.</p>"
    )
    for keys, matrices in _rule_groups(sub, wanted):
        key = keys[0]
        label = key.label()
        if len(keys) > 1:  # one figure for rules that pick the same checkpoints, and say so
            rules = ", ".join(k.selection for k in keys)
            label = label.replace(f"selection {key.selection}", f"all rules agree ({rules})")
        page.add(f"<h4>{esc(label)}</h4>")
        for metric, m in matrices.items():
            page.figure(
                heatmap_figure(m, f"{experiment}: {metric} (test) — {label}", (ranges or {}).get(metric)), "heatmap"
            )
        if matrices:
            page.add(
                "<details><summary>table of these cells (click a header to sort)</summary>"
                f"{_cells_table(matrices)}</details>"
            )
    if results_dir is not None:
        page.add(per_class_section(sub, results_dir))
    kcurves(page, sub, experiment, wanted)
    gaps(page, sub, experiment, wanted)
    page.add("</section>")
