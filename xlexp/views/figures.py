"""Plotly figures of matrices, K-curves and selection-rule gaps, for the HTML report and for W&B.

Every figure carries language names (and script and family where known) in its hover text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from xlexp.results.langmeta import group_order, info
from xlexp.views.console import Matrix


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
    """Targets grouped by family then script (see ``langmeta.group_order``), sources likewise."""
    if not group:
        return m
    cols = group_order([str(c) for c in m.mean.columns])
    rows = group_order([str(r) for r in m.mean.index])

    def re(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.reindex(index=rows, columns=cols)

    return Matrix(m.experiment, m.metric, re(m.mean), re(m.std), re(m.n))


def heatmap_figure(m: Matrix, title: str, zrange: tuple[float, float] = (0.0, 1.0)) -> go.Figure:
    """Sources x targets (transposed when there are many more targets than sources), value in each
    cell when the matrix is small, mean ± std (n) and language names on hover."""
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
            hover[i, j] = (f"{row_role}: {_lang_label(r)}<br>{col_role}: {_lang_label(c)}<br>"
                           f"{m.metric}: {z[i, j]:.3f}{spread} (n={int(counts[i, j])})")
    small = z.size <= 400
    trace = go.Heatmap(
        z=_plain(z), x=cols, y=rows, customdata=_plain(hover), hovertemplate="%{customdata}<extra></extra>",
        colorscale="Viridis", zmin=zrange[0], zmax=zrange[1], colorbar={"title": {"text": m.metric}},
        texttemplate="%{z:.2f}" if small else None, xgap=1, ygap=1,
    )
    fig = go.Figure(trace)
    many = len(rows) > 40  # e.g. SIB-200's 205 targets: every label, small, 14 px a row
    fig.update_layout(
        title={"text": title, "font": {"size": 14}}, xaxis={"title": col_role, "type": "category", "tickangle": -45},
        yaxis={"title": row_role, "type": "category", "autorange": "reversed",
               **({"dtick": 1, "tickfont": {"size": 9}} if many else {})},
        height=min(180 + (14 if many else 34) * len(rows), 3200), margin={"l": 90, "r": 20, "t": 50, "b": 70},
    )
    if transpose and len(cols) <= 6:  # a tall, thin matrix needs no full-page width
        fig.update_layout(width=max(760, 400 + 110 * len(cols)))
    return fig


def kcurve_figure(frame: pd.DataFrame, metric: str, title: str) -> go.Figure:
    """Score vs K, one line per target, error bars = std over shot sets x seeds (``kcurve_frame``)."""
    fig = go.Figure()
    for target in group_order([str(t) for t in frame["target"].unique()]):
        t = frame[frame["target"] == target].sort_values("k")
        fig.add_trace(go.Scatter(
            x=[str(k) for k in t["k"]], y=_plain(t["mean"].astype(float)), mode="lines+markers",
            name=f"{target} ({info(target).name})",
            error_y={"type": "data", "array": _plain(t["std"].fillna(0).astype(float)), "visible": True},
            customdata=[[float(s), int(n)] for s, n in zip(t["std"].fillna(0), t["n"])],
            hovertemplate=(f"{_lang_label(target)}<br>K=%{{x}}<br>{metric}: %{{y:.3f}} ± %{{customdata[0]:.3f}}"
                           " (n=%{customdata[1]})<extra></extra>"),
        ))
    fig.update_layout(title={"text": title, "font": {"size": 14}},
                      xaxis={"title": "K (shots per class; 0 = zero-shot)", "type": "category"},
                      yaxis={"title": metric}, height=420, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


def gap_figure(frame: pd.DataFrame, metric: str, title: str) -> go.Figure:
    """Grouped bars per (source →) target: score under each other selection rule minus source_dev
    (rows of ``slices.selection_gap_frame``)."""
    frame = frame.copy()
    order = {t: i for i, t in enumerate(group_order([str(t) for t in frame["target"].unique()]))}
    frame = frame.assign(_o=frame["target"].map(order)).sort_values(["source", "_o"])
    several = frame["source"].nunique() > 1
    x = [f"{s}→{t}" if several else str(t) for s, t in zip(frame["source"], frame["target"])]
    hover = [f"source: {_lang_label(s)}<br>target: {_lang_label(t)}" for s, t in zip(frame["source"], frame["target"])]
    fig = go.Figure()
    for col in [c for c in frame.columns if str(c).endswith(" - source_dev")]:
        fig.add_trace(go.Bar(x=x, y=_plain(frame[col].astype(float)), name=col, customdata=hover,
                             hovertemplate=f"%{{customdata}}<br>{col}: %{{y:+.3f}}<extra></extra>"))
    fig.update_layout(title={"text": title, "font": {"size": 14}}, barmode="group",
                      xaxis={"title": "source → target" if several else "target", "type": "category"},
                      yaxis={"title": f"Δ {metric}", "zeroline": True},
                      height=400, margin={"l": 60, "r": 20, "t": 50, "b": 80})
    return fig
