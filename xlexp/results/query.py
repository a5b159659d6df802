"""Slices of the results store: one matrix per (experiment, model, task, regime, selection rule, K).

An experiment usually holds one slice, but later regimes add several selection rules per run and
few-shot runs add a K per record; reports, tables and W&B all show one matrix per slice and
metric. Matrices come from ``xlexp.views.console.pivot``; this module only chooses the records.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from xlexp.errors import XlexpError
from xlexp.views.console import Matrix, pivot

SELECTION_ORDER = ("source_dev", "target_dev", "last")


def k_value(v) -> int | None:
    """A record's K as an int, or None for cells without shots (stored as None/NaN, or K = 0 for the
    zero-shot cell of a few-shot run)."""
    return None if v is None or pd.isna(v) or int(v) == 0 else int(v)


def shot_set_value(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


@dataclass(frozen=True, order=True)
class SliceKey:
    experiment: str
    model: str
    task: str
    regime: str
    selection: str
    k: int | None = None

    def label(self) -> str:
        parts = [self.model, self.task, self.regime, f"selection {self.selection}"]
        return " · ".join(parts + ([f"K={self.k}"] if self.k is not None else []))

    def varying(self, others: list["SliceKey"]) -> str:
        """The parts of this key that differ among ``others`` ('' when they are all the same), to
        tell slices apart in short names: ``target_dev``, ``few_shot.source_dev.k10``."""
        parts = []
        for f in fields(self):
            if f.name != "experiment" and len({getattr(o, f.name) for o in others}) > 1:
                v = getattr(self, f.name)
                if v is not None:  # a slice without K is told apart by its regime or other parts
                    parts.append(f"k{v}" if f.name == "k" else str(v))
        return ".".join(parts)


def _rank(key: SliceKey) -> tuple:
    """Which slice is the experiment's headline: no shots, then the honest source_dev selection."""
    sel = SELECTION_ORDER.index(key.selection) if key.selection in SELECTION_ORDER else len(SELECTION_ORDER)
    return (key.k is not None, sel, key.k or 0, key.regime, key.model, key.task)


def slice_keys(df: pd.DataFrame, split: str = "test") -> list[SliceKey]:
    """Every slice with records of ``split``, headline slice first."""
    sub = df[df["split"] == split]
    keys = {SliceKey(str(r.experiment), str(r.model), str(r.task), str(r.regime), str(r.selection), k_value(r.k))
            for r in sub[["experiment", "model", "task", "regime", "selection", "k"]].drop_duplicates().itertuples()}
    return sorted(keys, key=lambda k: (k.experiment, _rank(k)))


def headline(keys: list[SliceKey]) -> SliceKey:
    return min(keys, key=_rank)


def slice_frame(df: pd.DataFrame, key: SliceKey, split: str = "test") -> pd.DataFrame:
    mask = ((df["experiment"] == key.experiment) & (df["model"] == key.model) & (df["task"] == key.task)
            & (df["regime"] == key.regime) & (df["selection"] == key.selection) & (df["split"] == split))
    ks = df["k"].map(k_value)
    mask &= ks.isna() if key.k is None else (ks == key.k)
    return df[mask]


def slice_matrix(df: pd.DataFrame, key: SliceKey, metric: str, split: str = "test") -> Matrix:
    """The slice's sources x targets matrix: ``matrix.pivot`` for cells without shots; few-shot
    cells (K > 0) are averaged over seeds x shot sets here, as pivot only shows K = 0."""
    sub = slice_frame(df, key, split)
    if key.k is None:
        return pivot(sub, key.experiment, metric, split)
    sub = sub[sub["metric"] == metric]
    if sub.empty:
        raise XlexpError(f"slice {key.label()} has no metric '{metric}'")
    stats = cell_stats(sub, ["source", "target"])
    sources, targets = list(dict.fromkeys(sub["source"])), list(dict.fromkeys(sub["target"]))

    def table(col: str) -> pd.DataFrame:
        return stats.pivot(index="source", columns="target", values=col).reindex(index=sources, columns=targets)

    return Matrix(key.experiment, metric, table("mean"), table("std"), table("n"))


def metrics_of(df: pd.DataFrame, split: str = "test") -> list[str]:
    return sorted(df[df["split"] == split]["metric"].unique())


def cell_stats(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Long-format mean, std and n of ``value`` grouped by ``by`` (after keeping the latest record of
    each replicate: a re-run replaces its cell, as in ``pivot``)."""
    replicate = ["experiment", "model", "task", "regime", "selection", "split", "metric", "source", "target",
                 "seed", "k", "shot_set"]
    frame = df.assign(k=df["k"].map(k_value), shot_set=df["shot_set"].map(shot_set_value))
    frame = frame.sort_values("timestamp").drop_duplicates(subset=replicate, keep="last")
    grouped = frame.groupby(by, dropna=False)["value"]
    out = grouped.agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else np.nan, n="count")
    return out.reset_index()


def kcurve_frame(df: pd.DataFrame, experiment: str, metric: str) -> pd.DataFrame:
    """Score vs K per (model, task, source, selection of the few-shot cells, target): mean ± std over
    shot sets x seeds. The experiment's cells without shots (its zero-shot cells, under the headline
    selection rule) are the K = 0 point of every curve of the same model, task and source."""
    columns = ["model", "task", "source", "selection", "target", "k", "mean", "std", "n"]
    sub = df[(df["experiment"] == experiment) & (df["split"] == "test") & (df["metric"] == metric)]
    ks = sub["k"].map(k_value)
    few, zero = sub[ks.notna()], sub[ks.isna()]
    if few.empty:
        return pd.DataFrame(columns=columns)
    parts = [cell_stats(few, ["model", "task", "source", "selection", "target", "k"])]
    if not zero.empty:
        rule = headline(slice_keys(zero)).selection
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
    out = wide[by[:-1]].copy()
    out["source_dev"] = wide["source_dev"]
    for rule in ("target_dev", "last"):
        if rule in wide:
            out[rule] = wide[rule]
            out[f"{rule} - source_dev"] = wide[rule] - wide["source_dev"]
    gaps = [c for c in out.columns if c.endswith(" - source_dev")]
    out = out.dropna(subset=["source_dev"]).dropna(subset=gaps, how="all")
    # a rule recorded only for other cells (few-shot cells have their own rule) is no gap here
    out = out.drop(columns=[c for c in gaps if out[c].isna().all()] +
                   [c.removesuffix(" - source_dev") for c in gaps if out[c].isna().all()])
    return out.reset_index(drop=True) if any(c.endswith(" - source_dev") for c in out.columns) else pd.DataFrame()


def choose_slice(df: pd.DataFrame, experiment: str, split: str = "test", **wanted) -> SliceKey:
    """The one slice of an experiment that a command means: filtered by what the user gave; when
    several remain, the headline one if they differ only in selection rule or K, else an error
    naming the options."""
    keys = slice_keys(df[df["experiment"] == experiment], split)
    if not keys:
        raise XlexpError(f"experiment '{experiment}' has no {split} records")
    for name, value in wanted.items():
        if value is not None:
            keys = [k for k in keys if str(getattr(k, name)) == str(value)]
            if not keys:
                values = {getattr(k, name) for k in slice_keys(df[df["experiment"] == experiment], split)}
                known = sorted(v for v in values if v is not None)  # K sorts as numbers
                options = [str(v) for v in known] + (["none (no shots)"] if None in values else [])
                raise XlexpError(f"experiment '{experiment}' has no {name} '{value}'. Its {name} values: {', '.join(options)}")
    for name in ("model", "task", "regime"):
        values = sorted({getattr(k, name) for k in keys})
        if len(values) > 1:
            raise XlexpError(f"experiment '{experiment}' has several {name}s ({', '.join(values)}); choose one with --{name}")
    return headline(keys)
