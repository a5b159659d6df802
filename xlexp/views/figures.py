"""The interactive figures of xlexp, drawn with Plotly: a matrix heatmap (``heatmap_figure``), K-curves
(``kcurve_figure``), selection gaps (``gap_figure``) and a matrix with predicted cells
(``predicted_heatmap_figure``), for the HTML report and W&B. They carry language names (and script and
family where known) in their hover text.

The PNG files that ``xlexp matrix``, ``compare``, ``reproduce`` and ``predict`` write are the other back
end, matplotlib, in ``xlexp.views.png``; the two share its axis labels and fitted colour range. No other
module draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from xlexp.results.languages import group_order, info
from xlexp.results.query import TRANSFER_MEAN, Matrix, is_in_language
from xlexp.views.png import _tick, fitted_range


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
