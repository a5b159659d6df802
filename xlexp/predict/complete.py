"""Matrix completion: every missing source x target cell gets a predicted score and an interval.

The model (chosen by measurement on development masks of the 65 x 105 xpos UD-POS matrix, see
BENCHMARKS.md §10) is a biased low-rank factorisation with side features,

    y[s, t] ≈ μ + a[s] + b[t] + w · x[s, t] + u[s] · v[t],

``a``/``b`` are how good a source is and how easy a target is, ``x`` the pair features of
``xlexp.predict.features`` (URIEL distances, same language, script match, model similarity, ...;
NaN -> the column mean, so a missing feature only removes information), and ``u·v`` a low-rank
interaction, fitted by alternating ridge regressions. Three things make it work from 5-10 % of the
cells, where most targets have 3-7 measured cells:

- **Language priors.** The ridge on the biases and factors is not the identity but a Gaussian prior
  whose covariance is ``prior·K + (1 - prior)·I``, ``K`` the language similarity of
  ``xlexp.predict.features`` (URIEL genetic/geographic/syntactic/script, plus the model's view when
  computed) at twice its length scale. A target with two measured cells borrows strength from the
  targets that resemble it (xpos, 10 % observed: 5.1 -> 4.5 MAE). A row or column without any
  cell (a source never trained) takes the similarity-weighted mean of the others' biases and
  factors (``borrow``) rather than the prior's conditional mean, which shrinks towards the average
  source (whole missing xpos rows: 7.2 vs 8.2 MAE).
- **An ensemble.** The prediction is the mean of fits of ranks 1, 2 and 3 from several random
  starts (``ranks`` x ``restarts``): a single rank-2/3 fit chases the noise of a handful of cells
  per column, the average of many does not (5 % observed: 7.2 -> 6.8 MAE; 20 %: 3.9 -> 3.7).
- **A second pass with profile similarities.** Where a language is both a source and a target
  (the ``same_language`` feature says so), its fitted column and row say which sources and targets
  it behaves like; the similarities are sharpened with those profiles and the ensemble refitted
  (``_profiles``; 5 % observed: 6.8 -> 6.2 MAE, 10 %: 4.41 -> 4.33).

``rank=-1`` (auto) chooses among that ensemble, biases + features (rank 0) and biases only (no
features, no prior) by K-fold cross-validation on the observed cells, with the one-standard-error
rule (the simplest variant whose out-of-fold error is within one paired standard error of the
best's), so a handful of measured cells, or a matrix whose structure the language features do not
know, falls back to a simpler model (MasakhaPOS e5 at 20 % observed: 0.070 -> 0.062 MAE; xpos
unchanged, where the ensemble wins by far). A fixed ``rank >= 0`` is one fit of that rank (the ablations of ``xlexp predict --evaluate``).

Intervals come from K-fold refits on the observed cells: the spread of the K fits is each cell's
own uncertainty (a target with two observed cells is less certain than one with twenty), and a
conformal factor scales it so that the out-of-fold residuals of the observed cells are covered at
``level`` (CV+ in spirit). The out-of-fold MAE is reported as an honest estimate of the error on
missing cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.linalg import cho_factor, cho_solve


@dataclass(frozen=True)
class CompletionSettings:
    rank: int = -1  # -1: ensemble, rank 0 or biases only, by out-of-fold MAE; >= 0: one fit of that rank
    ranks: tuple[int, ...] = (1, 2, 3)  # the ensemble's ranks ...
    restarts: int = 5  # ... times this many random starts each (the final fit; 1 inside the CV folds)
    lam: float = 0.3  # prior precision of the factors u, v (the matrix is fitted in standard-deviation units)
    lam_bias: float = 1.0  # prior precision of the biases a, b
    lam_side: float = 1.0  # ridge on the feature weights w
    prior: float = 0.5  # weight of the language similarity in the prior covariance (0: independent ridge)
    iters: int = 40
    folds: int = 5  # cross-validation folds for the intervals (and the honest error estimate)
    level: float = 0.9  # interval coverage aimed at
    seed: int = 0
    borrow: bool = True  # a row (column) without any observed cell: the similarity-weighted mean of the
    # others' biases and factors instead of the prior's (shrunk) conditional mean
    profiles: float = 0.5  # weight of the fitted-profile similarity in a second pass (0: one pass; see _profiles)
    use_side: bool = True  # False: the pair features are left out (the biases-only candidate)

    def describe(self) -> str:
        if self.rank == 0 and not self.use_side and self.prior <= 0:
            return "biases only (rank 0, no features, no language prior)"
        if self.rank >= 0:
            return f"rank {self.rank}"
        return f"ensemble of ranks {'/'.join(map(str, self.ranks))} x {self.restarts} starts"


@dataclass
class Completion:
    mean: np.ndarray  # sources x targets, every cell (observed cells: the fit, not the measurement)
    low: np.ndarray
    high: np.ndarray
    observed: np.ndarray  # bool mask of the measured cells
    oob_mae: float  # out-of-fold MAE on observed cells: an honest estimate of the error
    weights: dict[str, float] = field(default_factory=dict)  # feature -> weight (standardised features)
    settings: CompletionSettings | None = None  # the settings used (auto resolved)
    row_sim: np.ndarray | None = None  # the source similarities of the final pass (sharpened by ``_profiles``)


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


def prior_precision(sim: np.ndarray | None, n: int, prior: float) -> np.ndarray:
    """Inverse of ``prior·K + (1 - prior)·I``: ``K`` is ``sim`` (languages x languages, in [0, 1],
    exp(-distance / 0.15) in ``xlexp.predict.features``) to the power 0.5, i.e. twice the length
    scale (measured on xpos development masks: 4.40 vs 4.56 MAE at 10 %), projected onto the
    positive semi-definite cone (a similarity averaged over the features each pair has is not
    always a valid covariance). No similarity or ``prior = 0``: the identity (plain ridge)."""
    if sim is None or prior <= 0:
        return np.eye(n)
    k = np.clip(np.nan_to_num(np.asarray(sim, dtype=float), nan=0.0), 0.0, 1.0) ** 0.5
    k = (k + k.T) / 2
    np.fill_diagonal(k, 1.0)
    vals, vecs = np.linalg.eigh(k)
    k = (vecs * np.clip(vals, 0.0, None)) @ vecs.T
    return np.linalg.inv(prior * k + (1 - prior) * np.eye(n))


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


def _solve_factors(w_cell: np.ndarray, r: np.ndarray, other: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Factors of the rows of ``r`` given the other side's factors: the rows are coupled through the
    prior precision (``prior`` = lam · kron(precision, I_rank)), so one (rows·rank)-sized
    positive-definite system instead of one small ridge per row."""
    n, rank = r.shape[0], other.shape[1]
    a = prior.copy()
    idx = np.arange(n)
    a.reshape(n, rank, n, rank)[idx, :, idx, :] += np.einsum("st,tk,tl->skl", w_cell, other, other)
    return cho_solve(
        cho_factor(a, lower=True, check_finite=False),
        np.einsum("st,tk->sk", w_cell * r, other).ravel(),
        check_finite=False,
    ).reshape(n, rank)


def fit(
    y: np.ndarray,
    mask: np.ndarray,
    side: np.ndarray,
    cfg: CompletionSettings,
    rank: int,
    prec_rows: np.ndarray,
    prec_cols: np.ndarray,
    seed: int = 0,
    row_sim: np.ndarray | None = None,
    col_sim: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One alternating fit of rank ``rank`` on the cells where ``mask`` (``y`` standardised, NaN
    allowed elsewhere); returns the full prediction and the feature weights. The biases and factors
    are coupled through the language prior (``prec_rows``/``prec_cols`` from ``prior_precision``);
    rows and columns without any observed cell then take the similarity-weighted mean of the others'
    (``cfg.borrow``, ``row_sim``/``col_sim``) or, without it, the prior's conditional mean."""
    n_s, n_t = y.shape
    w_cell = mask.astype(float)
    z = np.where(mask, y, 0.0)
    mu = z.sum() / max(w_cell.sum(), 1e-9)
    z = np.where(mask, z - mu, 0.0)
    a, b = np.zeros(n_s), np.zeros(n_t)
    n_f = side.shape[-1]
    w = np.zeros(n_f)
    rng = np.random.default_rng(seed)
    u, v = rng.normal(0, 0.1, (n_s, rank)), rng.normal(0, 0.1, (n_t, rank))
    flat_x = side.reshape(-1, n_f) if n_f else None
    # the bias and feature systems do not change between iterations: invert them once
    inv_a = np.linalg.inv(np.diag(w_cell.sum(1)) + cfg.lam_bias * prec_rows)
    inv_b = np.linalg.inv(np.diag(w_cell.sum(0)) + cfg.lam_bias * prec_cols)
    if n_f:
        xw = flat_x * w_cell.reshape(-1, 1)
        inv_w = np.linalg.inv(flat_x.T @ xw + cfg.lam_side * np.eye(n_f))
    if rank:
        prior_u = cfg.lam * np.kron(prec_rows, np.eye(rank))
        prior_v = cfg.lam * np.kron(prec_cols, np.eye(rank))
    sx = 0.0
    for _ in range(cfg.iters):
        inter = u @ v.T if rank else 0.0
        r = z - sx - inter
        a = inv_a @ (w_cell * (r - b[None])).sum(1)
        b = inv_b @ (w_cell * (r - a[:, None])).sum(0)
        if n_f:
            res = (z - a[:, None] - b[None] - inter).ravel()
            w = inv_w @ (xw.T @ res)
            sx = side @ w
        if rank:
            r = z - a[:, None] - b[None] - sx
            v = _solve_factors(w_cell.T, r.T, u, prior_v)
            u = _solve_factors(w_cell, r, v, prior_u)
    if cfg.borrow:
        cold_rows, cold_cols = w_cell.sum(1) == 0, w_cell.sum(0) == 0
        a, u = _borrow(a, cold_rows, row_sim), _borrow(u, cold_rows, row_sim)
        b, v = _borrow(b, cold_cols, col_sim), _borrow(v, cold_cols, col_sim)
    return mu + a[:, None] + b[None] + sx + (u @ v.T if rank else 0.0), w


@dataclass
class _Sims:
    rows: np.ndarray | None  # sources x sources similarity in [0, 1] (None: unknown)
    cols: np.ndarray | None  # targets x targets
    same: np.ndarray | None  # sources x targets: True where the source and the target are one language


def _precisions(sims: _Sims, shape: tuple[int, int], cfg: CompletionSettings):
    return (
        prior_precision(sims.rows, shape[0], cfg.prior),
        prior_precision(sims.cols, shape[1], cfg.prior),
        sims.rows,
        sims.cols,
    )


def _profiles(fitted: np.ndarray, sims: _Sims, mix: float, power: float = 4.0) -> _Sims:
    """Similarities sharpened by the data, for languages that are both sources and targets.

    A language's fitted column (how well every source transfers to it) says which *sources* it
    resembles, and its fitted row says which *targets* it resembles: on xpos a language's factors as
    a source and as a target correlate 0.82-0.88. So two sources are similar when the columns of
    their languages correlate (clipped at 0, to the power ``power``), blended ``mix`` : 1 - mix with
    the URIEL/model similarity; likewise targets through their languages' rows. Development masks
    of xpos: 6.84 -> 6.21 MAE at 5 % observed, 4.41 -> 4.33 at 10 %, 3.68 at 20 % either way.
    Languages without the other role keep their similarity."""
    same = sims.same
    n_s, n_t = fitted.shape

    def blend(base: np.ndarray | None, profiles: list[np.ndarray | None], n: int) -> np.ndarray | None:
        have = [i for i, v in enumerate(profiles) if v is not None]
        if len(have) < 2:
            return base
        out = np.eye(n) if base is None else np.array(base, dtype=float, copy=True)
        with np.errstate(all="ignore"):
            corr = np.corrcoef(np.stack([profiles[i] for i in have]))
        corr = np.clip(np.nan_to_num(corr, nan=0.0), 0.0, 1.0) ** power
        block = np.nan_to_num(out[np.ix_(have, have)], nan=0.0)
        out[np.ix_(have, have)] = (1 - mix) * block + mix * corr
        np.fill_diagonal(out, 1.0)
        return out

    col_of_row = [int(np.flatnonzero(same[i])[0]) if same[i].any() else -1 for i in range(n_s)]
    row_of_col = [int(np.flatnonzero(same[:, j])[0]) if same[:, j].any() else -1 for j in range(n_t)]
    rows = blend(sims.rows, [fitted[:, j] if j >= 0 else None for j in col_of_row], n_s)
    cols = blend(sims.cols, [fitted[i, :] if i >= 0 else None for i in row_of_col], n_t)
    return _Sims(rows, cols, same)


def _fit_once(y, mask, x, cfg: CompletionSettings, precs, restarts: int, seed: int):
    """The prediction of ``cfg`` under one prior: one fit of its rank, or the mean of the ensemble's fits."""
    if not cfg.use_side:
        x = x[..., :0]
    if cfg.rank >= 0:
        return fit(y, mask, x, cfg, cfg.rank, *precs[:2], seed, *precs[2:])
    fits = [
        fit(y, mask, x, cfg, r, *precs[:2], seed + 101 * k + r, *precs[2:]) for r in cfg.ranks for k in range(restarts)
    ]
    return np.mean([f[0] for f in fits], 0), np.mean([f[1] for f in fits], 0)


def _fit_all(y, mask, x, cfg: CompletionSettings, sims: _Sims, restarts: int, seed: int):
    """The prediction of ``cfg``: a first pass under the given similarities, then (``cfg.profiles``)
    a second under similarities sharpened by the first pass's fitted profiles (``_profiles``)."""
    mean, w = _fit_once(y, mask, x, cfg, _precisions(sims, y.shape, cfg), restarts, seed)
    if cfg.profiles > 0 and sims.same is not None and sims.same.any():
        sims = _profiles(mean, sims, cfg.profiles)
        mean, w = _fit_once(y, mask, x, cfg, _precisions(sims, y.shape, cfg), restarts, seed)
    return mean, w, sims


def _cross_fit(y, mask, x, cfg, sims: _Sims, folds: int):
    """K-fold refits: (the K predictions, out-of-fold prediction of each observed cell, the cells).
    Each fold's second pass uses its own first pass, so no held-out cell leaks into its prediction."""
    obs = np.argwhere(mask)
    fold = np.random.default_rng(cfg.seed).permutation(len(obs)) % folds
    preds, oof = [], np.full(len(obs), np.nan)
    for f in range(folds):
        keep = mask.copy()
        held = obs[fold == f]
        keep[held[:, 0], held[:, 1]] = False
        p, _, _ = _fit_all(y, keep, x, cfg, sims, 1, cfg.seed + f + 1)
        preds.append(p)
        oof[fold == f] = p[held[:, 0], held[:, 1]]
    return preds, oof, obs


def candidates(cfg: CompletionSettings) -> list[CompletionSettings]:
    """What ``rank=-1`` (auto) chooses among, by out-of-fold MAE on the observed cells: biases only
    (no features, no language prior: a few cells of a matrix whose structure the features do not
    know, e.g. SIB-200 at 5 %), biases + features + prior, and the ensemble."""
    return [replace(cfg, rank=0, prior=0.0, profiles=0.0, use_side=False), replace(cfg, rank=0), cfg]


def _one_standard_error(errors: np.ndarray) -> int:
    """The simplest candidate (rows of ``errors``: out-of-fold absolute errors per observed cell,
    simplest first) whose mean error is within one standard error of the best's, the error of the
    paired difference over the same cells (Breiman's one-standard-error rule): with a few dozen
    observed cells the cross-validated difference between the variants is mostly noise, and the
    simpler model is then the safer guess."""
    errors = np.nan_to_num(errors, nan=np.inf)
    means = errors.mean(1)
    best = int(np.argmin(means))
    for i in range(best):
        diff = errors[i] - errors[best]
        if np.isfinite(diff).all() and diff.mean() <= diff.std(ddof=1) / np.sqrt(len(diff)):
            return i
    return best


def complete(
    y: np.ndarray,
    mask: np.ndarray,
    side: np.ndarray | None = None,
    cfg: CompletionSettings = CompletionSettings(),
    names: list[str] | None = None,
    row_sim: np.ndarray | None = None,
    col_sim: np.ndarray | None = None,
) -> Completion:
    """The fit on every observed cell, with cross-validated intervals (see the module docstring).
    ``row_sim``/``col_sim``: source x source and target x target similarities in [0, 1] (the
    language prior; None: independent ridge). Runs with one BLAS thread: on matrices of a few hundred
    rows and columns threads only contend (``xlexp predict --evaluate`` on xpos, 2 cores: 474 s with
    numpy's default threads, 171 s with one; the same numbers)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _complete(y, mask, side, cfg, names, row_sim, col_sim)


def _complete(y, mask, side, cfg: CompletionSettings, names, row_sim, col_sim) -> Completion:
    raw = np.asarray(y, dtype=float)
    mask = np.asarray(mask, dtype=bool) & np.isfinite(raw)
    x = _standardise(side, raw.shape)
    n_obs = int(mask.sum())
    if n_obs == 0:
        raise ValueError("complete: no observed cell")
    # fit in standard-deviation units, so the priors mean the same on accuracies in [0, 1] and in points
    centre = float(raw[mask].mean())
    sd = float(raw[mask].std()) if n_obs > 1 and raw[mask].std() > 0 else 1.0
    y = (raw - centre) / sd
    same = None
    if side is not None and names and "same_language" in names:
        same = np.nan_to_num(np.asarray(side, dtype=float)[..., names.index("same_language")], nan=0.0) > 0.5
    sims = _Sims(row_sim, col_sim, same)
    folds = min(cfg.folds, n_obs)
    chosen = cfg
    if folds >= 2:
        tried = []
        for c in candidates(cfg) if cfg.rank < 0 else [cfg]:
            preds, oof, obs = _cross_fit(y, mask, x, c, sims, folds)
            tried.append((np.abs(oof - y[obs[:, 0], obs[:, 1]]), c, preds, oof, obs))
        _, chosen, preds, oof, obs = tried[_one_standard_error(np.stack([t[0] for t in tried]))]
    mean, w, used = _fit_all(y, mask, x, chosen, sims, cfg.restarts, chosen.seed)
    weights = dict(zip(names or [f"x{i}" for i in range(len(w))], map(float, w * sd)))  # in the metric's units
    mean = centre + sd * mean
    if folds < 2:
        wide = np.full(y.shape, np.inf)
        return Completion(mean, mean - wide, mean + wide, mask, float("nan"), weights, chosen, used.rows)
    spread = np.stack(preds).std(0) * sd
    oof = centre + sd * oof
    y = raw
    floor = max(float(np.median(spread[~mask])) if (~mask).any() else float(np.median(spread)), 1e-6)
    scale = np.sqrt(spread**2 + floor**2)
    resid = np.abs(oof - y[obs[:, 0], obs[:, 1]])
    # split-conformal finite-sample correction: the ceil((n+1)·level)/n quantile (matters for a few dozen cells)
    q = float(np.quantile(resid / scale[obs[:, 0], obs[:, 1]], min(1.0, cfg.level * (len(resid) + 1) / len(resid))))
    return Completion(
        mean=mean,
        low=mean - q * scale,
        high=mean + q * scale,
        observed=mask,
        oob_mae=float(resid.mean()),
        weights=weights,
        settings=chosen,
        row_sim=used.rows,
    )
