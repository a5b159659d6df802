"""``xlexp compare A B``: the delta matrix B − A with significance marks.

A and B are experiment names or run ids; which records and predictions a side means is
``xlexp.results.frames.compare_side`` / ``side_predictions``. Per (source, target) cell the test is,
on the test examples both sides predicted, a hierarchical bootstrap over seeds and examples when
both sides have several training seeds, else a paired bootstrap over the examples alone (with a
warning: it cannot tell a better config from a luckier seed); where per-example predictions are
missing, a bootstrap over seeds (``xlexp.results.significance`` says what each p-value means). Outputs: a terminal table, a
CSV and a heatmap (``xlexp.views.png.delta_png``) under ``<results_dir>/compare/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from rich.table import Table

from xlexp.config.paths import find_config
from xlexp.errors import XlexpError
from xlexp.results.frames import compare_side, side_predictions
from xlexp.results.languages import display_name, group_order
from xlexp.results.query import default_metric, load, metrics_of, recorded_primary, records_of
from xlexp.results.significance import (
    METRICS,
    SCORE_METRICS,
    hierarchical_bootstrap,
    hierarchical_score_bootstrap,
    paired_bootstrap,
    paired_score_bootstrap,
    seed_bootstrap,
)
from xlexp.results.slices import SliceKey


@dataclass
class Side:
    ident: str
    key: SliceKey
    records: pd.DataFrame  # test records of the chosen slice, latest replicate per cell
    predictions: pd.DataFrame  # the matching per-example test predictions (may be empty)


def resolve_side(df: pd.DataFrame, results_dir: str | Path, ident: str, selection: str | None, k: int | None) -> Side:
    key, records = compare_side(df, ident, selection, k)
    return Side(ident, key, records, side_predictions(results_dir, key, records))


def _num_labels(task: str, labels: np.ndarray, preds: np.ndarray) -> int:
    """The task's label count (from its config, as the records used: the user's config folders, then
    the package's), else what the data shows."""
    path = find_config("task", task)
    if path is not None:
        spec = OmegaConf.load(path)
        if "labels" in spec:
            return len(spec.labels)
    return int(max(labels.max(initial=0), preds.max(initial=0))) + 1


# ---- the comparison ----------------------------------------------------------------------------


@dataclass
class Comparison:
    a: str
    b: str
    metric: str
    n_boot: int
    alpha: float
    cells: pd.DataFrame  # one row per (source, target): a, b, delta, ci_low, ci_high, p, significant, method, n

    def methods(self) -> list[str]:
        return sorted(set(self.cells["method"]))

    def warnings(self) -> list[str]:
        """What the reader must know to read the marks: a test over test examples only."""
        n = int((self.cells["method"] == "examples").sum())
        if not n:
            return []
        return [
            f"{n} cell(s) have one training seed on a side: their bootstrap covers test-example variance only, "
            "not training-seed variance, so a '*' there can be seed noise (two seeds of one config often differ "
            "'significantly'). Run 3 or more seeds per side (regime.seeds=[1,2,3]) for a test over seeds and "
            "examples together."
        ]


def _cell_predictions(side: Side, source: str, target: str) -> pd.DataFrame:
    p = side.predictions
    return p[(p["source"] == source) & (p["target"] == target)] if not p.empty else p


def _stack(preds: pd.DataFrame, examples: np.ndarray, column: str = "pred") -> np.ndarray:
    """(replicates, n) predictions (or, for QA, per-question scores: ``column``) on ``examples`` in that order."""
    rows = [rep.set_index("example").loc[examples, column].to_numpy() for _, rep in preds.groupby(["seed", "shot_set"])]
    return np.asarray(rows, dtype=np.int64 if column == "pred" else np.float64)


def compare(
    results_dir: str | Path,
    a: str,
    b: str,
    metric: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    selection: str | None = None,
    k: int | None = None,
    k_b: int | None = None,
) -> Comparison:
    """B - A cell by cell. ``k`` picks the K of both sides; ``k_b`` (when given) B's alone, e.g. a
    fine-tuned A (no shots) against in-context B with K = 4 demonstrations."""
    if n_boot < 100:
        raise XlexpError(f"--n-boot must be at least 100, got {n_boot}")
    df = load(results_dir)
    mine = records_of(df, a)
    known = metrics_of(mine)
    if metric is None:  # A's task's primary metric, as every view defaults to
        metric = default_metric(known, recorded_primary(mine))
    if metric not in known:
        raise XlexpError(f"'{a}' has no test metric '{metric}'; its metrics: {', '.join(known)}")
    side_a = resolve_side(df, results_dir, a, selection, k)
    side_b = resolve_side(df, results_dir, b, selection, k if k_b is None else k_b)
    rng = np.random.default_rng(seed)
    cells_a = set(zip(side_a.records["source"], side_a.records["target"]))
    cells_b = set(zip(side_b.records["source"], side_b.records["target"]))
    common = cells_a & cells_b
    if not common:
        raise XlexpError(f"'{a}' and '{b}' share no (source, target) cell with test records to compare")
    rows = []
    for source, target in sorted(common):
        pa, pb = _cell_predictions(side_a, source, target), _cell_predictions(side_b, source, target)
        shared = np.intersect1d(pa["example"].unique(), pb["example"].unique()) if len(pa) and len(pb) else []
        qa = len(shared) and "f1" in pa.columns and pa["f1"].notna().any()
        if metric not in METRICS:  # span F1, chrF, retrieval accuracy: no per-example form stored; the seeds' values
            shared = []
        if qa and len(shared):  # extractive QA: per-question EM/F1 scores were stored with the answers
            if metric not in SCORE_METRICS:
                raise XlexpError(
                    f"cell {source}->{target} is extractive QA: compare it with --metric f1 or exact_match"
                )
            shared = np.sort(shared)
            sa, sb = _stack(pa, shared, metric), _stack(pb, shared, metric)
            test = (hierarchical_score_bootstrap if len(sa) > 1 and len(sb) > 1 else paired_score_bootstrap)(
                sa, sb, n_boot, rng
            )
        elif len(shared):
            if metric in SCORE_METRICS:
                raise XlexpError(
                    f"--metric {metric} applies to extractive QA cells only; {source}->{target} is not one"
                )
            shared = np.sort(shared)
            labels = pa.groupby("example")["label"].last().loc[shared].to_numpy()
            labels_b = pb.groupby("example")["label"].last().loc[shared].to_numpy()
            if not np.array_equal(labels, labels_b):
                raise XlexpError(
                    f"cell {source}->{target}: '{a}' and '{b}' have different labels for the same test "
                    "examples; they were not run on the same test split"
                )
            preds_a, preds_b = _stack(pa, shared), _stack(pb, shared)
            num_labels = _num_labels(side_a.key.task, labels, np.concatenate([preds_a.ravel(), preds_b.ravel()]))
            # several seeds on both sides: seeds and examples resampled together; else examples only (warned)
            test = (hierarchical_bootstrap if len(preds_a) > 1 and len(preds_b) > 1 else paired_bootstrap)(
                labels.astype(np.int64), preds_a, preds_b, metric, n_boot, rng, num_labels
            )
        else:
            va = side_a.records[
                (side_a.records["source"] == source)
                & (side_a.records["target"] == target)
                & (side_a.records["metric"] == metric)
            ]["value"].to_numpy(dtype=float)
            vb = side_b.records[
                (side_b.records["source"] == source)
                & (side_b.records["target"] == target)
                & (side_b.records["metric"] == metric)
            ]["value"].to_numpy(dtype=float)
            if not len(va) or not len(vb):
                continue
            test = seed_bootstrap(va, vb, n_boot, rng)
        rows.append(
            {
                "source": source,
                "target": target,
                **test.__dict__,
                "significant": bool(not np.isnan(test.p) and test.p < alpha),
            }
        )
    if not rows:
        raise XlexpError(f"'{a}' and '{b}' have no metric '{metric}' in common")
    return Comparison(a, b, metric, n_boot, alpha, pd.DataFrame(rows))


# ---- output ------------------------------------------------------------------------------------


def mark(p: float, alpha: float) -> str:
    if np.isnan(p):
        return ""
    return "**" if p < alpha / 5 else "*" if p < alpha else ""


def delta_matrix(c: Comparison) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(delta, p) as sources x targets, targets grouped like the report."""
    sources = group_order(list(dict.fromkeys(c.cells["source"])))
    targets = group_order(list(dict.fromkeys(c.cells["target"])))
    delta = c.cells.pivot(index="source", columns="target", values="delta").reindex(index=sources, columns=targets)
    p = c.cells.pivot(index="source", columns="target", values="p").reindex(index=sources, columns=targets)
    return delta, p


def describe_methods(c: Comparison) -> str:
    names = {
        "hierarchical": f"hierarchical bootstrap over training seeds and test examples ({c.n_boot} resamples)",
        "examples": f"paired bootstrap over test examples ({c.n_boot} resamples; one training seed per side: "
        "test-example variance only)",
        "seeds": f"bootstrap over seeds ({c.n_boot} resamples; no per-example predictions)",
        "none": "no test (one seed per side and no predictions)",
    }
    counts = c.cells["method"].value_counts()
    return "; ".join(f"{names[m]}: {counts[m]} cell(s)" for m in c.methods())


def render(c: Comparison, block: int = 14):
    """Sources in rows and targets in columns, as every view (``xlexp matrix``, ``table``, the report); a
    matrix with more targets than ``block`` is cut into blocks of target columns, one table each."""
    from rich.console import Group

    delta, p = delta_matrix(c)
    cols = list(delta.columns)
    parts = [cols[i : i + block] for i in range(0, len(cols), block)] or [[]]
    tables = []
    for i, part in enumerate(parts):
        title = f"{c.metric}: {c.b} − {c.a} (test)" + (f" (targets {i + 1}/{len(parts)})" if len(parts) > 1 else "")
        table = Table(title=title, min_width=len(title) + 4)
        table.add_column("source \\ target", style="bold")
        for col in part:
            table.add_column(str(col), justify="right")
        for row in delta.index:
            cells = []
            for col in part:
                d, pv = delta.at[row, col], p.at[row, col]
                cells.append(
                    ""
                    if pd.isna(d)
                    else f"[{'green' if d > 0 else 'red' if d < 0 else 'white'}]{d:+.3f}{mark(pv, c.alpha)}[/]"
                )
            table.add_row(f"{row} ({display_name(str(row))})", *cells)
        tables.append(table)
    return tables[0] if len(tables) == 1 else Group(*tables)


def legend(c: Comparison) -> str:
    warn = "".join(f"\nwarning: {w}" for w in c.warnings())
    return (
        f"B − A with B = {c.b}, A = {c.a}; * p < {c.alpha:g}, ** p < {c.alpha / 5:g} (two-sided).\n"
        f"{describe_methods(c)}.{warn}"
    )


def _stem(c: Comparison) -> str:
    clean = lambda s: re.sub(r"[^A-Za-z0-9_.+-]+", "_", s)  # noqa: E731
    return f"{clean(c.a)}_vs_{clean(c.b)}.{c.metric}"


def write_outputs(c: Comparison, results_dir: str | Path) -> tuple[Path, Path]:
    out = Path(results_dir) / "compare"
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / f"{_stem(c)}.csv", out / f"{_stem(c)}.png"
    cells = c.cells.assign(a_name=c.a, b_name=c.b, metric=c.metric, mark=[mark(p, c.alpha) for p in c.cells["p"]])
    cells.to_csv(csv_path, index=False, float_format="%.6g")
    heatmap(c, png_path)
    return csv_path, png_path


def heatmap(c: Comparison, path: Path) -> None:
    """The delta matrix centred on 0; each cell shows the delta and its mark."""
    from xlexp.views.png import delta_png

    delta, p = delta_matrix(c)
    marks = p.map(lambda v: mark(v, c.alpha))
    delta_png(
        delta,
        path,
        marks=marks,
        label=f"Δ {c.metric} (B − A)",
        title=f"{c.b} − {c.a}: {c.metric} (test); * p<{c.alpha:g}, ** p<{c.alpha / 5:g}",
    )
