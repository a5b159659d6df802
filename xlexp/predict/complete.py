"""Matrix completion: every missing source x target cell gets a predicted score and an interval.

The model (chosen by measurement on the 65 x 105 xpos UD-POS matrix, see BENCHMARKS.md) is a
biased low-rank factorisation with side features, fitted by alternating ridge regressions:

    y[s, t] ≈ μ + a[s] + b[t] + w · x[s, t] + u[s] · v[t]

``a``/``b`` are how good a source is and how easy a target is, ``x`` the pair features of
``xlexp.predict.features`` (URIEL distances, same language, script match, model similarity, ...;
NaN -> the column mean, so a missing feature only removes information), and ``u·v`` a rank-r
interaction. Everything is ridge-shrunk: with 5-10 % of cells observed most rows and columns have
a handful of cells, and an unshrunk fit chases noise.

The rank (0, 1 or 2) and the ridge on the factors are chosen per matrix by K-fold
cross-validation on the observed cells (``candidates``): at 5 % of xpos observed every mask falls
back to rank 0, at 10-20 % rank 1-2 wins. The factors start from the SVD of the residual after
the biases. A row (source) or column (target) without any observed cell borrows its bias and
factors from similar languages (``row_sim``/``col_sim``: URIEL, model similarity): that is how a
source never trained gets a row.

Intervals come from K-fold refits on the observed cells: the spread of the K fits is each cell's
own uncertainty (a target with two observed cells is less certain than one with twenty), and a
conformal factor scales it so that the out-of-fold residuals of the observed cells are covered at
``level`` (CV+ in spirit). The point prediction is the fit on every observed cell (bagging
bootstrap fits was measured and lost: at 10 % observed, a resample that drops a third of a
row's four cells hurts more than averaging helps). The out-of-fold MAE is reported as an honest
estimate of the error on missing cells.

Imports: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class CompletionSettings:
    rank: int = -1            # -1: choose among ``candidates`` (rank 0/1/2) by out-of-fold MAE
    lam: float = 0.44         # ridge on the factors u, v (the matrix is fitted in standard-deviation units)
    lam_bias: float = 1.0     # ridge on the biases a, b
    lam_side: float = 1.0     # ridge on the feature weights w
    iters: int = 25
    folds: int = 5            # cross-validation folds for the intervals (and the honest error estimate)
    level: float = 0.9        # interval coverage aimed at
    seed: int = 0


@dataclass
class Completion:
    mean: np.ndarray          # sources x targets, every cell (observed cells: the fit, not the measurement)
    low: np.ndarray
    high: np.ndarray
    observed: np.ndarray      # bool mask of the measured cells
    oob_mae: float            # out-of-fold MAE on observed cells: an honest estimate of the error
    weights: dict[str, float] = field(default_factory=dict)  # feature -> weight (standardised features)
    settings: CompletionSettings | None = None                # the settings used (rank chosen when auto)


def _standardise(side: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if side is None or side.shape[-1] == 0:
        return np.zeros((*shape, 0))
    x = side.astype(float).copy()
    for k in range(x.shape[-1]):
        col = x[..., k]
        mean = np.nanmean(col) if np.isfinite(col).any() else 0.0
        col[~np.isfinite(col)] = mean
        sd = col.std()
        x[..., k] = (col - mean) / (sd if sd > 0 else 1.0)
    return x


def _borrow(values: np.ndarray, cold: np.ndarray, sim: np.ndarray | None) -> np.ndarray:
    """Rows of ``values`` (biases or factors) for cold rows: the similarity-weighted mean of the
    warm rows (0, the prior, where no warm row is similar or no similarity is given)."""
    if sim is None or not cold.any() or cold.all():
        return values
    out = values.copy()
    w = np.clip(np.nan_to_num(sim[np.ix_(cold, ~cold)]), 0, None)
    total = w.sum(1, keepdims=True)
    borrowed = (w @ values[~cold].reshape((~cold).sum(), -1)) / np.where(total > 0, total, 1)
    out[cold] = np.where(total > 0, borrowed, 0.0).reshape(out[cold].shape)
    return out


def fit(y: np.ndarray, mask: np.ndarray, side: np.ndarray, cfg: CompletionSettings,
        weight: np.ndarray | None = None, rng: np.random.Generator | None = None,
        row_sim: np.ndarray | None = None, col_sim: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One alternating-ridge fit on the cells where ``mask`` (times ``weight``); returns the full
    prediction and the feature weights. A row (column) without any observed cell borrows its bias
    and factor from similar rows (``row_sim``, sources x sources; ``col_sim`` likewise)."""
    n_s, n_t = y.shape
    w_cell = (mask * (1.0 if weight is None else weight)).astype(float)
    y0 = np.where(mask, y, 0.0)
    total = w_cell.sum()
    mu = (w_cell * y0).sum() / max(total, 1e-9)
    a, b = np.zeros(n_s), np.zeros(n_t)
    n_f = side.shape[-1]
    w = np.zeros(n_f)
    rng = rng or np.random.default_rng(0)
    u, v = np.zeros((n_s, cfg.rank)), np.zeros((n_t, cfg.rank))
    eye_r = np.eye(cfg.rank)
    flat_x = side.reshape(-1, n_f) if n_f else None
    for it in range(cfg.iters):
        if it == 3 and cfg.rank:
            # factors start from the SVD of the residual after biases (observed cells, scaled by the
            # observed share): a small random start with a ridge above its scale collapses to zero
            r = np.where(w_cell > 0, y0 - mu - a[:, None] - b[None] - (side @ w if n_f else 0.0), 0.0)
            share = max((w_cell > 0).mean(), 1e-9)
            left, sing, right = np.linalg.svd(r / share, full_matrices=False)
            k = min(cfg.rank, len(sing))
            u[:, :k] = left[:, :k] * np.sqrt(sing[:k])
            v[:, :k] = right[:k].T * np.sqrt(sing[:k])
            u += rng.normal(0, 1e-3, u.shape)
        sx = side @ w if n_f else 0.0
        inter = u @ v.T
        r = y0 - mu - sx - inter
        a = (w_cell * (r - b[None])).sum(1) / (w_cell.sum(1) + cfg.lam_bias)
        b = (w_cell * (r - a[:, None])).sum(0) / (w_cell.sum(0) + cfg.lam_bias)
        if n_f:
            r = (y0 - mu - a[:, None] - b[None] - inter).ravel()
            xw = flat_x * w_cell.reshape(-1, 1)
            w = np.linalg.solve(flat_x.T @ xw + cfg.lam_side * np.eye(n_f), xw.T @ r)
            sx = side @ w
        if cfg.rank and it >= 3:
            r = y0 - mu - a[:, None] - b[None] - sx
            # rows: u[s] = (V' W_s V + λI)^-1 V' W_s r[s]
            g = np.einsum("st,tk,tl->skl", w_cell, v, v) + cfg.lam * eye_r
            u = np.linalg.solve(g, np.einsum("st,tk->sk", w_cell * r, v)[..., None])[..., 0]
            g = np.einsum("st,sk,sl->tkl", w_cell, u, u) + cfg.lam * eye_r
            v = np.linalg.solve(g, np.einsum("st,sk->tk", w_cell * r, u)[..., None])[..., 0]
    sx = side @ w if n_f else 0.0
    cold_rows, cold_cols = w_cell.sum(1) == 0, w_cell.sum(0) == 0
    a, u = _borrow(a, cold_rows, row_sim), _borrow(u, cold_rows, row_sim)
    b, v = _borrow(b, cold_cols, col_sim), _borrow(v, cold_cols, col_sim)
    return mu + a[:, None] + b[None] + sx + u @ v.T, w


def _cross_fit(y, mask, x, cfg, row_sim, col_sim, folds: int):
    """K-fold refits: (the K predictions, out-of-fold prediction of each observed cell, the cells)."""
    obs = np.argwhere(mask)
    fold = np.random.default_rng(cfg.seed).permutation(len(obs)) % folds
    preds, oof = [], np.full(len(obs), np.nan)
    for f in range(folds):
        keep = mask.copy()
        held = obs[fold == f]
        keep[held[:, 0], held[:, 1]] = False
        p, _ = fit(y, keep, x, cfg, rng=np.random.default_rng(cfg.seed + f + 1), row_sim=row_sim, col_sim=col_sim)
        preds.append(p)
        oof[fold == f] = p[held[:, 0], held[:, 1]]
    return preds, oof, obs


def candidates(cfg: CompletionSettings) -> list[CompletionSettings]:
    """What ``rank=-1`` (auto) chooses among, by out-of-fold MAE on the observed cells."""
    return [replace(cfg, rank=0), replace(cfg, rank=1, lam=0.044), replace(cfg, rank=1, lam=0.44),
            replace(cfg, rank=2, lam=0.13), replace(cfg, rank=2, lam=1.3)]


def complete(y: np.ndarray, mask: np.ndarray, side: np.ndarray | None = None,
             cfg: CompletionSettings = CompletionSettings(), names: list[str] | None = None,
             row_sim: np.ndarray | None = None, col_sim: np.ndarray | None = None) -> Completion:
    """The fit on every observed cell, with cross-validated intervals (see the module docstring)."""
    raw = np.asarray(y, dtype=float)
    mask = np.asarray(mask, dtype=bool) & np.isfinite(raw)
    x = _standardise(side, raw.shape)
    n_obs = int(mask.sum())
    if n_obs == 0:
        raise ValueError("complete: no observed cell")
    # fit in standard-deviation units, so the ridge means the same on accuracies in [0, 1] and in points
    centre = float(raw[mask].mean())
    sd = float(raw[mask].std()) if n_obs > 1 and raw[mask].std() > 0 else 1.0
    y = (raw - centre) / sd
    folds = min(cfg.folds, n_obs)
    chosen = cfg
    if folds >= 2:
        tried = []
        for c in (candidates(cfg) if cfg.rank < 0 else [cfg]):
            preds, oof, obs = _cross_fit(y, mask, x, c, row_sim, col_sim, folds)
            tried.append((float(np.nanmean(np.abs(oof - y[obs[:, 0], obs[:, 1]]))), c, preds, oof, obs))
        oof_mae, chosen, preds, oof, obs = min(tried, key=lambda t: t[0])
    elif cfg.rank < 0:
        chosen = replace(cfg, rank=1, lam=0.44)   # the usual choice at 10-20 % observed
    mean, w = fit(y, mask, x, chosen, rng=np.random.default_rng(chosen.seed), row_sim=row_sim, col_sim=col_sim)
    weights = dict(zip(names or [f"x{i}" for i in range(len(w))], map(float, w * sd)))   # in the metric's units
    mean = centre + sd * mean
    if folds < 2:
        wide = np.full(y.shape, np.inf)
        return Completion(mean, mean - wide, mean + wide, mask, float("nan"), weights, chosen)
    spread = np.stack(preds).std(0) * sd
    oof = centre + sd * oof
    y = raw
    floor = max(float(np.median(spread[~mask])) if (~mask).any() else float(np.median(spread)), 1e-6)
    scale = np.sqrt(spread ** 2 + floor ** 2)
    resid = np.abs(oof - y[obs[:, 0], obs[:, 1]])
    # split-conformal finite-sample correction: the ceil((n+1)·level)/n quantile (matters for a few dozen cells)
    q = float(np.quantile(resid / scale[obs[:, 0], obs[:, 1]], min(1.0, cfg.level * (len(resid) + 1) / len(resid))))
    return Completion(mean=mean, low=mean - q * scale, high=mean + q * scale, observed=mask,
                      oob_mae=float(resid.mean()), weights=weights, settings=chosen)
