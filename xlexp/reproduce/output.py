"""What ``xlexp reproduce`` prints and writes: the plan, the worst cells, the summary, and
``cells.csv``, ``summary.csv``, ``table.md``/``.tex`` and ``delta_heatmap.png``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from xlexp.reproduce.spec import ARROW, PlannedRun, Reproduction, Result, Variant
from xlexp.results.languages import display_name
from xlexp.views.console_tables import console
from xlexp.views.png import delta_png
from xlexp.views.tables import Grid, to_latex, to_markdown


def _label(repro: Reproduction, cell: str, ref: pd.DataFrame | None) -> str:
    if ref is not None and repro.name_column and repro.name_column in ref.columns and cell in ref.index:
        return f"{cell} ({ref.at[cell, repro.name_column]})"
    if ARROW in cell:
        return cell
    name = display_name(cell)
    return cell if name == cell else f"{cell} ({name})"


def _fmt(v, digits: int = 1, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def summary_grid(res: Result) -> Grid:
    cols = ["cells", "mean ours", "mean paper", "published avg", "mean Δ", "mean |Δ|", "Spearman ρ", "Pearson r"]
    within = "within_sd_share" in res.summary.columns
    if within:
        cols.append(f"within {res.repro.within_sd:g} sd")
    rows = [
        (
            r.variant,
            [
                str(int(r.n)),
                _fmt(r.mean_ours),
                _fmt(r.mean_paper),
                _fmt(r.paper_average),
                _fmt(r.mean_delta, sign=True),
                _fmt(r.mean_abs_delta),
                _fmt(r.spearman, 3),
                _fmt(r.pearson, 3),
            ]
            + ([_fmt(100 * r.within_sd_share, 0) + "%"] if within else []),
        )
        for r in res.summary.itertuples()
    ]
    caption = f"{res.repro.title}: ours vs the paper ({res.repro.metric} ×{res.repro.scale:g}; Δ = ours − paper)"
    return Grid("variant", cols, rows, None, caption)


def cells_grid(res: Result, ref: pd.DataFrame | None) -> Grid:
    """Wide (one row per cell, columns per variant) when every variant compares the same column."""
    variants = list(res.summary["variant"])
    same_column = res.summary["column"].nunique() == 1
    if same_column:
        wide = res.cells.pivot_table(index="cell", columns="variant", values=["ours", "delta"], sort=False)
        paper = res.cells.groupby("cell", sort=False)["paper"].first()
        cols = ["paper"] + [f"{w} {v}" for v in variants for w in ("ours", "Δ")]
        rows = []
        for cell in paper.index:
            vals = [_fmt(paper[cell])]
            for v in variants:
                vals += [
                    _fmt(wide.at[cell, ("ours", v)] if ("ours", v) in wide.columns else math.nan),
                    _fmt(wide.at[cell, ("delta", v)] if ("delta", v) in wide.columns else math.nan, sign=True),
                ]
            rows.append((_label(res.repro, cell, ref), vals))
        avg = [_fmt(paper.mean())] + [
            x
            for v in variants
            for x in (
                _fmt(res.cells.loc[res.cells["variant"] == v, "ours"].mean()),
                _fmt(res.cells.loc[res.cells["variant"] == v, "delta"].mean(), sign=True),
            )
        ]
        return Grid("cell", cols, rows, ("mean", avg), f"{res.repro.title}: per cell")
    rows = [
        (f"{r.variant}: {_label(res.repro, r.cell, ref)}", [_fmt(r.ours), _fmt(r.paper), _fmt(r.delta, sign=True)])
        for r in res.cells.itertuples()
    ]
    return Grid("variant: cell", ["ours", "paper", "Δ"], rows, None, f"{res.repro.title}: per cell")


def group_grid(res: Result) -> Grid | None:
    """Δ by the reference's group column (e.g. script), per variant."""
    if res.groups is None or res.groups.empty:
        return None
    rows = [
        (
            f"{r.variant}: {r.group}",
            [
                str(int(r.n)),
                _fmt(r.mean_ours),
                _fmt(r.mean_paper),
                _fmt(r.mean_delta, sign=True),
                _fmt(r.mean_abs_delta),
                _fmt(r.sd_delta),
            ],
        )
        for r in res.groups.itertuples()
    ]
    return Grid(
        f"variant: {res.repro.group_column}",
        ["cells", "mean ours", "mean paper", "mean Δ", "mean |Δ|", "sd Δ"],
        rows,
        None,
        f"{res.repro.title}: Δ by {res.repro.group_column}",
    )


def paired_summary(paired: pd.DataFrame) -> dict[str, float]:
    """Mean a − b in ours and in the paper, how often the sign agrees, the correlation of the
    per-cell differences, and a Wilcoxon signed-rank test of ours_a vs ours_b."""
    from scipy.stats import spearmanr, wilcoxon

    d_o, d_p = paired["ours_diff"].to_numpy(float), paired["paper_diff"].to_numpy(float)
    n = len(paired)
    rho = float(spearmanr(d_o, d_p).statistic) if n >= 3 and np.ptp(d_o) > 0 and np.ptp(d_p) > 0 else math.nan
    try:
        w_p = float(wilcoxon(d_o).pvalue) if n >= 6 and np.any(d_o != 0) else math.nan
    except ValueError:
        w_p = math.nan
    return {
        "n": n,
        "mean_ours_diff": float(d_o.mean()) if n else math.nan,
        "mean_paper_diff": float(d_p.mean()) if n else math.nan,
        "sign_agreement": float(np.mean(np.sign(d_o) == np.sign(d_p))) if n else math.nan,
        "spearman_diff": rho,
        "wilcoxon_p_ours": w_p,
    }


def paired_grid(res: Result) -> Grid | None:
    """The two paired variants: a − b in ours and in the paper."""
    if res.paired is None or res.paired.empty:
        return None
    a, b = res.repro.paired
    p = paired_summary(res.paired)
    rows = [
        (
            f"{a} − {b}",
            [
                str(p["n"]),
                _fmt(p["mean_ours_diff"], 2, sign=True),
                _fmt(p["mean_paper_diff"], 2, sign=True),
                _fmt(100 * p["sign_agreement"], 0) + "%",
                _fmt(p["spearman_diff"], 3),
                "–" if math.isnan(p["wilcoxon_p_ours"]) else f"{p['wilcoxon_p_ours']:.2g}",
            ],
        )
    ]
    return Grid(
        "paired",
        ["cells", "mean ours a−b", "mean paper a−b", "same sign", "Spearman of a−b", "Wilcoxon p (ours)"],
        rows,
        None,
        f"{res.repro.title}: paired comparison of the variants",
    )


def _extra_grids(res: Result) -> list[Grid]:
    return [g for g in (group_grid(res), paired_grid(res)) if g is not None]


def delta_heatmap(res: Result, path: Path) -> None:
    """Δ (ours − paper) per cell and variant, diverging colours centred on 0."""
    data = res.cells.pivot_table(index="cell", columns="variant", values="delta", sort=False)
    data = data.reindex(columns=[v for v in res.summary["variant"] if v in data.columns])
    delta_png(
        data,
        path,
        title=f"{res.repro.name}: ours − paper",
        label=f"Δ {res.repro.metric} (ours − paper)",
        fmt="+.1f",
        roles=("cell", "variant"),
    )


def write_outputs(res: Result, out_dir: Path, ref: pd.DataFrame | None) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "cells": out_dir / "cells.csv",
        "markdown": out_dir / "table.md",
        "latex": out_dir / "table.tex",
        "heatmap": out_dir / "delta_heatmap.png",
        "summary": out_dir / "summary.csv",
    }
    res.cells.to_csv(files["cells"], index=False, float_format="%.4f")
    res.summary.to_csv(files["summary"], index=False, float_format="%.4f")
    head = f"Reference: {res.repro.citation}\n\n"
    grids = (summary_grid(res), *_extra_grids(res), cells_grid(res, ref))
    if res.groups is not None:
        files["groups"] = out_dir / "by_group.csv"
        res.groups.to_csv(files["groups"], index=False, float_format="%.4f")
    if res.paired is not None:
        files["paired"] = out_dir / "paired.csv"
        res.paired.to_csv(files["paired"], index=False, float_format="%.4f")
    files["markdown"].write_text(head + "\n".join(to_markdown(g) for g in grids), encoding="utf-8")
    files["latex"].write_text(
        f"% Reference: {res.repro.citation}\n" + "\n".join(to_latex(g) for g in grids), encoding="utf-8"
    )
    delta_heatmap(res, files["heatmap"])
    console.print(f"written: {', '.join(str(p) for p in files.values())}", highlight=False, soft_wrap=True)
    return files


def print_result(res: Result, ref: pd.DataFrame | None, worst: int = 10) -> None:
    repro = res.repro
    for v in res.summary.itertuples():
        mine = res.cells[res.cells["variant"] == v.variant]
        top = mine.reindex(mine["delta"].abs().sort_values(ascending=False).index).head(worst)
        title = f"{repro.name} · {v.variant}: the {len(top)} cells furthest from the paper"
        table = Table(title=title, min_width=len(title) + 4)
        for col, just in (("cell", "left"), ("ours", "right"), ("paper", "right"), ("Δ", "right")):
            table.add_column(col, justify=just)
        for r in top.itertuples():
            table.add_row(_label(repro, r.cell, ref), _fmt(r.ours), _fmt(r.paper), _fmt(r.delta, sign=True))
        console.print(table)
    g = summary_grid(res)
    table = Table(title=g.caption, min_width=min(len(g.caption) + 4, 150))
    table.add_column("variant", style="bold")
    for c in g.columns:
        table.add_column(c, justify="right")
    for label, vals in g.rows:
        table.add_row(label, *vals)
    console.print(table)
    for grid in _extra_grids(res):
        extra = Table(title=grid.caption, min_width=min(len(grid.caption) + 4, 150))
        extra.add_column(grid.corner, style="bold")
        for c in grid.columns:
            extra.add_column(c, justify="right")
        for label, vals in grid.rows:
            extra.add_row(label, *vals)
        console.print(extra)
    for v in res.summary.itertuples():
        about = next(x.about for x in repro.variants if x.name == v.variant)
        console.print(f"  {v.variant}: {about}", highlight=False, markup=False)
    if len(res.summary) > 1:
        by_avg, by_cell, by_rank = res.best("average_gap"), res.best("mean_abs_delta"), res.best("spearman")
        if by_avg and not res.summary["average_gap"].isna().all():
            console.print(f"closest average to the published one: {by_avg}", highlight=False)
        console.print(
            f"closest per cell (smallest mean |Δ|): {by_cell}; best rank agreement (Spearman): {by_rank}",
            highlight=False,
        )
    for kind, missing in (
        ("in ours but not in the paper", res.ours_only),
        ("in the paper but not run", res.paper_only),
    ):
        for variant, cells in missing.items():
            if cells:
                shown = ", ".join(_label(repro, c, None) for c in cells[:12]) + (" …" if len(cells) > 12 else "")
                console.print(
                    f"{variant}: {len(cells)} cell(s) {kind} (left out of the comparison): {shown}",
                    highlight=False,
                    markup=False,
                )


def print_plan(repro: Reproduction, runs: list[PlannedRun], variants: list[Variant]) -> None:
    c = console
    c.print(f"[bold]{repro.name}[/bold]: {repro.title}")
    c.print(
        f"reference: xlexp/reproduce/reference/{repro.reference_file}: {repro.citation}", highlight=False, markup=False
    )
    c.print(f"runs on: {', '.join(sorted({v.runs_on for v in variants}))}", highlight=False)
    if repro.hyperparameters:
        c.print("the paper's hyperparameters:")
        for k, v in repro.hyperparameters.items():
            c.print(f"  {k}: {v}", highlight=False, markup=False)
    if repro.cost:
        c.print(f"expected cost: {repro.cost}", highlight=False, markup=False)
    for note in repro.notes:
        c.print(f"note: {note}", highlight=False, markup=False)
    others = [v.name for v in repro.variants if v not in variants]
    for p in runs:
        status = f"reuse records of '{p.reuse[0]}' (config {p.reuse[1]})" if p.reuse else "run"
        cells = len(p.targets) if p.spec.cells != "source_target" else len(p.sources) * len(p.targets)
        c.print(
            f"[{p.variant.name}] vs column '{p.variant.column}', {cells} cell(s), {p.variant.runs_on}: {status}\n"
            f"  {p.command()}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    if others:
        c.print(f"other variants (--variant NAME): {', '.join(others)}", highlight=False)
