"""``xlexp compare A B``: the delta matrix B − A with significance marks.

A and B are experiment names or run ids. Per (source, target) cell the test is a **paired
bootstrap over test examples** both sides predicted (joined on source, target, example; several
seeds per side are averaged inside each resample). Where per-example predictions are missing but
seeds are, it falls back to a bootstrap over seeds (unpaired: seeds of A and of B are resampled
separately). Outputs: a terminal table, a CSV and a heatmap under ``<results_dir>/compare/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from rich.table import Table
from sklearn.metrics import accuracy_score, f1_score

from xlexp.config.compose import CONF_DIR
from xlexp.errors import XlexpError
from xlexp.results.langmeta import group_order
from xlexp.results.languages import display_name
from xlexp.results.store import load_predictions, require_records
from xlexp.results.query import SliceKey, headline, k_value, slice_keys

METRICS = ("accuracy", "macro_f1")
CHUNK = 200  # bootstrap resamples per vectorised block (bounds memory on large test sets)


# ---- the statistics --------------------------------------------------------------------------

def resample_weights(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) counts: how often each example is drawn in each resample (sum n per row)."""
    idx = rng.integers(0, n, size=(n_boot, n))
    weights = np.zeros((n_boot, n), dtype=np.float64)
    np.add.at(weights, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
    return weights


def sklearn_metric(metric: str, labels: np.ndarray, preds: np.ndarray, num_labels: int) -> float:
    """The point estimate, computed as the records' values are (all labels, zero_division=0)."""
    if metric == "accuracy":
        return float(accuracy_score(labels, preds))
    return float(f1_score(labels, preds, labels=list(range(num_labels)), average="macro", zero_division=0))


def weighted_metric(metric: str, labels: np.ndarray, preds: np.ndarray, weights: np.ndarray,
                    num_labels: int) -> np.ndarray:
    """The metric of each weighted resample: ``weights`` (B, n) over examples -> (B,).

    With all weights 1 this is exactly sklearn's accuracy / macro-F1 over ``range(num_labels)``
    with zero_division=0 (what the records hold); tests check that."""
    if metric == "accuracy":
        return weights @ (preds == labels).astype(np.float64) / weights.sum(axis=1)
    if metric == "macro_f1":
        eye = np.eye(num_labels)
        true_1h, pred_1h = eye[labels], eye[preds]
        tp = weights @ (true_1h * pred_1h)
        denom = weights @ true_1h + weights @ pred_1h   # 2tp + fp + fn
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        return f1.mean(axis=1)
    raise XlexpError(f"compare knows the metrics {', '.join(METRICS)}; got '{metric}'")


@dataclass
class Test:
    a: float
    b: float
    delta: float
    ci_low: float
    ci_high: float
    p: float
    method: str      # examples | seeds | none
    n: int           # examples (paired) or seeds A+B


def _p_value(replicates: np.ndarray, delta: float) -> float:
    """Two-sided bootstrap p-value: how often the centred bootstrap delta is as extreme as the
    observed one (the null distribution is the bootstrap one shifted to 0)."""
    extreme = np.abs(replicates - delta) >= abs(delta) - 1e-12
    return float((1 + extreme.sum()) / (1 + len(replicates)))


def _finish(a: float, b: float, replicates: np.ndarray, method: str, n: int) -> Test:
    delta = b - a
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return Test(a, b, delta, float(lo), float(hi), _p_value(replicates, delta), method, n)


def paired_bootstrap(labels: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray, metric: str, n_boot: int,
                     rng: np.random.Generator, num_labels: int) -> Test:
    """``preds_a`` (seeds_a, n) and ``preds_b`` (seeds_b, n) on the same n examples with ``labels``."""
    point = lambda preds: float(np.mean([sklearn_metric(metric, labels, p, num_labels) for p in preds]))  # noqa: E731
    reps = []
    for start in range(0, n_boot, CHUNK):
        w = resample_weights(len(labels), min(CHUNK, n_boot - start), rng)
        ma = np.mean([weighted_metric(metric, labels, p, w, num_labels) for p in preds_a], axis=0)
        mb = np.mean([weighted_metric(metric, labels, p, w, num_labels) for p in preds_b], axis=0)
        reps.append(mb - ma)
    return _finish(point(preds_a), point(preds_b), np.concatenate(reps), "examples", len(labels))


def seed_bootstrap(values_a: np.ndarray, values_b: np.ndarray, n_boot: int, rng: np.random.Generator) -> Test:
    """Per-seed scores of A and of B, each side's seeds resampled with replacement."""
    a, b = float(np.mean(values_a)), float(np.mean(values_b))
    if len(values_a) + len(values_b) < 3:
        return Test(a, b, b - a, np.nan, np.nan, np.nan, "none", len(values_a) + len(values_b))
    ra = rng.choice(values_a, size=(n_boot, len(values_a))).mean(axis=1)
    rb = rng.choice(values_b, size=(n_boot, len(values_b))).mean(axis=1)
    return _finish(a, b, rb - ra, "seeds", len(values_a) + len(values_b))


# ---- which records and predictions a side means ------------------------------------------------

@dataclass
class Side:
    ident: str
    key: SliceKey
    records: pd.DataFrame       # test records of the chosen slice, latest replicate per cell
    predictions: pd.DataFrame   # the matching per-example test predictions (may be empty)


def _replicate_cols() -> list[str]:
    return ["source", "target", "seed", "shot_set"]


def resolve_side(df: pd.DataFrame, results_dir: str | Path, ident: str, selection: str | None,
                 k: int | None) -> Side:
    if ident in set(df["experiment"]):
        sub = df[df["experiment"] == ident]
    else:
        runs = sorted(r for r in df["run_id"].unique() if str(r).startswith(ident))
        if len(runs) != 1:
            recent = df.sort_values("timestamp")["run_id"].drop_duplicates().tolist()[-5:]
            what = "several runs" if runs else "no experiment or run"
            raise XlexpError(f"'{ident}' matches {what}. Experiments: {', '.join(sorted(df['experiment'].unique()))}; "
                             f"recent run ids: {', '.join(recent)}")
        sub = df[df["run_id"] == runs[0]]
    keys = slice_keys(sub)
    if selection is not None:
        keys = [key for key in keys if key.selection == selection]
    with_k = [key for key in keys if key.k == k]  # k None: the cells without shots
    if not with_k:
        rules = ", ".join(sorted(sub[sub["split"] == "test"]["selection"].unique()))
        shots = sorted({key.k for key in keys if key.k is not None})
        hint = f"; its K values here: {', '.join(map(str, shots))} (choose one with --k)" if shots else ""
        raise XlexpError(f"'{ident}' has no test records with selection {selection or 'any'} and "
                         f"{'K ' + str(k) if k is not None else 'no shots'}. Its selection rules: {rules}{hint}")
    keys = with_k
    key = headline(keys)  # no K and the source_dev rule when there, as in the report's first matrix
    rec = sub[(sub["split"] == "test") & (sub["selection"] == key.selection) & (sub["regime"] == key.regime)
              & (sub["model"] == key.model) & (sub["task"] == key.task)]
    rec = rec[rec["k"].map(k_value).isna()] if key.k is None else rec[rec["k"].map(k_value) == key.k]
    rec = rec.assign(shot_set=rec["shot_set"].map(k_value).fillna(-1).astype(int))
    # a re-run with the same seed replaces the earlier one (as in the matrix)
    rec = rec.sort_values("timestamp").drop_duplicates(subset=[*_replicate_cols(), "metric"], keep="last")
    preds = load_predictions(results_dir, run_ids=sorted(rec["run_id"].unique()))
    if not preds.empty:
        preds = preds[(preds["split"] == "test") & (preds["selection"] == key.selection)]
        preds = preds[preds["k"].map(k_value).isna()] if key.k is None else preds[preds["k"].map(k_value) == key.k]
        preds = preds.assign(shot_set=preds["shot_set"].map(k_value).fillna(-1).astype(int))
        latest = rec[[*_replicate_cols(), "run_id"]].drop_duplicates()
        preds = preds.merge(latest, on=[*_replicate_cols(), "run_id"], how="inner")
    return Side(ident, key, rec, preds)


def _num_labels(task: str, labels: np.ndarray, preds: np.ndarray) -> int:
    """The task's label count (from its config, as the records used), else what the data shows."""
    path = Path(CONF_DIR) / "task" / f"{task}.yaml"
    if path.is_file():
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
    cells: pd.DataFrame   # one row per (source, target): a, b, delta, ci_low, ci_high, p, significant, method, n

    def methods(self) -> list[str]:
        return sorted(set(self.cells["method"]))


def _cell_predictions(side: Side, source: str, target: str) -> pd.DataFrame:
    p = side.predictions
    return p[(p["source"] == source) & (p["target"] == target)] if not p.empty else p


def _stack(preds: pd.DataFrame, examples: np.ndarray) -> np.ndarray:
    """(replicates, n) predictions on ``examples`` in that order."""
    rows = []
    for _, rep in preds.groupby(["seed", "shot_set"]):
        rows.append(rep.drop_duplicates("example", keep="last").set_index("example").loc[examples, "pred"].to_numpy())
    return np.asarray(rows, dtype=np.int64)


def compare(results_dir: str | Path, a: str, b: str, metric: str = "accuracy", n_boot: int = 1000, seed: int = 0,
            alpha: float = 0.05, selection: str | None = None, k: int | None = None) -> Comparison:
    if metric not in METRICS:
        raise XlexpError(f"compare knows the metrics {', '.join(METRICS)}; got '{metric}'")
    if n_boot < 100:
        raise XlexpError(f"--n-boot must be at least 100, got {n_boot}")
    df = require_records(results_dir)
    side_a, side_b = resolve_side(df, results_dir, a, selection, k), resolve_side(df, results_dir, b, selection, k)
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
        if len(shared):
            shared = np.sort(shared)
            labels = pa.drop_duplicates("example", keep="last").set_index("example").loc[shared, "label"].to_numpy()
            labels_b = pb.drop_duplicates("example", keep="last").set_index("example").loc[shared, "label"].to_numpy()
            if not np.array_equal(labels, labels_b):
                raise XlexpError(f"cell {source}->{target}: '{a}' and '{b}' have different labels for the same test "
                                 "examples; they were not run on the same test split")
            preds_a, preds_b = _stack(pa, shared), _stack(pb, shared)
            num_labels = _num_labels(side_a.key.task, labels, np.concatenate([preds_a.ravel(), preds_b.ravel()]))
            test = paired_bootstrap(labels.astype(np.int64), preds_a, preds_b, metric, n_boot, rng, num_labels)
        else:
            va = side_a.records[(side_a.records["source"] == source) & (side_a.records["target"] == target)
                                & (side_a.records["metric"] == metric)]["value"].to_numpy(dtype=float)
            vb = side_b.records[(side_b.records["source"] == source) & (side_b.records["target"] == target)
                                & (side_b.records["metric"] == metric)]["value"].to_numpy(dtype=float)
            if not len(va) or not len(vb):
                continue
            test = seed_bootstrap(va, vb, n_boot, rng)
        rows.append({"source": source, "target": target, **test.__dict__,
                     "significant": bool(not np.isnan(test.p) and test.p < alpha)})
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
    names = {"examples": f"paired bootstrap over test examples ({c.n_boot} resamples)",
             "seeds": f"bootstrap over seeds ({c.n_boot} resamples; no per-example predictions)",
             "none": "no test (one seed per side and no predictions)"}
    counts = c.cells["method"].value_counts()
    return "; ".join(f"{names[m]}: {counts[m]} cell(s)" for m in c.methods())


def render(c: Comparison) -> Table:
    delta, p = delta_matrix(c)
    transpose = delta.shape[1] > delta.shape[0] and (delta.shape[0] <= 3 or delta.shape[1] > 14)
    if transpose:
        delta, p = delta.T, p.T
    title = f"{c.metric}: {c.b} − {c.a} (test)"
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("target \\ source" if transpose else "source \\ target", style="bold")
    for col in delta.columns:
        table.add_column(str(col), justify="right")
    for row in delta.index:
        cells = []
        for col in delta.columns:
            d, pv = delta.at[row, col], p.at[row, col]
            cells.append("" if pd.isna(d) else f"[{'green' if d > 0 else 'red' if d < 0 else 'white'}]{d:+.3f}"
                         f"{mark(pv, c.alpha)}[/]")
        table.add_row(f"{row} ({display_name(str(row))})" if transpose else str(row), *cells)
    return table


def legend(c: Comparison) -> str:
    return (f"B − A with B = {c.b}, A = {c.a}; * p < {c.alpha:g}, ** p < {c.alpha / 5:g} (two-sided).\n"
            f"{describe_methods(c)}.")


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
    """Delta matrix as a diverging heatmap centred on 0; each cell shows the delta and its mark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    delta, p = delta_matrix(c)
    if delta.shape[1] > 30 and delta.shape[1] > delta.shape[0]:
        delta, p = delta.T, p.T
    rows, cols = delta.shape
    values = delta.to_numpy(dtype=float)
    vmax = max(float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0, 0.01)
    fig, ax = plt.subplots(figsize=(min(2.5 + 0.7 * cols, 40), min(1.8 + 0.4 * rows, 80)))
    im = ax.imshow(values, cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_xticks(range(cols), [str(x) for x in delta.columns], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(rows), [str(x) for x in delta.index], fontsize=8)
    if rows * cols <= 400:
        for r in range(rows):
            for col in range(cols):
                v = values[r, col]
                if not np.isnan(v):
                    ax.text(col, r, f"{v:+.3f}{mark(p.iat[r, col], c.alpha)}", ha="center", va="center", fontsize=7,
                            color="white" if abs(v) > 0.6 * vmax else "black")
    fig.colorbar(im, ax=ax, fraction=0.03, label=f"Δ {c.metric} (B − A)")
    ax.set_title(f"{c.b} − {c.a}: {c.metric} (test); * p<{c.alpha:g}, ** p<{c.alpha / 5:g}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
