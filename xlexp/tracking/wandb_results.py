"""What a W&B run shows: the records as a long and a wide ``wandb.Table``, a heatmap per matrix (plotly
figure + PNG, targets in one order), summary keys ``xfer/...``, K-curves and selection-rule gaps
(aggregate runs), and the records and predictions as an Artifact. The tracker and ``xlexp report
--wandb`` (``xlexp.tracking.wandb_tracker``) log them.

Why a module of its own: this is a reading of the records (through ``xlexp.results.query`` and
``xlexp.results.frames``, drawn by ``xlexp.views.figures`` and ``xlexp.views.png``), independent of how
a run is started, guarded and finished. wandb itself is imported lazily (:func:`import_wandb`).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xlexp.config.paths import find_config
from xlexp.errors import XlexpError
from xlexp.results.frames import kcurve_frame, selection_gap_frame
from xlexp.results.languages import group_order
from xlexp.results.query import metrics_of
from xlexp.results.slices import headline, slice_keys, slice_matrix
from xlexp.results.store import current_log_dir, load_predictions
from xlexp.views.figures import gap_figure, heatmap_figure, kcurve_figure, ordered
from xlexp.views.png import matrix_png


def import_wandb():
    # W&B's own error-reporting telemetry retries an unreachable server for ~10 s at process exit;
    # a tracker must not hang a run, so it is off unless the user turned it on.
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    import wandb

    return wandb


def _table_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Records as W&B table columns: ints stay ints, missing K/shot set/... become NaN/''."""
    out = df.copy()
    for col in ("k", "shot_set", "trial", "step"):
        if col in out:
            out[col] = pd.to_numeric(out[col], errors="coerce")
    if "study" in out:
        out["study"] = out["study"].fillna("").astype(str)
    return out.reset_index(drop=True)


def _matrices(df: pd.DataFrame, keys):
    """(slice key, metric, matrix) for every slice and metric that has cells."""
    for key in keys:
        for metric in metrics_of(df):
            try:
                yield key, metric, slice_matrix(df, key, metric)
            except XlexpError:
                continue


def task_languages(task: str) -> list[str]:
    """Every language of a task (its config's ``languages``), in the report's family/script order;
    empty when the task's config is not found (a task from another machine's config folders)."""
    path = find_config("task", task)
    if path is None:
        return []
    from omegaconf import OmegaConf

    languages = OmegaConf.load(path).get("languages") or {}
    return group_order([str(code) for code in languages])


WIDE_KEYS = ["metric", "model", "task", "regime", "selection", "k", "source"]


def wide_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (slice, metric, source), one column per target: the matrices side by side. The
    target columns are every language of the task (then any other target recorded), not only this
    run's, so every run of a task logs the same columns and W&B can merge their tables."""
    targets = [t for task in sorted(df["task"].astype(str).unique()) for t in task_languages(task)]
    targets = list(dict.fromkeys(targets + group_order(sorted(set(df[df["split"] == "test"]["target"].astype(str))))))
    rows = []
    for key, metric, m in _matrices(df, slice_keys(df)):
        for source, values in m.mean.iterrows():
            cells = {str(t): float(v) for t, v in values.items()}
            rows.append(
                {
                    "metric": metric,
                    "model": key.model,
                    "task": key.task,
                    "regime": key.regime,
                    "selection": key.selection,
                    "k": np.nan if key.k is None else key.k,
                    "source": str(source),
                    **{t: cells.get(t, np.nan) for t in targets},
                }
            )
    return pd.DataFrame(rows, columns=[*WIDE_KEYS, *targets]) if rows else pd.DataFrame()


def summary_keys(df: pd.DataFrame) -> dict[str, float]:
    """``xfer/{source}/{target}/{metric}`` for the headline slice (no K, source_dev when there) and
    ``xfer/{source}/{target}/{slice}/{metric}`` for the others, plus ``xfer/mean/...`` per matrix: the
    mean of its cross-lingual cells (in-language cells, target = source, left out; no key when the
    matrix has only those, as regime=full has) and ``xfer/in_language/...``, their mean, when it has any."""
    keys = slice_keys(df)
    if not keys:
        return {}
    top = headline(keys)
    out: dict[str, float] = {}
    for key, metric, m in _matrices(df, keys):
        part = "" if key == top else key.varying(keys) + "/"
        for source, values in m.mean.iterrows():
            for target, v in values.items():
                if not pd.isna(v):
                    out[f"xfer/{source}/{target}/{part}{metric}"] = float(v)
        transfer = m.transfer_mean()
        if not np.isnan(transfer):
            out[f"xfer/mean/{part}{metric}"] = transfer
        own = m.mean.to_numpy(dtype=float)[m.in_language_mask().to_numpy()]
        if (~np.isnan(own)).any():
            out[f"xfer/in_language/{part}{metric}"] = float(np.nanmean(own))
    return out


def log_results(run, df: pd.DataFrame, curves: bool = False) -> None:
    """Log records ``df`` to ``run``: long and wide tables, a heatmap (plotly + PNG) per slice and
    metric, summary keys; with ``curves`` also K-curves and selection-rule gaps (aggregate runs)."""
    wandb = import_wandb()
    payload: dict[str, Any] = {"matrix/long": wandb.Table(dataframe=_table_frame(df))}
    wide = wide_frame(df)
    if not wide.empty:
        payload["matrix/wide"] = wandb.Table(dataframe=wide)
    keys = slice_keys(df)
    with tempfile.TemporaryDirectory(prefix="xlexp-wandb-") as tmp:
        for key, metric, m in _matrices(df, keys):
            part = "" if key == headline(keys) else key.varying(keys) + "/"
            title = f"{key.experiment}: {metric} (test) — {key.label()}"
            m = ordered(m)  # one order for both figures: families, then scripts
            payload[f"heatmap/{part}{metric}"] = wandb.Plotly(heatmap_figure(m, title))
            png = Path(tmp) / f"{len(payload)}.png"
            matrix_png(m, png, title=title)
            payload[f"heatmap_png/{part}{metric}"] = wandb.Image(str(png), caption=title)
        if curves:
            for experiment in sorted(df["experiment"].unique()):
                for metric in metrics_of(df):
                    _add_curves(payload, df, experiment, metric, wandb)
        run.log(payload)  # media files are copied into the run folder here, before tmp goes
    run.summary.update(summary_keys(df))


def _artifact_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]


def log_records_artifact(run, df: pd.DataFrame, results_dir: Path | None) -> None:
    """The unit's records (and its per-example test predictions, when the store has them) as one
    W&B Artifact of type ``xlexp-results``: the files a result came from, versioned with the run."""
    wandb = import_wandb()
    run_id = str(df["run_id"].iloc[0])
    sources = sorted(df["source"].astype(str).unique())
    seeds = sorted(int(s) for s in df["seed"].unique())
    name = _artifact_name(f"records-{run_id}-{'.'.join(sources)}-s{'.'.join(map(str, seeds))}")
    preds = pd.DataFrame()
    if results_dir is not None:
        preds = load_predictions(results_dir, run_ids=[run_id])
        if not preds.empty:
            preds = preds[preds["source"].astype(str).isin(sources) & preds["seed"].isin(seeds)]
    meta = {
        "experiment": str(df["experiment"].iloc[0]),
        "run_id": run_id,
        "sources": sources,
        "seeds": seeds,
        "records": int(len(df)),
        "predictions": int(len(preds)),
        "log_dir": str(df["log_dir"].dropna().iloc[0])
        if "log_dir" in df and df["log_dir"].notna().any()
        else current_log_dir(),
    }
    artifact = wandb.Artifact(
        name,
        type="xlexp-results",
        metadata=meta,
        description="xlexp records (long format) and per-example test predictions of one unit",
    )
    with tempfile.TemporaryDirectory(prefix="xlexp-wandb-") as tmp:
        df.to_parquet(Path(tmp) / "records.parquet", index=False)
        artifact.add_file(str(Path(tmp) / "records.parquet"))  # copied into W&B's staging area here
        if not preds.empty:
            preds.to_parquet(Path(tmp) / "predictions.parquet", index=False)
            artifact.add_file(str(Path(tmp) / "predictions.parquet"))
        run.log_artifact(artifact)


def _add_curves(payload: dict[str, Any], df: pd.DataFrame, experiment: str, metric: str, wandb) -> None:
    curves = kcurve_frame(df, experiment, metric)
    if not curves.empty:
        payload[f"kcurve/table/{metric}"] = wandb.Table(dataframe=curves.assign(std=curves["std"].astype(float)))
        for (model, task, source, selection), part in curves.groupby(["model", "task", "source", "selection"]):
            title = f"{experiment}: {metric} vs K — {model} · {task} · source {source} · selection {selection}"
            payload[f"kcurve/{source}.{selection}/{metric}"] = wandb.Plotly(kcurve_figure(part, metric, title))
    gaps = selection_gap_frame(df, experiment, metric)
    if not gaps.empty:
        payload[f"selection_gap/table/{metric}"] = wandb.Table(dataframe=gaps.assign(k=pd.to_numeric(gaps["k"])))
        for (regime, k), part in gaps.groupby(["regime", "k"], dropna=False):
            shots = "" if pd.isna(k) else f".k{int(k)}"
            title = f"{experiment}: selection-rule gap ({metric}) — {regime}{shots}"
            payload[f"selection_gap/{regime}{shots}/{metric}"] = wandb.Plotly(gap_figure(part, metric, title))
