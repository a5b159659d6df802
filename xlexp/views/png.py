"""The PNG files of xlexp, drawn with matplotlib: a matrix (``matrix_png``), a compare or reproduce
delta (``delta_png``), K-curves (``kcurve_png``) and a matrix with predicted cells (``predicted_png``).

These are the files ``xlexp matrix``, ``compare``, ``reproduce`` and ``predict`` write; the heatmaps
share one drawing function (``_png_heatmap``). They are kept apart from the Plotly figures of
``xlexp.views.figures`` because they are a second back end with its own dependency: matplotlib is
imported only when a PNG is drawn, so a report or a W&B upload never loads it. The axis labels
(``_tick``) and the fitted colour range (``fitted_range``) are defined here and shared with the Plotly
figures, which import them (the arrow goes figures -> png, never back).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xlexp.results.languages import info
from xlexp.results.query import TRANSFER_MEAN, Matrix


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display here or on cluster nodes
    import matplotlib.pyplot as plt

    return plt


def _tick(code, dense: bool) -> str:
    """An axis label: the language's name with its code ("Javanese (jav)"), or the code alone on a
    dense axis (SIB-200's 205 targets) or a source set (``eng+ind``)."""
    code = str(code)
    if code == MEAN_COLUMN:
        return MEAN_COLUMN
    name = info(code).name if "+" not in code else code
    if dense or name == code or name.startswith("Unknown language"):
        return code
    return f"{name[:20] + '…' if len(name) > 21 else name} ({code})"


def _png_heatmap(
    data: pd.DataFrame,
    path: Path,
    *,
    title: str,
    label: str,
    fmt: str,
    roles: tuple[str, str],
    vrange: tuple[float, float],
    cmap: str,
    marks: pd.DataFrame | None = None,
    boxed: pd.DataFrame | None = None,
    summary_cols: int = 0,
) -> None:
    """Rows x columns of ``data`` with a colour bar; each cell's value (``fmt``, then its mark) is
    written in when there are at most 400 cells. Transposed when there are many more columns.
    ``boxed`` (same shape, bool): cells outlined (the in-language cells); the last ``summary_cols``
    columns (a mean column) are set off by a white rule."""
    plt = _pyplot()
    summary_rows = 0
    if data.shape[1] > 30 and data.shape[1] > data.shape[0]:
        data, marks, roles = data.T, None if marks is None else marks.T, roles[::-1]
        boxed = None if boxed is None else boxed.T
        summary_rows, summary_cols = summary_cols, 0
    rows, cols = data.shape
    values = data.to_numpy(dtype=float)
    dense = rows > 60
    xlabels = [_tick(c, cols > 60) for c in data.columns]
    # short labels (codes) read best upright; names need a slant; a dense axis of codes stands them up.
    # The summary columns' labels (the mean's) are set on two lines and do not decide the slant.
    plain = xlabels[: len(xlabels) - summary_cols] if summary_cols else xlabels
    xlabels = plain + [str(c).replace(" in-language", "\nin-language") for c in data.columns[len(plain) :]]
    longest = max((len(x) for x in plain), default=0)
    short = longest <= 5
    rotation, ha = (90, "center") if short and cols > 100 else (0, "center") if short else (45, "right")
    below = 0.3 if rotation == 0 else 0.08 * longest * (0.72 if rotation == 45 else 1.0)  # room for the labels
    fig, ax = plt.subplots(figsize=(min(3.2 + 0.7 * cols, 40), min(1.9 + below + (0.16 if dense else 0.38) * rows, 80)))
    im = ax.imshow(values, cmap=cmap, vmin=vrange[0], vmax=vrange[1], aspect="auto")
    ax.set_xticks(range(cols), xlabels, rotation=rotation, ha=ha, fontsize=8)
    ax.set_yticks(range(rows), [_tick(r, dense) for r in data.index], fontsize=6 if dense else 8)
    ax.set_xlabel(roles[1])
    ax.set_ylabel(roles[0])
    if boxed is not None:
        from matplotlib.patches import Rectangle

        for r, c in zip(
            *np.where(boxed.reindex(index=data.index, columns=data.columns, fill_value=False).to_numpy(dtype=bool))
        ):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.6))
    if summary_cols:
        ax.axvline(cols - summary_cols - 0.5, color="white", linewidth=4)
    if summary_rows:
        ax.axhline(rows - summary_rows - 0.5, color="white", linewidth=4)
    if rows * cols <= 400:
        for r in range(rows):
            for c in range(cols):
                v = values[r, c]
                if not np.isnan(v):
                    red, green, blue, _ = im.cmap(im.norm(v))
                    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                    text = format(v, fmt) + ("" if marks is None else str(marks.iat[r, c]))
                    ax.text(c, r, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    fig.colorbar(im, ax=ax, fraction=0.03, label=label)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


MEAN_COLUMN = TRANSFER_MEAN  # each source row's mean over its cross-lingual cells


def fitted_range(values) -> tuple[float, float]:
    """The colour range of a matrix: its own min..max (a fixed 0-1 scale flattens 0.3-0.9 cells into
    two shades), widened to at least 0.05 so near-equal cells do not look far apart."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if not arr.size:
        return 0.0, 1.0
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo < 0.05:
        mid = (lo + hi) / 2
        lo, hi = mid - 0.025, mid + 0.025
    return lo, hi


def matrix_png(m: Matrix, path: Path, title: str | None = None, selection: str | None = None) -> None:
    """Sources x targets with a ``mean`` column (each source's mean over its cross-lingual targets:
    the in-language cell, outlined, is left out), the colour scale fitted to the values (shown on
    the colour bar), the selection rule and the overall transfer mean in the title. A diagonal-only
    matrix (regime=full) is drawn as its one in-language row."""
    own = m.in_language()
    title = title or f"{m.experiment}: {m.metric} (test)" + (f" — selection {selection}" if selection else "")
    if own is not None:
        data, boxed, extra, note = own.mean, None, 0, ""
    else:
        mask = m.in_language_mask()
        data = m.mean.copy()
        data[MEAN_COLUMN] = m.mean.where(~mask).mean(axis=1, skipna=True)
        boxed = mask.assign(**{MEAN_COLUMN: False})
        extra = 1 if data[MEAN_COLUMN].notna().any() else 0
        if not extra:
            data = data.drop(columns=MEAN_COLUMN)
        mean = m.transfer_mean()
        outlined = " (outlined)" if mask.to_numpy().any() else ""
        note = "" if np.isnan(mean) else f"\n{TRANSFER_MEAN}{outlined}: {mean:.3f}"
    _png_heatmap(
        data,
        path,
        title=title + note,
        label=m.metric,
        fmt=".2f",
        roles=("source", "target"),
        vrange=fitted_range(data.to_numpy(dtype=float)),
        cmap="viridis",
        boxed=boxed,
        summary_cols=extra,
    )


def delta_png(
    delta: pd.DataFrame,
    path: Path,
    *,
    title: str,
    label: str,
    fmt: str = "+.3f",
    marks: pd.DataFrame | None = None,
    roles: tuple[str, str] = ("source", "target"),
) -> None:
    """Differences on a diverging scale centred on 0 (compare: B − A with significance marks;
    reproduce: ours − the paper's)."""
    values = delta.to_numpy(dtype=float)
    vmax = max(float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0, 0.01)
    _png_heatmap(
        delta, path, title=title, label=label, fmt=fmt, roles=roles, vrange=(-vmax, vmax), cmap="RdBu", marks=marks
    )


def kcurve_png(summary: pd.DataFrame, path: Path) -> None:
    """Score vs K per (source, target) with std error bars (``query.few_shot_summary``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (source, target), rows in summary.groupby(["source", "target"], sort=False):
        rows = rows.sort_values("k")
        ax.errorbar(
            rows["k"], rows["mean"], yerr=rows["std"].fillna(0.0), marker="o", capsize=3, label=f"{source}→{target}"
        )
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("K (shots)")
    ax.set_ylabel(summary.attrs["metric"])
    ax.set_title(f"{summary.attrs['experiment']}: few-shot curves (mean ± std)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- predicted cells (``xlexp predict``): greyed and hatched, measured cells in full colour ------------


def predicted_png(
    measured: pd.DataFrame,
    predicted: pd.DataFrame,
    path: Path,
    *,
    title: str,
    label: str,
    vrange: tuple[float, float] | None = None,
) -> None:
    """Sources x targets: measured cells in full colour; predicted cells (``predicted``: same shape,
    NaN where measured) faded towards grey and hatched, with a legend saying which is which."""
    plt = _pyplot()
    from matplotlib.patches import Patch, Rectangle

    both = measured.combine_first(predicted)
    if both.shape[1] > 30 and both.shape[1] > both.shape[0]:
        measured, predicted, both, roles = measured.T, predicted.T, both.T, ("target", "source")
    else:
        roles = ("source", "target")
    rows, cols = both.shape
    meas, pred = measured.reindex_like(both).to_numpy(dtype=float), predicted.reindex_like(both).to_numpy(dtype=float)
    finite = both.to_numpy(dtype=float)
    lo, hi = vrange or (float(np.nanmin(finite)), float(np.nanmax(finite)))
    dense = rows > 60
    fig, ax = plt.subplots(figsize=(min(2.5 + 0.7 * cols, 40), min(1.6 + (0.16 if dense else 0.38) * rows, 80)))
    im = ax.imshow(meas, cmap="viridis", vmin=lo, vmax=hi, aspect="auto")
    ax.imshow(pred, cmap="viridis", vmin=lo, vmax=hi, aspect="auto", alpha=0.35)
    for r, c in zip(*np.where(np.isfinite(pred) & ~np.isfinite(meas))):
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.45", linewidth=0))
        if rows * cols <= 400:
            ax.text(c, r, format(pred[r, c], ".2f") + "*", ha="center", va="center", fontsize=7, color="0.25")
    if rows * cols <= 400:
        for r, c in zip(*np.where(np.isfinite(meas))):
            red, green, blue, _ = im.cmap(im.norm(meas[r, c]))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(
                c,
                r,
                format(meas[r, c], ".2f"),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )
    ax.set_xticks(range(cols), [_tick(c, cols > 60) for c in both.columns], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(rows), [_tick(r, dense) for r in both.index], fontsize=6 if dense else 8)
    ax.set_xlabel(roles[1])
    ax.set_ylabel(roles[0])
    fig.colorbar(im, ax=ax, fraction=0.03, label=label)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.legend(
        handles=[
            Patch(facecolor="tab:green", label="measured"),
            Patch(facecolor="0.85", hatch="///", edgecolor="0.45", label="predicted (*)"),
        ],
        loc="lower left",
        ncol=1,
        fontsize=7,
        frameon=False,
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)
