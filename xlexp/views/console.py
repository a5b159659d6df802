"""The terminal view: source x target matrices, selection-rule gaps and few-shot tables with rich.

``show`` is ``xlexp matrix`` (an experiment's whole matrix from the store, plus its CSV and PNG
files); ``show_run`` is the end of ``xlexp run`` (only that run's matrix, from its records in
memory: it never reads the store). The records come from ``xlexp.results.query``; the tables are
rendered by ``xlexp.views.console_tables`` and the PNGs drawn by ``xlexp.views.png``.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pandas as pd

from xlexp.errors import XlexpError
from xlexp.results.frames import selection_gap
from xlexp.results.query import Matrix, default_metric, few_shot_summary, k_value, load, pivot, recorded_primary
from xlexp.results.units import latest_activity, read_ledger, unit_states
from xlexp.views.console_tables import console, render, render_few_shot, render_gap, render_predicted


def _has_few_shot(records: pd.DataFrame) -> bool:
    return bool(records["k"].map(k_value).notna().any())


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
