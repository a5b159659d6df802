"""Active matrix filling: which sources to train next so the rest of the matrix is predicted best.

A source that is not trained is a row without measured cells; the completion
(``xlexp.predict.complete``) predicts it by borrowing bias and factors from similar trained
sources. Its error therefore shrinks with its similarity to the nearest trained source, and the
sources worth training are the ones that cover the others: greedy facility location over
``source_similarity`` (URIEL, plus model similarity when computed), each row weighted by how
uncertain its prediction is now (its mean interval width, 1 before anything is measured). Greedy
facility location is within (1 - 1/e) of the best set for this objective.
"""

from __future__ import annotations

import numpy as np


def choose_sources(
    similarity: np.ndarray, budget: int, measured: list[int] | None = None, uncertainty: np.ndarray | None = None
) -> list[int]:
    """Indices of up to ``budget`` new sources (rows of ``similarity``), best first; ``measured``
    rows are already trained (they cover others but are not chosen again)."""
    n = similarity.shape[0]
    sim = np.clip(np.nan_to_num(similarity, nan=0.0), 0.0, 1.0)
    np.fill_diagonal(sim, 1.0)
    weight = np.ones(n) if uncertainty is None else np.nan_to_num(uncertainty, nan=float(np.nanmean(uncertainty)))
    measured = list(measured or [])
    cover = sim[:, measured].max(1) if measured else np.zeros(n)
    chosen: list[int] = []
    for _ in range(min(budget, n - len(measured))):
        candidates = [c for c in range(n) if c not in measured and c not in chosen]
        gains = [float((weight * (np.maximum(cover, sim[:, c]) - cover)).sum()) for c in candidates]
        best = candidates[int(np.argmax(gains))]
        chosen.append(best)
        cover = np.maximum(cover, sim[:, best])
    return chosen


def row_uncertainty(low: np.ndarray, high: np.ndarray, observed: np.ndarray) -> np.ndarray | None:
    """Mean interval width of each row's predicted cells (0 for a fully measured row); None when
    no interval is finite (nothing measured yet)."""
    width = np.where(observed, 0.0, high - low)
    width = np.where(np.isfinite(width), width, np.nan)
    if not np.isfinite(width).any():
        return None
    with np.errstate(all="ignore"):
        return np.nan_to_num(np.nanmean(width, axis=1), nan=float(np.nanmax(width)))


def sequential_choice(similarity: np.ndarray, budget: int, measured: list[int] | None, uncertainty_of) -> list[int]:
    """``budget`` picks one at a time, as ``xlexp predict --fill`` trains them: after each pick,
    ``uncertainty_of(measured rows)`` (row widths from a completion on what is measured, or None)
    re-weights the next choice; it may also return ``(widths, similarity)``: the source similarity
    the completion itself used (``Completion.row_sim``, sharpened by the measured profiles), so the
    chooser covers the sources the way the completion will borrow from them."""
    measured = list(measured or [])
    picks: list[int] = []
    for _ in range(budget):
        weight = uncertainty_of(measured + picks) if measured or picks else None
        sim = similarity
        if isinstance(weight, tuple):  # (row widths, the completion's own source similarity) as ``complete`` returns
            weight, sim = weight[0], (weight[1] if weight[1] is not None else similarity)
        nxt = choose_sources(sim, 1, measured + picks, weight)
        if not nxt:
            break
        picks += nxt
    return picks
