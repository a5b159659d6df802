"""Every figure of xlexp: heatmaps (a matrix, a compare delta, a reproduce delta) and K-curves.

Two back ends. Plotly figures (``heatmap_figure``, ``kcurve_figure``, ``gap_figure``) for the HTML
report and W&B carry language names (and script and family where known) in their hover text.
Matplotlib PNGs (``matrix_png``, ``kcurve_png``, ``delta_png``) are the files ``xlexp matrix``,
``compare`` and ``reproduce`` write; they share one drawing function (matplotlib is imported only when a
PNG is drawn). No other module draws.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from xlexp.results.languages import group_order, info
from xlexp.results.query import TRANSFER_MEAN, Matrix, is_in_language


def _plain(values) -> list:
    """Plain lists (NaN -> None): plotly >= 6 would otherwise store numpy arrays as base64 typed
    arrays, which W&B's plotly panel (an older plotly.js) cannot read."""
    arr = np.asarray(values, dtype=object)
    return [_plain(v) for v in arr] if arr.ndim > 1 else [None if _isnan(v) else v for v in arr.tolist()]


def _isnan(v) -> bool:
    return isinstance(v, float) and np.isnan(v)


def _lang_label(code: str) -> str:
    i = info(str(code))
    extra = " · ".join(x for x in (i.script, i.family) if x)
    return f"{code} ({i.name})" + (f" · {extra}" if extra else "")


def ordered(m: Matrix, group: bool = True) -> Matrix:
    """Targets grouped by family then script (see ``languages.group_order``), sources likewise."""
    if not group:
        return m
    cols = group_order([str(c) for c in m.mean.columns])
    rows = group_order([str(r) for r in m.mean.index])

    def re(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.reindex(index=rows, columns=cols)

    return Matrix(m.experiment, m.metric, re(m.mean), re(m.std), re(m.n))


def heatmap_figure(m: Matrix, title: str, zrange: tuple[float, float] | None = None) -> go.Figure:
    """Sources x targets (transposed when there are many more targets than sources), value in each
    cell when the matrix is small, mean ± std (n) and language names on hover; axes labelled
    "Name (code)" (the trace's x/y stay the codes), in-language cells outlined, the mean of the
    cross-lingual cells in the title, the colour scale fitted to the values unless ``zrange`` is
    given, and a small matrix drawn at its own width instead of stretched across the page."""
    mean, std, n = m.mean, m.std, m.n
    transpose = mean.shape[1] > 30 and mean.shape[1] > mean.shape[0]
    if transpose:
        mean, std, n = mean.T, std.T, n.T
    rows, cols = [str(r) for r in mean.index], [str(c) for c in mean.columns]
    z = mean.to_numpy(dtype=float)
    s = std.to_numpy(dtype=float)
    counts = n.to_numpy(dtype=float)
    row_role, col_role = ("target", "source") if transpose else ("source", "target")
    hover = np.empty(z.shape, dtype=object)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if np.isnan(z[i, j]):
                hover[i, j] = "no result"
                continue
            spread = f" ± {s[i, j]:.3f}" if counts[i, j] > 1 and not np.isnan(s[i, j]) else ""
            hover[i, j] = (
                f"{row_role}: {_lang_label(r)}<br>{col_role}: {_lang_label(c)}<br>"
                f"{m.metric}: {z[i, j]:.3f}{spread} (n={int(counts[i, j])})"
            )
    small = z.size <= 400
    zmin, zmax = zrange or fitted_range(z)
    trace = go.Heatmap(
        z=_plain(z),
        x=cols,
        y=rows,
        customdata=_plain(hover),
        hovertemplate="%{customdata}<extra></extra>",
        colorscale="Viridis",
        zmin=zmin,
        zmax=zmax,
        colorbar={"title": {"text": m.metric}},
        texttemplate="%{z:.2f}" if small else None,
        xgap=1,
        ygap=1,
    )
    fig = go.Figure(trace)
    many = len(rows) > 40  # e.g. SIB-200's 205 targets: every label, small, 14 px a row
    xticks = [_tick(c, len(cols) > 60) for c in cols]
    short = max((len(t) for t in xticks), default=0) <= 5
    mean = m.transfer_mean()
    fig.update_layout(
        title={
            "text": title
            + (
                ""
                if np.isnan(mean)
                else f"<br><sup>{TRANSFER_MEAN}: {mean:.3f}"
                f"{' (outlined: in-language)' if m.in_language_mask().to_numpy().any() else ''}</sup>"
            ),
            "font": {"size": 14},
        },
        xaxis={
            "title": col_role,
            "type": "category",
            "tickangle": 0 if short and len(cols) <= 24 else -45,
            "tickmode": "array",
            "tickvals": cols,
            "ticktext": xticks,
        },
        yaxis={
            "title": row_role,
            "type": "category",
            "autorange": "reversed",
            "tickmode": "array",
            "tickvals": rows,
            "ticktext": [_tick(r, many) for r in rows],
            **({"dtick": 1, "tickfont": {"size": 9}} if many else {}),
        },
        height=min(max(300, 200 + (14 if many else 34) * len(rows)), 3200),
        margin={"l": 150, "r": 20, "t": 70, "b": 90},
    )
    for i, r in enumerate(rows):  # outline the in-language cells (target = source): not transfer
        for j, c in enumerate(cols):
            if is_in_language(c, r) if transpose else is_in_language(r, c):
                fig.add_shape(
                    type="rect",
                    x0=j - 0.5,
                    x1=j + 0.5,
                    y0=i - 0.5,
                    y1=i + 0.5,
                    line={"color": "black", "width": 2},
                    fillcolor="rgba(0,0,0,0)",
                )
    if len(cols) <= 12:  # a small matrix at its own width (a 1 x 4 matrix is not stretched across the page)
        fig.update_layout(width=max(700, 330 + 90 * len(cols)), autosize=False)
    return fig


def kcurve_figure(frame: pd.DataFrame, metric: str, title: str) -> go.Figure:
    """Score vs K, one line per target, error bars = std over shot sets x seeds (``kcurve_frame``)."""
    fig = go.Figure()
    for target in group_order([str(t) for t in frame["target"].unique()]):
        t = frame[frame["target"] == target].sort_values("k")
        fig.add_trace(
            go.Scatter(
                x=[str(k) for k in t["k"]],
                y=_plain(t["mean"].astype(float)),
                mode="lines+markers",
                name=f"{target} ({info(target).name})",
                error_y={"type": "data", "array": _plain(t["std"].fillna(0).astype(float)), "visible": True},
                customdata=[[float(s), int(n)] for s, n in zip(t["std"].fillna(0), t["n"])],
                hovertemplate=(
                    f"{_lang_label(target)}<br>K=%{{x}}<br>{metric}: %{{y:.3f}} ± %{{customdata[0]:.3f}}"
                    " (n=%{customdata[1]})<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        xaxis={"title": "K (shots per class; 0 = zero-shot)", "type": "category"},
        yaxis={"title": metric},
        height=420,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
    )
    return fig


def gap_figure(frame: pd.DataFrame, metric: str, title: str) -> go.Figure:
    """Grouped bars per (source →) target: score under each other selection rule minus source_dev
    (rows of ``frames.selection_gap_frame``)."""
    frame = frame.copy()
    order = {t: i for i, t in enumerate(group_order([str(t) for t in frame["target"].unique()]))}
    frame = frame.assign(_o=frame["target"].map(order)).sort_values(["source", "_o"])
    several = frame["source"].nunique() > 1
    x = [f"{s}→{t}" if several else str(t) for s, t in zip(frame["source"], frame["target"])]
    hover = [f"source: {_lang_label(s)}<br>target: {_lang_label(t)}" for s, t in zip(frame["source"], frame["target"])]
    fig = go.Figure()
    for col in [c for c in frame.columns if str(c).endswith(" - source_dev")]:
        fig.add_trace(
            go.Bar(
                x=x,
                y=_plain(frame[col].astype(float)),
                name=col,
                customdata=hover,
                hovertemplate=f"%{{customdata}}<br>{col}: %{{y:+.3f}}<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        barmode="group",
        xaxis={"title": "source → target" if several else "target", "type": "category"},
        yaxis={"title": f"Δ {metric}", "zeroline": True},
        height=400,
        margin={"l": 60, "r": 20, "t": 50, "b": 80},
    )
    return fig


# ---- PNG files (matplotlib) ----------------------------------------------------------------------


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


def predicted_heatmap_figure(
    measured: pd.DataFrame, predicted: pd.DataFrame, low: pd.DataFrame, high: pd.DataFrame, title: str, metric: str
) -> go.Figure:
    """Plotly: measured cells on Viridis; predicted cells greyed (a grey scale) with their interval on hover."""
    rows = [str(r) for r in measured.index.union(predicted.index, sort=False)]
    cols = [str(c) for c in measured.columns.union(predicted.columns, sort=False)]
    meas = measured.reindex(index=rows, columns=cols).to_numpy(dtype=float)
    pred = predicted.reindex(index=rows, columns=cols).to_numpy(dtype=float)
    lo_, hi_ = (
        low.reindex(index=rows, columns=cols).to_numpy(dtype=float),
        high.reindex(index=rows, columns=cols).to_numpy(dtype=float),
    )
    finite = np.concatenate([meas[np.isfinite(meas)], pred[np.isfinite(pred)]])
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    hover_m = [
        [
            f"source: {_lang_label(r)}<br>target: {_lang_label(c)}<br>{metric}: {meas[i, j]:.3f} (measured)"
            if np.isfinite(meas[i, j])
            else ""
            for j, c in enumerate(cols)
        ]
        for i, r in enumerate(rows)
    ]
    hover_p = [
        [
            f"source: {_lang_label(r)}<br>target: {_lang_label(c)}<br>{metric}: {pred[i, j]:.3f} PREDICTED "
            f"[{lo_[i, j]:.3f}, {hi_[i, j]:.3f}]"
            if np.isfinite(pred[i, j])
            else ""
            for j, c in enumerate(cols)
        ]
        for i, r in enumerate(rows)
    ]
    small = meas.size <= 400
    fig = go.Figure(
        [
            go.Heatmap(
                z=_plain(pred),
                x=cols,
                y=rows,
                customdata=hover_p,
                hovertemplate="%{customdata}<extra></extra>",
                colorscale=[[0.0, "#e3e3e3"], [1.0, "#8c8c8c"]],
                zmin=zmin,
                zmax=zmax,
                showscale=False,
                name="predicted",
                xgap=1,
                ygap=1,
                texttemplate="%{z:.2f}*" if small else None,
            ),
            go.Heatmap(
                z=_plain(meas),
                x=cols,
                y=rows,
                customdata=hover_m,
                hovertemplate="%{customdata}<extra></extra>",
                colorscale="Viridis",
                zmin=zmin,
                zmax=zmax,
                colorbar={"title": {"text": f"{metric} (measured)"}},
                name="measured",
                xgap=1,
                ygap=1,
                texttemplate="%{z:.2f}" if small else None,
            ),
        ]
    )
    fig.update_layout(
        title={"text": title + " — grey cells (*) are predicted, coloured cells measured", "font": {"size": 13}},
        xaxis={"title": "target", "type": "category", "tickangle": -45},
        yaxis={"title": "source", "type": "category", "autorange": "reversed"},
        height=min(200 + 30 * len(rows), 3200),
        margin={"l": 90, "r": 20, "t": 60, "b": 70},
    )
    return fig
