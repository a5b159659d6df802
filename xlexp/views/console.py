"""The terminal view: source x target matrices, selection-rule gaps and few-shot tables with rich.

``show`` is ``xlexp matrix`` (an experiment's whole matrix from the store, plus its CSV and PNG
files); ``show_run`` is the end of ``xlexp run`` (only that run's matrix, from its records in
memory: it never reads the store). The records come from ``xlexp.results.query``; the PNGs are
drawn by ``xlexp.views.png``.
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
from xlexp.results.frames import selection_gap
from xlexp.results.languages import display_name
from xlexp.results.query import (
    TRANSFER_MEAN,
    Matrix,
    default_metric,
    few_shot_summary,
    is_in_language,
    k_value,
    load,
    pivot,
    recorded_primary,
)
from xlexp.results.units import latest_activity, read_ledger, unit_states

# Off a terminal (CI logs, files) rich would wrap tables at 80 columns; matrices need more.
console = Console(width=None if sys.stdout.isatty() else 160)


def _has_few_shot(records: pd.DataFrame) -> bool:
    return bool(records["k"].map(k_value).notna().any())


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


def _matrices_dir(results_dir: Path | str) -> Path:
    out = Path(results_dir) / "matrices"
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_outputs(m: Matrix, results_dir: Path | str, selection: str | None = None) -> tuple[Path, Path]:
    """CSV (mean, and std when there are several seeds) and a heatmap PNG under results/matrices/."""
    from xlexp.views.png import matrix_png

    out = _matrices_dir(results_dir)
    stem = f"{m.experiment}.{m.metric}" + (f".{selection}" if selection and selection != "source_dev" else "")
    stem = stem.replace("/", "_")
    csv_path, png_path = out / f"{stem}.csv", out / f"{stem}.png"
    m.mean.to_csv(csv_path, index_label="source")
    if (m.n > 1).any().any():
        m.std.to_csv(out / f"{stem}.std.csv", index_label="source")
    matrix_png(m, png_path, selection=selection or "source_dev")
    return csv_path, png_path


def _write_few_shot(summary: pd.DataFrame, results_dir: Path | str) -> None:
    from xlexp.views.png import kcurve_png

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


def show(
    results_dir: Path | str,
    experiment: str | None = None,
    metrics: list[str] | None = None,
    split: str = "test",
    selection: str | None = None,
    regime: str | None = None,
    gap: bool = False,
    predicted: bool = False,
    model: str | None = None,
    task: str | None = None,
) -> list[Matrix]:
    """``xlexp matrix``: print the matrix per metric and write CSV + heatmap next to the records;
    ``regime='few_shot'`` shows mean ± std per (target, K) and writes the K-curve PNG; ``gap``
    adds the table of selection-rule differences."""
    if experiment is None:  # the same "latest" as `xlexp status`: the newest record or ledger change
        experiment = latest_activity(results_dir, load(results_dir, required=False))
    df = load(results_dir, required=experiment is None or not read_ledger(results_dir, experiment))
    if experiment is not None and not (df["experiment"] == experiment).any():
        if waiting := unit_states(results_dir, experiment, df):  # jobs planned or running, none finished yet
            count = {k: sum(st.state == k for st in waiting) for k in ("running", "failed", "pending")}
            console.print(
                f"experiment {experiment}: no unit done yet ({count['running']} running, {count['failed']} "
                f"failed, {count['pending']} pending of {len(waiting)}); `xlexp status --experiment "
                f"{shlex.quote(experiment)}` shows them",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            return []
    if regime:
        df = df[df["regime"] == regime]
        if df.empty:
            raise XlexpError(f"no records with regime '{regime}' under {results_dir}")
    if not metrics:  # the task's primary metric first, then the others
        mine = df[(df["experiment"] == experiment) & (df["split"] == split)]
        found = sorted(mine["metric"].unique())
        first = default_metric(found, recorded_primary(mine)) if found else None
        metrics = [first, *(x for x in found if x != first)] if found else [None]
    shown = []
    states = unit_states(results_dir, experiment, df) if not regime else []
    for metric in metrics:
        m = pivot(df, experiment, metric, split, selection=selection, model=model, task=task)
        m, pending = with_pending(m, states)
        console.print(
            render(m, f"{m.experiment}: {m.metric} ({split}, selection {selection or 'source_dev'})", pending=pending)
        )
        csv_path, png_path = write_outputs(m, results_dir, selection)
        console.print(f"{m.shape[0]} x {m.shape[1]} matrix -> {csv_path} and heatmap {png_path}")
        if pending:
            count = {k: sum(st.state == k for st in states) for k in ("done", "running", "failed", "pending")}
            console.print(
                f"partial matrix: {count['done']} of {len(states)} unit(s) done, {count['running']} running, "
                f"{count['failed']} failed, {count['pending']} pending; {len(pending)} cell(s) marked "
                f"(`xlexp status --experiment {shlex.quote(experiment)}`: errors and ETA)",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        shown.append(m)
        if predicted:
            show_with_predicted(results_dir, m)
        if regime == "few_shot" or _has_few_shot(df[df["experiment"] == experiment]):
            summary = few_shot_summary(df, experiment, metric, model=model, task=task)
            console.print(render_few_shot(summary))
            _write_few_shot(summary, results_dir)
        if gap and split == "test":
            _print_gap(selection_gap(df, experiment, metric), f"{experiment}: test {m.metric} by selection rule")
    return shown


def with_pending(m: Matrix, states: list) -> tuple[Matrix, dict[tuple[str, str], str]]:
    """The matrix grown by the rows and columns of units that are not done yet (a matrix assembled
    while its jobs still run), and their empty cells' states (``xlexp.results.units.unit_states``)."""
    pending: dict[tuple[str, str], str] = {}
    for st in states:
        if st.state != "done":
            for target in st.entry.targets:
                key = (str(st.entry.source), str(target))
                if pending.get(key) != "running":  # several seeds of one cell: running says the most
                    pending[key] = st.state
    if not pending:
        return m, {}
    rows = list(m.mean.index) + [r for r in dict.fromkeys(k[0] for k in pending) if r not in m.mean.index]
    cols = list(m.mean.columns) + [c for c in dict.fromkeys(k[1] for k in pending) if c not in m.mean.columns]
    grown = Matrix(m.experiment, m.metric, *(f.reindex(index=rows, columns=cols) for f in (m.mean, m.std, m.n)))
    return grown, {k: v for k, v in pending.items() if pd.isna(grown.mean.at[k[0], k[1]])}


def show_run(records: pd.DataFrame, metrics: list[str], results_dir: Path | str) -> None:
    """End of ``xlexp run``: this run's matrix per metric (and its few-shot table and its gap between
    selection rules) from the run's own records; the store is not read, no file is written."""
    if records.empty:
        return
    experiment, run_id = str(records["experiment"].iloc[0]), str(records["run_id"].iloc[0])
    k = pd.to_numeric(records["k"], errors="coerce") if "k" in records else pd.Series(dtype=float)
    if (
        len(k) and not (k.isna() | (k == 0)).any()
    ):  # only cells with shots (regime=icl regime.k=[4]): mean per (target, K)
        test = records[records["split"] == "test"]
        for metric in metrics:
            cells = (
                test[test["metric"] == metric].groupby(["source", "target", "k"])["value"].agg(["mean", "std", "count"])
            )
            console.print(
                f"{experiment} (run {run_id}): {metric} (test)\n{cells.round(4).to_string()}",
                highlight=False,
                markup=False,
            )
        return
    for metric in metrics:
        console.print(render(pivot(records, experiment, metric), f"{experiment} (run {run_id}): {metric} (test)"))
        if _has_few_shot(records):
            console.print(render_few_shot(few_shot_summary(records, experiment, metric)))
    primary = default_metric(metrics, recorded_primary(records))
    _print_gap(
        selection_gap(records, experiment, primary),
        f"{experiment}: test {primary} by checkpoint selection rule",
        quiet=True,
    )
    command = f"xlexp matrix --experiment {shlex.quote(experiment)}"
    if Path(results_dir).resolve() != Path(os.environ.get("XLEXP_RESULTS_DIR", "results")).resolve():
        command += f" --results-dir {shlex.quote(str(results_dir))}"
    console.print(
        f"`{command}` prints the whole experiment's matrix (every run) and writes its CSV and heatmap",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


# ---- predicted cells (``xlexp predict``; ``xlexp matrix --predicted``) --------------------------------


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


def show_predicted(cells: pd.DataFrame, experiment: str, metric: str) -> None:
    console.print(render_predicted(cells, f"{experiment}: {metric} (test), measured and predicted (* dim: predicted)"))


def show_with_predicted(results_dir: Path | str, m: Matrix) -> Path | None:
    """``xlexp matrix --predicted``: the measured matrix plus the predicted cells of ``xlexp predict``
    (never mixed: they come from ``results/predicted/``), printed and drawn as ``<stem>.predicted.png``."""
    from xlexp.results.frames import predicted_cells
    from xlexp.views.png import predicted_png

    pred = predicted_cells(results_dir, m.experiment, m.metric)
    if pred.empty:
        console.print(
            f"no predicted cells for {m.experiment} ({m.metric}): run `xlexp predict --experiment {m.experiment}`",
            highlight=False,
        )
        return None
    measured = (
        m.mean.rename_axis(index="source", columns="target")
        .reset_index()
        .melt(id_vars="source", var_name="target", value_name="value")
        .dropna(subset=["value"])
        .assign(predicted=False)
    )
    predicted = pred[["source", "target", "value"]].assign(predicted=True)
    cells = pd.concat(
        [
            measured,
            predicted[
                ~predicted.set_index(["source", "target"]).index.isin(measured.set_index(["source", "target"]).index)
            ],
        ],
        ignore_index=True,
    )
    show_predicted(cells, m.experiment, m.metric)
    wide = pred.pivot(index="source", columns="target", values="value")
    path = _matrices_dir(results_dir) / f"{m.experiment}.{m.metric}.predicted.png".replace("/", "_")
    predicted_png(
        m.mean, wide, path, title=f"{m.experiment}: {m.metric} — hatched/grey cells are predicted", label=m.metric
    )
    console.print(f"{len(pred)} predicted cell(s) from {pred['method'].iloc[0]}; heatmap -> {path}", highlight=False)
    return path
