"""How good the predictions are, measured on a complete matrix by hiding what is known.

- ``mask_evaluation``: keep a random ``observed`` fraction of the cells (10 masks each), complete,
  and score the hidden cells: MAE, Spearman, and how often the interval covers the truth. The
  completion is compared with its own ablations (biases only; biases + features + language prior;
  the low-rank ensemble without the language prior): what each ingredient buys.
- ``loto_ranking``: leave one target out (its whole column hidden, every other cell observed),
  rank the transfer sources for it (the target's own language excluded) and score NDCG@3 and
  whether the top 3 holds the best source, against the baselines of the issue: English always
  (then the sources best on the other targets), URIEL distance only (the smallest mean distance
  first), and a LangRank-style ranker (gradient-boosted trees on LangRank's kind of features:
  URIEL distances, script, training size, sub-word overlap; no model similarity, and pointwise
  regression on relevance since sklearn has no LambdaRank). Relevance of the source ranked r-th
  (0-based) by the true scores is ``max(0, L - r)`` with ``L = min(10, candidates)``, LangRank's
  graded top-10.
- ``active_evaluation``: train only ``budget`` sources (whole rows observed), predict the other
  rows, MAE on them: ``xlexp.predict.active.sequential_choice`` (as ``xlexp predict --fill`` picks)
  against random picks of as many.

Each mask, target or random set is one job, seeded by its own arguments (every completion runs with
one BLAS thread: ``complete``); ``jobs`` spreads them over processes (joblib, which scikit-learn
brings) with the same results.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from itertools import combinations
from math import comb

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

from xlexp.predict.active import row_uncertainty, sequential_choice
from xlexp.predict.complete import CompletionSettings, complete
from xlexp.predict.features import PairFeatures
from xlexp.predict.rank import transfer_candidates
from xlexp.results.languages import normalize_tag

OURS = "xlexp (low-rank ensemble + features + language prior)"
MODEL_FEATURES = ("model_similarity", "vocab_overlap")


def _side(features: PairFeatures | None, drop: tuple[str, ...] = ()) -> tuple[np.ndarray | None, list[str]]:
    if features is None:
        return None, []
    keep = [n for n in features.names if n not in drop]
    return features.subset(keep).values, keep


def _map(fn, items: list[tuple], jobs: int, on_step: Callable[[int, int], None] | None) -> list:
    """``[fn(*item) for item in items]``, in order, on ``jobs`` processes (joblib; 1: in this process,
    -1: every core), calling ``on_step(done, total)`` as results arrive. Each item is one completion
    or a few, seeded by its own arguments: the results do not depend on ``jobs`` (tested)."""
    total = len(items)
    if jobs == 1 or total < 2:
        results = (fn(*item) for item in items)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=jobs, return_as="generator")(delayed(fn)(*item) for item in items)
    out = []
    for r in results:
        out.append(r)
        if on_step:
            on_step(len(out), total)
    return out


def mask_evaluation(
    y: np.ndarray,
    features: PairFeatures | None,
    fractions=(0.05, 0.1, 0.2),
    n_masks: int = 10,
    cfg: CompletionSettings = CompletionSettings(),
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> pd.DataFrame:
    """MAE, Spearman and interval coverage on the hidden cells of ``n_masks`` random masks per observed
    fraction, for xlexp and its ablations. Every method, "biases only" included, gives a language
    without any observed cell the similarity-weighted mean of the others' biases (``complete``'s
    ``borrow``), so at 5% observed the language similarity reaches every row of the table.
    ``on_step(done, total)`` is called after each mask (a progress bar); ``jobs``: see ``_map``."""
    items = [(y, features, frac, m, cfg, seed) for frac in fractions for m in range(n_masks)]
    rows = [r for part in _map(_one_mask, items, jobs, on_step) for r in part]
    per = pd.DataFrame(rows)
    out = (
        per.groupby(["observed", "method"], sort=False)
        .agg(
            mae=("mae", "mean"),
            mae_sd=("mae", "std"),
            spearman=("spearman", "mean"),
            coverage=("coverage", "mean"),
            masks=("mask", "count"),
        )
        .reset_index()
    )
    return out


def _one_mask(
    y: np.ndarray, features: PairFeatures | None, frac: float, m: int, cfg: CompletionSettings, seed: int
) -> list[dict]:
    side, names = _side(features)
    methods = {  # the ablations: how the default was chosen (BENCHMARKS.md §10)
        "biases only (no features, no language prior)": (replace(cfg, rank=0, prior=0.0), None),
        "biases + features + language prior": (replace(cfg, rank=0), side),
        "ensemble without language prior": (replace(cfg, prior=0.0), side),
        OURS: (cfg, side),
    }
    mask = np.random.default_rng(seed + m).random(y.shape) < frac
    if mask.sum() < 2:
        return []
    hidden = ~mask & np.isfinite(y)
    rows = []
    for method, (c, x) in methods.items():
        res = complete(
            y,
            mask,
            x,
            replace(c, folds=c.folds if method == OURS else 1),
            names,
            features.source_similarity if features else None,
            features.target_similarity if features else None,
        )
        p, t = res.mean[hidden], y[hidden]
        covered = ((t >= res.low[hidden]) & (t <= res.high[hidden])).mean() if method == OURS else np.nan
        rows.append(
            dict(
                method=method,
                observed=frac,
                mask=m,
                mae=float(np.abs(p - t).mean()),
                spearman=float(spearmanr(p, t)[0]),
                coverage=float(covered),
            )
        )
    return rows


def ndcg_at(predicted: np.ndarray, truth: np.ndarray, k: int = 3) -> float:
    n = len(truth)
    levels = min(10, n)
    true_rank = np.empty(n, dtype=int)
    true_rank[np.argsort(-truth, kind="stable")] = np.arange(n)
    rel = np.maximum(0, levels - true_rank).astype(float)
    discount = 1 / np.log2(np.arange(2, k + 2))
    top = np.argsort(-predicted, kind="stable")[:k]
    ideal = np.sort(rel)[::-1][:k]
    return float((rel[top] * discount[: len(top)]).sum() / (ideal * discount[: len(ideal)]).sum())


def _langrank_features(features: PairFeatures) -> tuple[np.ndarray, list[str]]:
    """LangRank's kind of features, rounded to 1e-9: the URIEL means differ in their last bits with the
    BLAS thread count (5e-14 on xpos), and the trees' bins turned that into NDCG@3 0.404 or 0.410."""
    keep = [
        n for n in features.names if n.startswith("uriel_") or n in ("script_match", "log_train_size", "vocab_overlap")
    ]
    return np.round(features.subset(keep).values, 9), keep


def loto_ranking(
    y: np.ndarray,
    features: PairFeatures,
    cfg: CompletionSettings = CompletionSettings(),
    k: int = 3,
    english: str | None = None,
    on_step: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> pd.DataFrame:
    """Per method: mean NDCG@k over targets, how often the top k holds the best source, targets scored.
    One completion per target (its column hidden): the slow part of ``--evaluate`` on wide matrices
    (205 targets: ~50 min on 2 cores, one process); ``on_step(done, total)`` is called after each
    target; ``jobs``: see ``_map``."""
    sources = features.sources
    english = english or next((s for s in sources if normalize_tag(s).split("-")[0] == "en"), None)
    items = [(y, features, j, cfg, k, english) for j in range(len(features.targets))]
    scores: dict[str, list[tuple[float, bool]]] = {}
    for part in _map(_one_target, items, jobs, on_step):
        for method, ndcg, best in part:
            scores.setdefault(method, []).append((ndcg, best))
    rows = [
        dict(
            method=m,
            ndcg=float(np.mean([a for a, _ in v])),
            best_in_top=float(np.mean([b for _, b in v])),
            targets=len(v),
        )
        for m, v in scores.items()
    ]
    return pd.DataFrame(rows)


def _one_target(
    y: np.ndarray, features: PairFeatures, j: int, cfg: CompletionSettings, k: int, english: str | None
) -> list[tuple[str, float, bool]]:
    """Every method's (NDCG@k, best in top k) for target ``j`` with its whole column hidden."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    sources, targets = features.sources, features.targets
    cand = [i for i in transfer_candidates(sources, targets[j]) if np.isfinite(y[i, j])]
    if len(cand) < 2:
        return []
    side, names = _side(features)
    side_nomodel, names_nomodel = _side(features, MODEL_FEATURES)
    cfg1 = replace(cfg, folds=1)
    truth = y[cand, j]
    out = []

    def add(method: str, pred: np.ndarray) -> None:
        out.append((method, ndcg_at(pred, truth, k), bool(np.argmax(truth) in np.argsort(-pred, kind="stable")[:k])))

    mask = np.isfinite(y)
    mask[:, j] = False
    res = complete(y, mask, side, cfg1, names, features.source_similarity, features.target_similarity)
    add(OURS, res.mean[cand, j])
    if len(names_nomodel) < len(names):
        res = complete(
            y, mask, side_nomodel, cfg1, names_nomodel, features.source_similarity, features.target_similarity
        )
        add("xlexp without model similarity", res.mean[cand, j])
    others = [jj for jj in range(len(targets)) if jj != j]
    if english is not None:
        quality = np.nanmean(y[:, others], axis=1)
        add("English always", quality[cand] + np.array([1e6 if sources[i] == english else 0.0 for i in cand]))
    uriel = [n for n in features.names if n.startswith("uriel_")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pair without any URIEL distance: ranked last
        dist = np.nanmean(features.subset(uriel).values[cand, j], axis=-1) if uriel else np.zeros(len(cand))
    add("URIEL distance only", -np.where(np.isfinite(dist), dist, 1.0))
    # LangRank-style: trees on the other targets' cells, relevance-normalised per target
    lr_x, _ = _langrank_features(features)
    xs, ys = [], []
    for jj in others:
        cc = [i for i in transfer_candidates(sources, targets[jj]) if np.isfinite(y[i, jj])]
        if len(cc) < 2:
            continue
        col = y[cc, jj]
        xs.append(lr_x[cc, jj])
        ys.append((col - col.mean()) / (col.std() + 1e-9))
    model = HistGradientBoostingRegressor(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=min(20, max(2, len(np.concatenate(ys)) // 10)),
        random_state=0,
    )
    train_x = np.concatenate(xs)
    cols = np.isfinite(train_x).any(axis=0)  # the trees cannot bin a feature without any value
    with threadpool_limits(1):  # small fits: OpenMP threads only contend (65 s vs 1 s on a busy 2-core box)
        model.fit(train_x[:, cols], np.concatenate(ys))
        add("LangRank-style (no model similarity)", model.predict(lr_x[cand, j][:, cols]))
    return out


def active_evaluation(
    y: np.ndarray,
    features: PairFeatures,
    budget: int,
    n_random: int = 20,
    cfg: CompletionSettings = CompletionSettings(),
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> pd.DataFrame:
    """MAE on the rows not trained, when ``budget`` whole rows are: the chooser vs random picks.
    ``on_step(done, total)`` is called after the chooser's set and after each random set; ``jobs``
    (the random sets; the chooser is sequential): see ``_map``."""
    side, names = _side(features)
    n = y.shape[0]
    cfg1 = replace(cfg, folds=1)

    def widths(rows: list[int]):
        mask = np.zeros(y.shape, dtype=bool)
        mask[rows] = True
        mask &= np.isfinite(y)
        res = complete(
            y,
            mask,
            side,
            replace(cfg, folds=min(cfg.folds, 3)),
            names,
            features.source_similarity,
            features.target_similarity,
        )
        return row_uncertainty(res.low, res.high, res.observed), res.row_sim

    chosen = sequential_choice(features.source_similarity, budget, [], widths)
    rng = np.random.default_rng(seed)
    exhaustive = comb(n, budget) <= 50  # few sources: every set of that size, the exact expectation of a random choice
    if exhaustive:
        draws = [list(c) for c in combinations(range(n), budget)]
    else:
        draws = [list(rng.choice(n, budget, replace=False)) for _ in range(n_random)]
    active = _rows_mae(y, features, chosen, cfg1)
    if on_step:
        on_step(1, 1 + len(draws))
    step = (lambda done, total: on_step(done + 1, total + 1)) if on_step else None
    randoms = _map(_rows_mae, [(y, features, d, cfg1) for d in draws], jobs, step)
    return pd.DataFrame(
        [
            dict(
                method="active (xlexp sequential_choice)",
                budget=budget,
                mae=active,
                mae_sd=np.nan,
                sources=" ".join(features.sources[i] for i in chosen),
            ),
            dict(
                method=f"random ({len(draws)} {'sets: every one' if exhaustive else 'draws'})",
                budget=budget,
                mae=float(np.mean(randoms)),
                mae_sd=float(np.std(randoms)),
                sources="",
            ),
        ]
    )


def _rows_mae(y: np.ndarray, features: PairFeatures, rows: list[int], cfg: CompletionSettings) -> float:
    """MAE on every other row when the whole ``rows`` are measured."""
    side, names = _side(features)
    mask = np.zeros(y.shape, dtype=bool)
    mask[rows] = True
    mask &= np.isfinite(y)
    res = complete(y, mask, side, cfg, names, features.source_similarity, features.target_similarity)
    hidden = ~mask & np.isfinite(y)
    return float(np.abs(res.mean[hidden] - y[hidden]).mean())
