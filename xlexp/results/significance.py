"""Significance of a difference between two sets of results: bootstraps for ``xlexp compare``.

Which variance a test covers decides what its p-value means:

- **hierarchical** (``hierarchical_bootstrap``; several training seeds on *both* sides): each
  resample draws the test examples with replacement (the same draw for both sides: paired) and,
  independently per side, that side's seeds with replacement; a side's score is the mean over its
  drawn seeds of the metric on the drawn examples. The p-value is then the chance of a difference
  at least this large if the two configs were equally good, *for another training seed and another
  test sample from the same distribution*: two seeds of one config are not "significant".
- **paired bootstrap over test examples** (one seed on a side): the seeds are fixed, only the test
  sample varies. Its p-value answers "are *these trained models* different on this test
  distribution?", not "is config B better than config A?": training-seed noise alone is often
  called significant, so ``xlexp compare`` warns when it falls back to it.
- **bootstrap over seeds** (no per-example predictions): the seeds of A and of B are resampled
  separately (unpaired); test-sample variance is not covered.

Pure numerics on arrays: it knows nothing of the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from xlexp.errors import XlexpError

METRICS = ("accuracy", "macro_f1", "exact_match", "f1")
SCORE_METRICS = ("exact_match", "f1")  # extractive QA: the mean of per-question scores (stored with the predictions)
CHUNK = 200  # bootstrap resamples per vectorised block (bounds memory on large test sets)


def resample_weights(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) counts: how often each example is drawn in each resample (sum n per row)."""
    idx = rng.integers(0, n, size=(n_boot, n))
    weights = np.zeros((n_boot, n), dtype=np.float64)
    np.add.at(weights, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
    return weights


def sklearn_metric(metric: str, labels: np.ndarray, preds: np.ndarray, num_labels: int) -> float:
    """The point estimate, computed as the records' values are (macro-F1 over the labels present in the
    gold or the predictions, zero_division=0: ``xlexp.engine.inference.macro_f1``)."""
    if metric == "accuracy":
        return float(accuracy_score(labels, preds))
    return float(f1_score(labels, preds, average="macro", zero_division=0))


def weighted_metric(
    metric: str, labels: np.ndarray, preds: np.ndarray, weights: np.ndarray, num_labels: int
) -> np.ndarray:
    """The metric of each weighted resample: ``weights`` (B, n) over examples -> (B,).

    With all weights 1 this is exactly sklearn's accuracy / macro-F1 over the labels present in the
    resample's gold or predictions, zero_division=0 (what the records hold); tests check that. A
    label absent from a resample (drawn zero times on both sides) is left out of that resample's mean."""
    if metric == "accuracy":
        return weights @ (preds == labels).astype(np.float64) / weights.sum(axis=1)
    if metric == "macro_f1":
        eye = np.eye(num_labels)
        true_1h, pred_1h = eye[labels], eye[preds]
        tp = weights @ (true_1h * pred_1h)
        denom = weights @ true_1h + weights @ pred_1h  # 2tp + fp + fn
        present = denom > 0
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=present)
        return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    raise XlexpError(f"compare knows the metrics {', '.join(METRICS)}; got '{metric}'")


@dataclass
class Test:
    a: float
    b: float
    delta: float
    ci_low: float
    ci_high: float
    p: float
    method: str  # hierarchical | examples | seeds | none
    n: int  # examples (paired) or seeds A+B


def _p_value(replicates: np.ndarray, delta: float) -> float:
    """Two-sided bootstrap p-value: how often the centred bootstrap delta is as extreme as the
    observed one (the null distribution is the bootstrap one shifted to 0)."""
    extreme = np.abs(replicates - delta) >= abs(delta) - 1e-12
    return float((1 + extreme.sum()) / (1 + len(replicates)))


def _finish(a: float, b: float, replicates: np.ndarray, method: str, n: int) -> Test:
    delta = b - a
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return Test(a, b, delta, float(lo), float(hi), _p_value(replicates, delta), method, n)


def paired_bootstrap(
    labels: np.ndarray,
    preds_a: np.ndarray,
    preds_b: np.ndarray,
    metric: str,
    n_boot: int,
    rng: np.random.Generator,
    num_labels: int,
) -> Test:
    """``preds_a`` (seeds_a, n) and ``preds_b`` (seeds_b, n) on the same n examples with ``labels``."""
    point = lambda preds: float(np.mean([sklearn_metric(metric, labels, p, num_labels) for p in preds]))  # noqa: E731
    reps = []
    for start in range(0, n_boot, CHUNK):
        w = resample_weights(len(labels), min(CHUNK, n_boot - start), rng)
        ma = np.mean([weighted_metric(metric, labels, p, w, num_labels) for p in preds_a], axis=0)
        mb = np.mean([weighted_metric(metric, labels, p, w, num_labels) for p in preds_b], axis=0)
        reps.append(mb - ma)
    return _finish(point(preds_a), point(preds_b), np.concatenate(reps), "examples", len(labels))


def _seed_draws(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``values`` (seeds, B): per resample b, the mean over ``seeds`` seeds drawn with replacement."""
    seeds, n_boot = values.shape
    draws = rng.integers(0, seeds, size=(n_boot, seeds))
    return values[draws, np.arange(n_boot)[:, None]].mean(axis=1)


def hierarchical_bootstrap(
    labels: np.ndarray,
    preds_a: np.ndarray,
    preds_b: np.ndarray,
    metric: str,
    n_boot: int,
    rng: np.random.Generator,
    num_labels: int,
) -> Test:
    """Seeds and examples resampled together (see the module docstring): ``preds_a`` (seeds_a, n) and
    ``preds_b`` (seeds_b, n) on the same n examples, each side with at least two seeds."""
    point = lambda preds: float(np.mean([sklearn_metric(metric, labels, p, num_labels) for p in preds]))  # noqa: E731
    reps = []
    for start in range(0, n_boot, CHUNK):
        w = resample_weights(len(labels), min(CHUNK, n_boot - start), rng)
        ma = np.stack([weighted_metric(metric, labels, p, w, num_labels) for p in preds_a])  # (seeds_a, B)
        mb = np.stack([weighted_metric(metric, labels, p, w, num_labels) for p in preds_b])
        reps.append(_seed_draws(mb, rng) - _seed_draws(ma, rng))
    return _finish(point(preds_a), point(preds_b), np.concatenate(reps), "hierarchical", len(labels))


def hierarchical_score_bootstrap(
    scores_a: np.ndarray, scores_b: np.ndarray, n_boot: int, rng: np.random.Generator
) -> Test:
    """``hierarchical_bootstrap`` for per-example scores (QA exact match / F1): (seeds, n) per side."""
    reps = []
    for start in range(0, n_boot, CHUNK):
        w = resample_weights(scores_a.shape[1], min(CHUNK, n_boot - start), rng)
        ma = scores_a @ w.T / w.sum(axis=1)  # (seeds_a, B)
        mb = scores_b @ w.T / w.sum(axis=1)
        reps.append(_seed_draws(mb, rng) - _seed_draws(ma, rng))
    return _finish(
        float(scores_a.mean()), float(scores_b.mean()), np.concatenate(reps), "hierarchical", scores_a.shape[1]
    )


def paired_score_bootstrap(scores_a: np.ndarray, scores_b: np.ndarray, n_boot: int, rng: np.random.Generator) -> Test:
    """Metrics that are a mean of per-example scores (QA exact match / F1): ``scores_a`` (seeds_a, n)
    and ``scores_b`` (seeds_b, n) on the same n examples; each resample reweights the examples."""
    a, b = float(scores_a.mean()), float(scores_b.mean())
    ma_all, mb_all = scores_a.mean(axis=0), scores_b.mean(axis=0)  # the seed mean per example
    reps = []
    for start in range(0, n_boot, CHUNK):
        w = resample_weights(len(ma_all), min(CHUNK, n_boot - start), rng)
        reps.append((w @ mb_all - w @ ma_all) / w.sum(axis=1))
    return _finish(a, b, np.concatenate(reps), "examples", len(ma_all))


def seed_bootstrap(values_a: np.ndarray, values_b: np.ndarray, n_boot: int, rng: np.random.Generator) -> Test:
    """Per-seed scores of A and of B, each side's seeds resampled with replacement."""
    a, b = float(np.mean(values_a)), float(np.mean(values_b))
    if len(values_a) + len(values_b) < 3:
        return Test(a, b, b - a, np.nan, np.nan, np.nan, "none", len(values_a) + len(values_b))
    ra = rng.choice(values_a, size=(n_boot, len(values_a))).mean(axis=1)
    rb = rng.choice(values_b, size=(n_boot, len(values_b))).mean(axis=1)
    return _finish(a, b, rb - ra, "seeds", len(values_a) + len(values_b))
