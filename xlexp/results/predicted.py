"""Predicted cells: kept apart from measured records, in their own files.

``xlexp predict`` writes the cells it predicts (never the measured ones) to
``<results_dir>/predicted/<experiment>.<metric>.parquet``: one file per experiment and metric,
replaced by the next prediction (a prediction is a view of the records, not a result). Nothing
under ``runs/`` is ever written here and ``store.load_records`` never reads this folder, so a
predicted value cannot be mistaken for a measured one; every row also says ``predicted=True``.
Views that can show predicted cells (``xlexp matrix --predicted``, the heatmap, the HTML report)
read them through :func:`load_predicted` and draw them apart (hatched / greyed).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from xlexp.config.names import temp_path
from xlexp.results.store import now_iso

PREDICTED_COLUMNS = [
    "experiment",
    "model",
    "task",
    "metric",
    "selection",
    "source",
    "target",
    "value",
    "low",
    "high",
    "predicted",
    "method",
    "missing_features",
    "created",
]


def predicted_dir(results_dir: Path | str) -> Path:
    return Path(results_dir) / "predicted"


def _name(experiment: str, metric: str) -> str:
    return f"{experiment}.{metric}".replace("/", "_")


def write_predicted(frame: pd.DataFrame, results_dir: Path | str, experiment: str, metric: str) -> Path:
    """Replace the predicted cells of (experiment, metric); rows must be predicted (never measured):
    a row marked ``predicted=False`` is refused rather than relabelled, so a measured value can never
    be stored as a prediction by a caller that forgot to filter."""
    if "predicted" in frame and not frame["predicted"].astype(bool).all():
        raise ValueError(
            f"write_predicted: {int((~frame['predicted'].astype(bool)).sum())} measured row(s) given; "
            "only predicted cells belong in results/predicted/"
        )
    frame = frame.assign(predicted=True, created=now_iso())
    missing = [c for c in PREDICTED_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"write_predicted: missing columns {missing}")
    out = predicted_dir(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / f"{_name(experiment, metric)}.parquet"
    tmp = temp_path(final)
    frame[PREDICTED_COLUMNS].to_parquet(tmp, index=False)
    os.replace(tmp, final)
    return final


def load_predicted(results_dir: Path | str, experiment: str | None = None, metric: str | None = None) -> pd.DataFrame:
    """Predicted cells (all, or of one experiment / metric); empty with the right columns if none."""
    folder = predicted_dir(results_dir)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    frames = [pd.read_parquet(f) for f in files]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PREDICTED_COLUMNS)
    if experiment is not None:
        df = df[df["experiment"] == experiment]
    if metric is not None:
        df = df[df["metric"] == metric]
    return df.reset_index(drop=True)
