"""``xlexp table``: paper-ready Markdown or LaTeX tables of a matrix (mean ± std, averages).

The slice and its matrix come from ``xlexp.results.query`` (``choose_slice``, ``slice_matrix``);
rows are sources or targets; an average column (per row) and an average row (per column) are
added, and the corner holds the matrix mean. Every average is ``Matrix.transfer_mean``'s: over the
cross-lingual cells only (in-language cells, target = source, stay in the table but out of the
averages), labelled as in every other view (``TRANSFER_MEAN``; docs/metrics.md). ``Grid`` and its Markdown/LaTeX writers are
also what ``xlexp reproduce`` writes its tables with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from xlexp.errors import XlexpError
from xlexp.results.languages import display_name
from xlexp.results.query import (
    TRANSFER_MEAN,
    Matrix,
    choose_metric,
    latest_experiment,
    load,
    metrics_of,
    points_metric,
    recorded_primary,
)
from xlexp.results.slices import choose_slice, slice_frame, slice_matrix

FORMATS = ("markdown", "latex")
LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


@dataclass
class TableOptions:
    rows: str = "source"  # source | target
    fmt: str = "markdown"
    digits: int = 1
    percent: bool = True  # values x 100, as papers print them
    names: bool = False  # row/column labels with language names
    average: bool = True
    sources: list[str] | None = None  # which sources, in this order (default: all)
    targets: list[str] | None = None  # which targets, in this order (default: all)


@dataclass
class Grid:
    """What a table shows: row/column labels and cell texts (averages included)."""

    corner: str
    columns: list[str]
    rows: list[tuple[str, list[str]]]
    average_row: tuple[str, list[str]] | None
    caption: str


def latex_escape(text: str) -> str:
    escaped = "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    # the few non-ASCII marks this module writes, in plain LaTeX (pdflatex without extra packages)
    for mark, tex in (("±", r"$\pm$"), ("×", r"$\times$"), ("—", "---"), ("–", "--"), (" · ", ", ")):
        escaped = escaped.replace(mark, tex)
    return escaped


def _cell(mean: float, std: float, n: float, opts: TableOptions, pm: str = " ± ") -> str:
    if pd.isna(mean):
        return "–"
    scale = 100.0 if opts.percent else 1.0
    text = f"{mean * scale:.{opts.digits}f}"
    if n and n > 1 and not pd.isna(std):
        text += f"{pm}{std * scale:.{opts.digits}f}"
    return text


def grid(m: Matrix, opts: TableOptions, caption: str) -> Grid:
    opts = replace(opts, percent=opts.percent and not points_metric(m.metric))  # chrF/BLEU are points already
    mean, std, n = (m.mean, m.std, m.n) if opts.rows == "source" else (m.mean.T, m.std.T, m.n.T)
    transfer = m.transfer_cells() if opts.rows == "source" else m.transfer_cells().T
    other = "target" if opts.rows == "source" else "source"

    def label(code) -> str:
        return f"{code} ({display_name(str(code))})" if opts.names else str(code)

    scale = 100.0 if opts.percent else 1.0
    avg = lambda values: f"{np.nanmean(values) * scale:.{opts.digits}f}" if np.isfinite(values).any() else "–"  # noqa: E731
    # an average over one column (or one row) would repeat it: only where there is more than one
    avg_col, avg_row = opts.average and mean.shape[1] > 1, opts.average and mean.shape[0] > 1
    columns = [label(c) for c in mean.columns] + ([TRANSFER_MEAN] if avg_col else [])
    rows = []
    for r in mean.index:
        cells = [_cell(mean.at[r, c], std.at[r, c], n.at[r, c], opts) for c in mean.columns]
        if avg_col:
            cells.append(avg(transfer.loc[r].to_numpy(dtype=float)))
        rows.append((label(r), cells))
    average_row = None
    if avg_row:
        cells = [avg(transfer[c].to_numpy(dtype=float)) for c in mean.columns]
        cells += [avg(transfer.to_numpy(dtype=float).ravel())] if avg_col else []
        average_row = (TRANSFER_MEAN, cells)
    return Grid(f"{opts.rows} \\ {other}", columns, rows, average_row, caption)


def to_markdown(g: Grid) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [f"**{g.caption}**", "", line([g.corner, *g.columns]), "|:--" + "|--:" * len(g.columns) + "|"]
    out += [line([label, *cells]) for label, cells in g.rows]
    if g.average_row:
        out.append(line([f"*{g.average_row[0]}*", *[f"*{c}*" for c in g.average_row[1]]]))
    return "\n".join(out) + "\n"


def to_latex(g: Grid) -> str:
    def line(cells: list[str]) -> str:
        return " & ".join(cells) + r" \\"

    spec = "l" + "r" * len(g.columns)
    out = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(g.caption)}}}",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        line([latex_escape(g.corner), *map(latex_escape, g.columns)]),
        r"\midrule",
    ]
    out += [line([latex_escape(label), *map(latex_escape, cells)]) for label, cells in g.rows]
    if g.average_row:
        out += [r"\midrule", line([latex_escape(g.average_row[0]), *map(latex_escape, g.average_row[1])])]
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def choose_cells(m: Matrix, opts: TableOptions) -> Matrix:
    """Only the asked-for sources and targets, in the asked-for order."""
    rows = opts.sources or [str(r) for r in m.mean.index]
    cols = opts.targets or [str(c) for c in m.mean.columns]
    for kind, asked, have in (("source", rows, m.mean.index), ("target", cols, m.mean.columns)):
        missing = [x for x in asked if x not in set(map(str, have))]
        if missing:
            raise XlexpError(f"no {kind} {', '.join(missing)} in this matrix; its {kind}s: {', '.join(map(str, have))}")

    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.loc[rows, cols]

    return Matrix(m.experiment, m.metric, pick(m.mean), pick(m.std), pick(m.n))


def render_table(
    results_dir: str,
    experiment: str | None,
    metric: str | None,
    opts: TableOptions,
    selection: str | None = None,
    k: int | None = None,
    regime: str | None = None,
    model: str | None = None,
    task: str | None = None,
) -> str:
    if opts.fmt not in FORMATS:
        raise XlexpError(f"--format must be one of {', '.join(FORMATS)}; got {opts.fmt!r}")
    if opts.rows not in ("source", "target"):
        raise XlexpError(f"--rows must be source or target; got {opts.rows!r}")
    df = load(results_dir)
    if experiment is None:  # the "latest" of every command (xlexp.results.units.latest_activity)
        from xlexp.results.units import latest_activity

        experiment = latest_activity(results_dir, df)
        if experiment not in set(df["experiment"]):
            experiment = latest_experiment(df)
    key = choose_slice(df, experiment, selection=selection, k=k, regime=regime, model=model, task=task)
    sub = slice_frame(df, key)
    metric = choose_metric(metrics_of(sub), metric, experiment, recorded_primary(sub))
    m = choose_cells(slice_matrix(df, key, metric), opts)
    unit = " (×100)" if opts.percent and not points_metric(metric) else ""
    over = "seeds × shot sets" if sub["shot_set"].notna().any() else "seeds"
    spread = f", mean ± std over {over}" if (m.n > 1).any().any() else ""
    caption = f"{experiment}: test {metric}{unit} — {key.label()}{spread}"
    g = grid(m, opts, caption)
    return to_markdown(g) if opts.fmt == "markdown" else to_latex(g)
