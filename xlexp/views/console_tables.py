"""The rich tables that the terminal view prints, rendered from what the query layer returns: a
source x target matrix (``render``: cut into blocks of target columns when wider than the terminal,
with mean row and column and the language names in a caption), the selection-rule gap
(``render_gap``), a few-shot summary by K (``render_few_shot``) and measured beside predicted cells
(``render_predicted``). ``console`` is the one rich Console they are printed on; its width decides
where ``render`` cuts a wide matrix.

Why a module of its own: these are pure renderings (a frame in, a table out: no store read, no file
written), while ``xlexp.views.console`` holds the commands that read the store, write the CSV and PNG
files and print these tables (``xlexp compare`` and ``reproduce`` print on the same ``console``). That
module imports this one, never the reverse.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from xlexp.results.languages import display_name
from xlexp.results.query import TRANSFER_MEAN, Matrix, is_in_language

# Off a terminal (CI logs, files) rich would wrap tables at 80 columns; matrices need more.
console = Console(width=None if sys.stdout.isatty() else 160)


def _titled(title: str) -> Table:
    return Table(title=title, min_width=len(title) + 4)


def render(
    m: Matrix, title: str | None = None, width: int | None = None, pending: dict[tuple[str, str], str] | None = None
):
    """Rich table: sources in rows, targets in columns (as ``xlexp table``, the CSV and transfer-matrix
    papers), source rows named, a mean column and a mean row. A matrix wider than the console (many
    targets) is cut into blocks of target columns, one table each, rather than turned on its side; a
    diagonal-only matrix (the full regime) is one in-language row."""
    from rich.console import Group

    pending = pending or {}  # (source, target) -> running | pending | failed: empty cells of units not done yet
    m = (m.in_language() if not pending else None) or m
    mean, std, n = m.mean, m.std, m.n
    diagonal_only = list(mean.index) == ["in-language"]  # regime=full: every cell is in-language
    transfer, own = (
        (m.mean.astype(float), m.mean.astype(float) * np.nan)
        if diagonal_only
        else (m.transfer_cells(), m.in_language_cells())
    )
    has_own = bool(own.notna().to_numpy().any())
    mean_label = "mean" if diagonal_only else TRANSFER_MEAN

    def cell(row, col) -> str:
        v, s, k = mean.at[row, col], std.at[row, col], n.at[row, col]
        if pd.isna(v) and (str(row), str(col)) in pending:
            return pending[str(row), str(col)]
        return "" if pd.isna(v) else (f"{v:.3f}" if not k or k < 2 or pd.isna(s) else f"{v:.3f}±{s:.3f}")

    labels = {row: (f"{row} ({display_name(str(row))})" if row != "in-language" else str(row)) for row in mean.index}
    cells = {(r, c): cell(r, c) for r in mean.index for c in mean.columns}
    label_w = max([len("source \\ target"), len(mean_label) if len(mean.index) > 1 else 4, *map(len, labels.values())])
    col_w = {c: max([len(str(c)), *(len(cells[r, c]) for r in mean.index)]) + 3 for c in mean.columns}
    extra_w = 9 + (9 if has_own else 0)  # the mean column (and the in-language column)
    room = max((width or console.width) - label_w - 4 - extra_w, 20)  # label column, borders, the mean column(s)
    blocks, block, used = [], [], 0
    for col in mean.columns:
        if block and used + col_w[col] > room:
            blocks.append(block)
            block, used = [], 0
        block.append(col)
        used += col_w[col]
    blocks.append(block)
    tables = []
    for i, cols in enumerate(blocks):
        last = i == len(blocks) - 1
        part = f" (targets {i + 1}/{len(blocks)})" if len(blocks) > 1 else ""
        table = _titled((title or f"{m.experiment}: {m.metric} (test)") + part)
        table.add_column("source \\ target", style="bold")
        for col in cols:
            table.add_column(str(col), justify="right")
        if last:
            if has_own:
                table.add_column("in-language", justify="right", style="italic")
            table.add_column(mean_label, justify="right", style="italic")
        for row in mean.index:
            ends = ([_fmt_mean(own.loc[row])] if has_own else []) + [_fmt_mean(transfer.loc[row])] if last else []
            table.add_row(labels[row], *(cells[row, col] for col in cols), *ends)
        if len(mean.index) > 1:
            table.add_section()
            corner = (([_fmt_mean(_flat(own))] if has_own else []) + [_fmt_mean(_flat(transfer))]) if last else []
            table.add_row(mean_label, *(_fmt_mean(transfer[col]) for col in cols), *corner, style="italic")
        table.caption = _names_caption(cols, label_w + 4 + sum(col_w[c] for c in cols) + (extra_w if last else 0))
        tables.append(table)
    return tables[0] if len(tables) == 1 else Group(*tables)


def _flat(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(frame.to_numpy(dtype=float).ravel())


def _fmt_mean(values: pd.Series) -> str:
    """Mean of the non-empty values, or '' when there are none (a row of only in-language cells)."""
    v = values.to_numpy(dtype=float)
    v = v[~np.isnan(v)]
    return f"{v.mean():.3f}" if v.size else ""


def _names_caption(codes, width: int) -> str:
    """``targets: eng (English), ind (Indonesian), ...`` (the columns show codes), broken into lines of at
    most ``width`` (no wider than the table) between entries, so that rich never splits ``jav (Javanese)``."""
    lines, line = [], "targets:"
    for code in codes:
        entry = f"{code} ({display_name(str(code))})"
        if len(line) + 2 + len(entry) > width - 2 and line != "targets:":
            lines.append(line + ",")
            line = entry
        else:
            line = f"{line} {entry}" if line == "targets:" else f"{line}, {entry}"
    return "\n".join([*lines, line])


def render_gap(gap: pd.DataFrame, title: str):
    """``frames.selection_gap`` as the README prints it: per source, one row per selection rule (and per
    difference to source_dev), targets in columns, then the mean without in-language cells."""
    from rich.console import Group

    tables = []
    for source, rows in gap.groupby(level="source", sort=False):
        by_target = rows.droplevel("source")
        table = _titled(title + (f" — source {source}" if gap.index.get_level_values("source").nunique() > 1 else ""))
        table.add_column(f"source {source} →", style="bold")
        for target in by_target.index:
            table.add_column(str(target), justify="right")
        table.add_column(TRANSFER_MEAN, justify="right", style="italic")
        cross = [not is_in_language(source, t) for t in by_target.index]
        for col in by_target.columns:
            values = by_target[col]
            diff = " - " in col
            fmt = lambda v, diff=diff: "" if pd.isna(v) else (f"{v:+.3f}" if diff else f"{v:.3f}")  # noqa: E731
            kept = values[cross].dropna()
            table.add_row(
                col, *(fmt(v) for v in values), fmt(kept.mean()) if len(kept) else "", style="italic" if diff else None
            )
        table.caption = _names_caption(list(by_target.index), 80)
        tables.append(table)
    return tables[0] if len(tables) == 1 else Group(*tables)


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
            cells.append(
                f"{r['mean']:.3f}" + ("" if pd.isna(r["std"]) else f"±{r['std']:.3f}") + f" ({int(r['count'])})"
            )
        table.add_row(f"{source} → {target} ({display_name(str(target))})", *cells)
    return table


def render_predicted(cells: pd.DataFrame, title: str) -> Table:
    """Long cells (source, target, value, predicted[, low, high]) as a matrix: measured cells in full,
    predicted ones dim with a ``*``; sources in rows, targets in columns, like ``render``."""
    sources, targets = list(dict.fromkeys(cells["source"])), list(dict.fromkeys(cells["target"]))
    value = cells.pivot(index="source", columns="target", values="value").reindex(index=sources, columns=targets)
    flag = cells.pivot(index="source", columns="target", values="predicted").reindex(index=sources, columns=targets)
    table = _titled(title)
    table.add_column("source \\ target", style="bold")
    for col in value.columns:
        table.add_column(str(col), justify="right")
    for row in value.index:
        out = []
        for col in value.columns:
            v, p = value.at[row, col], flag.at[row, col]
            out.append("" if pd.isna(v) else (f"[dim italic]{v:.3f}*[/]" if bool(p) else f"{v:.3f}"))
        table.add_row(f"{row} ({display_name(str(row))})", *out)
    return table
