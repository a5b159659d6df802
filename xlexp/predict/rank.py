"""Source recommendation for one target: the completed column, ranked, with what drove it.

Measured cells keep their measured value (marked ``measured``); predicted ones come with their
interval. The drivers of a prediction are the side features whose contribution ``w_k·x[s,t,k]``
(standardised features) lifts or lowers this source most compared with the average candidate
source for the target, plus the source's own bias ("source quality") when the row has cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xlexp.predict.complete import Completion, _standardise
from xlexp.results.languages import normalize_tag


def transfer_candidates(sources: list[str], target: str) -> list[int]:
    """Sources that are another language than the target (the in-language cell is no transfer)."""
    base = normalize_tag(target).split("-")[0]
    return [i for i, s in enumerate(sources) if normalize_tag(s).split("-")[0] != base]


def recommend(
    completion: Completion,
    y: np.ndarray,
    sources: list[str],
    targets: list[str],
    target: str,
    side: np.ndarray | None,
    names: list[str],
    k: int = 5,
    n_drivers: int = 2,
) -> pd.DataFrame:
    """Top-``k`` sources for ``target``: rank, source, score, low, high, measured, drivers."""
    j = targets.index(target)
    cand = transfer_candidates(sources, target)
    x = _standardise(side, y.shape) if side is not None and side.shape[-1] else None
    rows = []
    for i in cand:
        measured = bool(completion.observed[i, j])
        score = float(y[i, j]) if measured else float(completion.mean[i, j])
        drivers = ""
        if x is not None and names:
            contrib = np.array([completion.weights.get(n, 0.0) for n in names]) * (x[i, j] - x[cand, j].mean(0))
            order = np.argsort(-np.abs(contrib))[:n_drivers]
            drivers = ", ".join(f"{names[o]} {contrib[o]:+.3g}" for o in order if abs(contrib[o]) > 1e-9)
        rows.append(
            dict(
                source=sources[i],
                score=score,
                low=np.nan if measured else float(completion.low[i, j]),
                high=np.nan if measured else float(completion.high[i, j]),
                measured=measured,
                drivers=drivers,
            )
        )
    out = pd.DataFrame(rows).sort_values("score", ascending=False, kind="stable").head(k).reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    return out
