"""Slices of an experiment's records: one matrix per (experiment, model, task, regime, selection rule,
K). A :class:`SliceKey` names one; ``slice_keys`` lists an experiment's (headline first: no shots,
then the default selection rule), ``slice_matrix`` draws one, and ``choose_slice`` picks the one a
command means from the options the user gave.

Why a module of its own: the HTML report, W&B, ``table``, ``compare`` and the frames of
``xlexp.results.frames`` show every slice of an experiment, while ``xlexp.results.query`` holds the
rules every view shares (latest replicate, default metric and rule, one experiment's matrix). The
slices are built on those rules (``matrix_of``, ``k_value``, the rule ranking) and import them from
there; the query layer never imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import pandas as pd

from xlexp.errors import XlexpError
from xlexp.results.query import Matrix, _rule_rank, experiment_records, k_value, matrix_of


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

    def varying(self, others: list[SliceKey]) -> str:
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
    """Which slice is the experiment's headline: no shots, then the default selection rule."""
    return (key.k is not None, _rule_rank(key.selection), key.k or 0, key.regime, key.model, key.task, key.selection)


def slice_keys(df: pd.DataFrame, split: str = "test") -> list[SliceKey]:
    """Every slice with records of ``split``, headline slice first."""
    sub = df[df["split"] == split]
    keys = {
        SliceKey(str(r.experiment), str(r.model), str(r.task), str(r.regime), str(r.selection), k_value(r.k))
        for r in sub[["experiment", "model", "task", "regime", "selection", "k"]].drop_duplicates().itertuples()
    }
    return sorted(keys, key=lambda k: (k.experiment, _rank(k)))


def headline(keys: list[SliceKey]) -> SliceKey:
    return min(keys, key=_rank)


def slice_frame(df: pd.DataFrame, key: SliceKey, split: str = "test") -> pd.DataFrame:
    mask = (
        (df["experiment"] == key.experiment)
        & (df["model"] == key.model)
        & (df["task"] == key.task)
        & (df["regime"] == key.regime)
        & (df["selection"] == key.selection)
        & (df["split"] == split)
    )
    ks = df["k"].map(k_value)
    mask &= ks.isna() if key.k is None else (ks == key.k)
    return df[mask]


def slice_matrix(df: pd.DataFrame, key: SliceKey, metric: str, split: str = "test") -> Matrix:
    """The slice's sources x targets matrix (mean over seeds, and shot sets when K > 0)."""
    sub = slice_frame(df, key, split)
    sub = sub[sub["metric"] == metric]
    if sub.empty:
        raise XlexpError(f"slice {key.label()} has no metric '{metric}'")
    order = df[(df["experiment"] == key.experiment) & (df["split"] == split)]  # one language order for every rule
    return matrix_of(sub, key.experiment, metric, order=order)


def choose_slice(df: pd.DataFrame, experiment: str, split: str = "test", **wanted) -> SliceKey:
    """The one slice of an experiment that a command means: filtered by what the user gave; when
    several remain, the headline one if they differ only in selection rule or K, else an error
    naming the options."""
    every = slice_keys(experiment_records(df, experiment), split)
    if not every:
        raise XlexpError(f"experiment '{experiment}' has no {split} records")
    keys = every
    for name, value in wanted.items():
        if value is not None:
            keys = [k for k in keys if str(getattr(k, name)) == str(value)]
            if not keys:
                values = {getattr(k, name) for k in every}
                known = sorted(v for v in values if v is not None)  # K sorts as numbers
                options = [str(v) for v in known] + (["none (no shots)"] if None in values else [])
                raise XlexpError(
                    f"experiment '{experiment}' has no {name} '{value}'. Its {name} values: {', '.join(options)}"
                )
    for name in ("model", "task", "regime"):
        values = sorted({getattr(k, name) for k in keys})
        if len(values) > 1:
            raise XlexpError(
                f"experiment '{experiment}' has several {name}s ({', '.join(values)}); choose one with --{name}"
            )
    return headline(keys)
