"""Frames built on the query layer (``xlexp.results.query``) for one reader each: K-curves and
selection-rule gaps (the console, the HTML report, W&B), the two sides of ``xlexp compare`` and their
per-example predictions, the cells of one run config (``xlexp reproduce``), and predicted cells
(``xlexp predict``, kept apart from the records).

Why a module of its own: each is a reading of the store through the shared rules (``latest``,
``cell_stats``, slices), not a rule itself; the rules stay in ``query``, written once.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xlexp.errors import XlexpError
from xlexp.results.query import (
    SELECTION_ORDER,
    cell_stats,
    choose_metric,
    default_selection,
    experiment_records,
    k_value,
    latest,
    latest_experiment,
    recorded_primary,
    records_of,
    shot_set_value,
)
from xlexp.results.slices import SliceKey, headline, slice_frame, slice_keys
from xlexp.results.store import load_predictions


def selection_gap(df: pd.DataFrame, experiment: str | None = None, metric: str | None = None) -> pd.DataFrame:
    """Per (source, target) of the cells without shots: the test score under each recorded rule,
    then each rule minus source_dev (``selection_gap_frame`` for one model, task and regime)."""
    experiment = experiment or latest_experiment(df)
    sub = experiment_records(df, experiment)
    metric = choose_metric(sub[sub["split"] == "test"]["metric"], metric, experiment, recorded_primary(sub))
    frame = selection_gap_frame(sub, experiment, metric)
    zero = frame[frame["k"].isna()] if not frame.empty else frame
    columns = [r for r in SELECTION_ORDER if r in zero] + [c for c in zero if str(c).endswith(" - source_dev")]
    gap = zero.set_index(["source", "target"])[columns] if not zero.empty else pd.DataFrame()
    gap.attrs["metric"] = metric
    return gap


def kcurve_frame(df: pd.DataFrame, experiment: str, metric: str) -> pd.DataFrame:
    """Score vs K per (model, task, source, selection of the few-shot cells, target): mean ± std over
    shot sets x seeds. The experiment's cells without shots (its zero-shot cells, under the default
    selection rule) are the K = 0 point of every curve of the same model, task and source."""
    columns = ["model", "task", "source", "selection", "target", "k", "mean", "std", "n"]
    sub = df[(df["experiment"] == experiment) & (df["split"] == "test") & (df["metric"] == metric)]
    ks = sub["k"].map(k_value)
    few, zero = sub[ks.notna()], sub[ks.isna()]
    if few.empty:
        return pd.DataFrame(columns=columns)
    parts = [cell_stats(few, ["model", "task", "source", "selection", "target", "k"])]
    if not zero.empty:
        rule = default_selection(zero["selection"])
        zero_stats = cell_stats(zero[zero["selection"] == rule], ["model", "task", "source", "target"])
        curves = parts[0][["model", "task", "source", "selection"]].drop_duplicates()
        parts.append(curves.merge(zero_stats, on=["model", "task", "source"]).assign(k=0))
    out = pd.concat(parts, ignore_index=True)[columns]
    out["k"] = out["k"].astype(int)
    return out.sort_values(["model", "task", "source", "selection", "target", "k"]).reset_index(drop=True)


def selection_gap_frame(df: pd.DataFrame, experiment: str, metric: str) -> pd.DataFrame:
    """Per target: test score under target_dev minus source_dev, and last minus source_dev (for every
    model, task, regime, source and K that has source_dev and at least one other rule)."""
    sub = df[(df["experiment"] == experiment) & (df["split"] == "test") & (df["metric"] == metric)]
    if sub["selection"].nunique() < 2 or "source_dev" not in set(sub["selection"]):
        return pd.DataFrame()
    by = ["model", "task", "regime", "source", "k", "target", "selection"]
    stats = cell_stats(sub, by)
    wide = stats.pivot_table(index=by[:-1], columns="selection", values="mean", dropna=False).reset_index()
    wide.columns.name = None
    out = wide[by[:-1]].copy()
    out["source_dev"] = wide["source_dev"]
    for rule in ("target_dev", "last"):
        if rule in wide:
            out[rule] = wide[rule]
            out[f"{rule} - source_dev"] = wide[rule] - wide["source_dev"]
    gaps = [c for c in out.columns if c.endswith(" - source_dev")]
    out = out.dropna(subset=["source_dev"]).dropna(subset=gaps, how="all")
    # a rule recorded only for other cells (few-shot cells have their own rule) is no gap here
    out = out.drop(
        columns=[c for c in gaps if out[c].isna().all()]
        + [c.removesuffix(" - source_dev") for c in gaps if out[c].isna().all()]
    )
    return out.reset_index(drop=True) if any(c.endswith(" - source_dev") for c in out.columns) else pd.DataFrame()


# ---- what compare and reproduce read -------------------------------------------------------------


def compare_side(df: pd.DataFrame, ident: str, selection: str | None, k: int | None) -> tuple[SliceKey, pd.DataFrame]:
    """One side of ``xlexp compare``: the latest test replicates of the headline slice of an
    experiment or run with exactly K shots (None: the cells without shots) under ``selection``."""
    sub = records_of(df, ident)
    for name in ("model", "task"):  # compare never picks one of several silently: name a run id instead
        values = sorted(sub[sub["split"] == "test"][name].astype(str).unique())
        if len(values) > 1:
            runs = ", ".join(f"{r} ({g[name].iloc[0]})" for r, g in sub.groupby("run_id", sort=False))
            raise XlexpError(
                f"'{ident}' holds several {name}s ({', '.join(values)}); compare one run of it by its run id: {runs}"
            )
    keys = [key for key in slice_keys(sub) if selection is None or key.selection == selection]
    with_k = [key for key in keys if key.k == k]
    if not with_k:
        rules = ", ".join(sorted(sub[sub["split"] == "test"]["selection"].unique()))
        shots = sorted({key.k for key in keys if key.k is not None})
        hint = f"; its K values here: {', '.join(map(str, shots))} (choose one with --k)" if shots else ""
        raise XlexpError(
            f"'{ident}' has no test records with selection {selection or 'any'} and "
            f"{'K ' + str(k) if k is not None else 'no shots'}. Its selection rules: {rules}{hint}"
        )
    key = headline(with_k)
    return key, _filled_shot_set(latest(slice_frame(sub, key)))


def _filled_shot_set(frame: pd.DataFrame) -> pd.DataFrame:  # -1 for none: a key for merges and groups
    return frame.assign(shot_set=frame["shot_set"].map(shot_set_value).fillna(-1).astype(int))


def side_predictions(results_dir: Path | str, key: SliceKey, records: pd.DataFrame) -> pd.DataFrame:
    """The per-example test predictions behind ``compare_side`` records: only those of the run that
    won each replicate, one row per (source, target, seed, shot set, example)."""
    preds = load_predictions(results_dir, run_ids=sorted(records["run_id"].unique()))
    if preds.empty:
        return preds
    ks = preds["k"].map(k_value)
    preds = preds[
        (preds["split"] == "test")
        & (preds["selection"] == key.selection)
        & (ks.isna() if key.k is None else ks == key.k)
    ]
    cells = ["source", "target", "seed", "shot_set"]
    won = records[[*cells, "run_id"]].drop_duplicates()
    preds = _filled_shot_set(preds).merge(won, on=[*cells, "run_id"], how="inner")
    return preds.drop_duplicates([*cells, "example"], keep="last")


def config_cells(df: pd.DataFrame, experiment: str, config_hash: str, metric: str, selection: str) -> pd.DataFrame:
    """Test cells without shots of one run config (``reproduce``): mean over the latest seeds."""
    if df.empty:
        return pd.DataFrame(columns=["source", "target", "value"])
    sub = df[
        (df["experiment"] == experiment)
        & (df["config_hash"] == config_hash)
        & (df["split"] == "test")
        & (df["metric"] == metric)
        & (df["selection"] == selection)
        & df["k"].map(k_value).isna()
    ]
    return latest(sub).groupby(["source", "target"], as_index=False, sort=False)["value"].mean()


# ---- predicted cells (``xlexp predict``): kept apart from the records ------------------------------


def predicted_cells(results_dir: Path | str, experiment: str, metric: str) -> pd.DataFrame:
    """The predicted (never measured) cells of one experiment's matrix: source, target, value, low,
    high (``xlexp.results.predicted``); empty when nothing was predicted."""
    from xlexp.results.predicted import load_predicted

    return load_predicted(results_dir, experiment, metric)
