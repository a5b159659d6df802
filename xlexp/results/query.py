"""THE query layer over the results store: which records a view shows and how they are summarised.

Every reader of the store goes through here (``xlexp matrix``, the end-of-run table, the HTML
report, W&B, ``compare``, ``table`` and ``reproduce``), so the rules they share are written once:

- ``latest``: per replicate (``REPLICATE``: experiment, model, task, regime, selection, split,
  metric, source, target, seed, K, shot set; for dev records also the evaluation step) the newest
  record wins, so a re-run replaces its cell instead of being averaged with it; seeds and shot sets
  are then averaged (``cell_stats``: mean, std, n);
- ``default_metric`` (macro_f1 when recorded, else the first by name) and ``default_selection``
  (the first of ``SELECTION_ORDER`` recorded, else the first by name);
- ``unknown_experiment``: the one "no records for experiment ... Known: ..." error;
- ``Matrix`` (sources x targets mean/std/n), ``pivot`` (an experiment's matrix) and few-shot summaries.

Built on these: slices (one matrix per experiment, model, task, regime, selection rule and K) are in
``xlexp.results.slices``; the frames (K-curves, selection-rule gaps, what ``compare`` and ``reproduce``
read, predicted cells) in ``xlexp.results.frames``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xlexp.errors import XlexpError
from xlexp.results.store import load_records, require_records

SELECTION_ORDER = ("source_dev", "target_dev", "last")
DEFAULT_METRIC = "macro_f1"
REPLICATE = (
    "experiment",
    "model",
    "task",
    "regime",
    "selection",
    "split",
    "metric",
    "source",
    "target",
    "seed",
    "k",
    "shot_set",
)


@dataclass
class Matrix:
    experiment: str
    metric: str
    mean: pd.DataFrame  # sources x targets
    std: pd.DataFrame
    n: pd.DataFrame  # replicates (seeds x shot sets) per cell

    @property
    def shape(self) -> tuple[int, int]:
        return self.mean.shape

    def in_language_mask(self) -> pd.DataFrame:
        """True where the target is the source, or one of a source set's languages (``eng+ind`` ->
        ``eng``): cells that measure in-language performance, not transfer."""
        return pd.DataFrame(
            [[is_in_language(r, c) for c in self.mean.columns] for r in self.mean.index],
            index=self.mean.index,
            columns=self.mean.columns,
            dtype=bool,
        )

    def transfer_mean(self) -> float:
        """Mean over the cross-lingual cells only (the in-language cells left out); NaN when there are none.
        What every view calls "mean": with the diagonal in, a 1 x 4 matrix's mean is a quarter in-language."""
        values = self.mean.to_numpy(dtype=float)[~self.in_language_mask().to_numpy()]
        values = values[~pd.isna(values)]
        return float(values.mean()) if values.size else float("nan")

    def transfer_cells(self) -> pd.DataFrame:
        """The cell means with the in-language cells blanked: what every "mean without in-language
        cells" (``TRANSFER_MEAN``) of a row, a column or the whole matrix averages."""
        return self.mean.astype(float).where(~self.in_language_mask())

    def in_language_cells(self) -> pd.DataFrame:
        """The cell means with every cross-lingual cell blanked (shown apart from the transfer mean)."""
        return self.mean.astype(float).where(self.in_language_mask())

    def in_language(self) -> Matrix | None:
        """A diagonal-only matrix (regime=full) as one ``in-language`` row over the targets, else None."""
        rows, cols = [str(r) for r in self.mean.index], [str(c) for c in self.mean.columns]
        if len(rows) < 2 or not (self.mean.notna().to_numpy() == [[r == c for c in cols] for r in rows]).all():
            return None
        diagonal = [r for r in rows if r in cols]

        def row(frame: pd.DataFrame) -> pd.DataFrame:
            return pd.DataFrame([[frame.at[c, c] for c in diagonal]], index=["in-language"], columns=diagonal)

        return Matrix(self.experiment, self.metric, row(self.mean), row(self.std), row(self.n))


# The one label of the one matrix mean (console, table, PNG, HTML, W&B): Matrix.transfer_mean, the
# mean over the cross-lingual cells; in-language cells (target = a source) are shown apart.
TRANSFER_MEAN = "mean without in-language cells"


def points_metric(metric: str) -> bool:
    """Metrics recorded in points (0-100, sacrebleu's chrF++ and BLEU); every other metric is a fraction in
    [0, 1] (docs/metrics.md). Views that print x100 leave points as they are."""
    return str(metric).startswith(("chrf", "bleu"))


def is_in_language(source, target) -> bool:
    """The target is the source language (or one of a ``+``-joined source set's)."""
    return str(target) in str(source).split("+")


def load(results_dir: Path | str, required: bool = True) -> pd.DataFrame:
    """Every record of the store; when ``required``, an error naming the fix if there is none."""
    return require_records(results_dir) if required else load_records(results_dir)


# ---- the shared rules ----------------------------------------------------------------------------


def k_value(v) -> int | None:
    """A record's K as an int, or None for cells without shots (stored as None/NaN, or K = 0 for the
    zero-shot cell of a few-shot run)."""
    return None if v is None or pd.isna(v) or int(v) == 0 else int(v)


def shot_set_value(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """The newest record of each replicate (see ``REPLICATE``), in timestamp order."""
    frame = df.sort_values("timestamp", kind="stable")
    key = frame[list(REPLICATE)].assign(
        k=frame["k"].map(k_value),
        shot_set=frame["shot_set"].map(shot_set_value),
        step=frame["step"].where(frame["split"] != "test"),
    )
    return frame[~key.duplicated(keep="last")]


def cell_stats(df: pd.DataFrame, by: list[str], keep_k: bool = False) -> pd.DataFrame:
    """Long-format mean, std and n of ``value`` over the latest replicates, grouped by ``by``
    (K and shot set as in ``k_value`` unless ``keep_k``)."""
    frame = latest(df)
    if not keep_k:
        frame = frame.assign(k=frame["k"].map(k_value), shot_set=frame["shot_set"].map(shot_set_value))
    return frame.groupby(by, dropna=False)["value"].agg(mean="mean", std="std", n="count").reset_index()


def default_metric(metrics: Iterable[str], primary: str | None = None) -> str:
    """The task's primary metric when the records name it (``primary_metric``), else macro_f1 when
    recorded (stores written before the field), else the first by name."""
    known = sorted(set(metrics))
    if primary is not None and primary in known:
        return primary
    return DEFAULT_METRIC if DEFAULT_METRIC in known or not known else known[0]


def recorded_primary(df: pd.DataFrame) -> str | None:
    """The primary metric the records of one task carry (None: older records, or several tasks)."""
    if "primary_metric" not in df.columns:
        return None
    values = df["primary_metric"].dropna().astype(str).unique()
    return str(values[0]) if len(values) == 1 else None


def _rule_rank(rule: str) -> int:
    return SELECTION_ORDER.index(rule) if rule in SELECTION_ORDER else len(SELECTION_ORDER)


def default_selection(rules: Iterable[str]) -> str:
    return min(set(rules), key=lambda r: (_rule_rank(r), r))


def choose_metric(metrics: Iterable[str], wanted: str | None, experiment: str, primary: str | None = None) -> str:
    """``wanted`` when recorded, else the default metric; an error listing the metrics otherwise."""
    known = sorted(set(metrics))
    metric = wanted or default_metric(known, primary)
    if metric not in known:
        raise XlexpError(f"experiment '{experiment}' has no metric '{metric}'. Its metrics: {', '.join(known)}")
    return metric


def metrics_of(df: pd.DataFrame, split: str = "test") -> list[str]:
    return sorted(df[df["split"] == split]["metric"].unique())


def unknown_experiment(df: pd.DataFrame, names: Sequence[str], also: str = "") -> XlexpError:
    """The one error for experiment names the store does not hold, listing those it does."""
    which = ", ".join(f"'{n}'" for n in names)
    known = ", ".join(sorted(df["experiment"].unique()))
    return XlexpError(f"no records for experiment{'s' if len(names) > 1 else ''} {which}{also}. Known: {known}")


def experiment_records(df: pd.DataFrame, experiment: str) -> pd.DataFrame:
    sub = df[df["experiment"] == experiment]
    if sub.empty:
        raise unknown_experiment(df, [experiment])
    return sub


def experiments_by_recency(df: pd.DataFrame) -> list[str]:
    """Experiment names, the one with the newest record first."""
    return list(df.groupby("experiment")["timestamp"].max().sort_values(ascending=False, kind="stable").index)


def latest_experiment(df: pd.DataFrame) -> str:
    return experiments_by_recency(df)[0]


def records_of(df: pd.DataFrame, ident: str) -> pd.DataFrame:
    """The records of experiment ``ident``, or of the one run whose id starts with ``ident``."""
    if ident in set(df["experiment"]):
        return df[df["experiment"] == ident]
    runs = sorted(r for r in df["run_id"].unique() if str(r).startswith(ident))
    if len(runs) == 1:
        return df[df["run_id"] == runs[0]]
    recent = runs[:5] or list(dict.fromkeys(df.sort_values("timestamp", kind="stable")["run_id"]))[-5:]
    what = "several run ids start with it" if runs else "nor a run id starting with it"
    raise unknown_experiment(df, [ident], f" ({what}; {'those' if runs else 'recent'} run ids: {', '.join(recent)})")


# ---- an experiment's matrix --------------------------------------------------------------------

# What one matrix never mixes: cells of different models, tasks or regimes are not replicates of each
# other, so averaging them (as seeds) or placing them side by side (as sources) would be a wrong number.
UNMIXED = ("model", "task", "regime")


def one_of_each(sub: pd.DataFrame, experiment: str, **wanted: str | None) -> pd.DataFrame:
    """``sub`` restricted to the model, task and regime asked for; an error naming the option when the
    records still hold several of one (``xlexp matrix --model ...``), so no view silently mixes them."""
    for name in UNMIXED:
        value = wanted.get(name)
        if value is not None:
            values = sorted(sub[name].astype(str).unique())
            sub = sub[sub[name].astype(str) == str(value)]
            if sub.empty:
                raise XlexpError(f"experiment '{experiment}' has no {name} '{value}'. Its {name}s: {', '.join(values)}")
    for name in UNMIXED:
        values = sorted(sub[name].astype(str).unique())
        if len(values) > 1:
            raise XlexpError(
                f"experiment '{experiment}' holds several {name}s ({', '.join(values)}) whose cells are "
                f"never averaged or mixed; choose one with --{name}"
            )
    return sub


def select(
    df: pd.DataFrame,
    experiment: str | None = None,
    metric: str | None = None,
    split: str = "test",
    selection: str | None = None,
    few_shot: bool = False,
    model: str | None = None,
    task: str | None = None,
    regime: str | None = None,
) -> tuple[pd.DataFrame, str, str]:
    """Latest replicates of one experiment/metric/split under ONE selection rule (default:
    ``default_selection`` of the cells kept). Cells without shots (K = 0 or none) only; ``few_shot``
    keeps K > 0 instead (few-shot cells have their own rule: target_dev or last; in-context cells none).
    One rule, so that a summary's n counts each (source, target, seed, K, shot set) cell once."""
    experiment = experiment or latest_experiment(df)
    sub = experiment_records(df, experiment)
    sub = sub[sub["split"] == split]
    k = pd.to_numeric(sub["k"], errors="coerce")
    sub = sub[k > 0] if few_shot else sub[k.isna() | (k == 0)]
    if sub.empty:
        raise XlexpError(
            f"experiment '{experiment}' has no {'few-shot (K > 0) ' if few_shot else ''}{split} records here"
        )
    sub = one_of_each(sub, experiment, model=model, task=task, regime=regime)
    if split == "test":
        rules = sorted(sub["selection"].unique())
        selection = selection or default_selection(rules)
        if selection not in rules:
            raise XlexpError(
                f"experiment '{experiment}' has no records under selection '{selection}'. Recorded: {', '.join(rules)}"
            )
        sub = sub[sub["selection"] == selection]
    metric = choose_metric(sub["metric"], metric, experiment, recorded_primary(sub))
    return latest(sub[sub["metric"] == metric]), experiment, metric


def matrix_of(records: pd.DataFrame, experiment: str, metric: str, order: pd.DataFrame | None = None) -> Matrix:
    """Sources x targets (in the order they first appear) of records of one metric; with ``order``
    (records of the same experiment, e.g. under every selection rule), in the order they first appear
    there, so that every rule's matrix lists the languages in one order."""
    frame = latest(records)
    sources, targets = list(dict.fromkeys(frame["source"])), list(dict.fromkeys(frame["target"]))
    if order is not None:
        sources = sorted(sources, key=list(dict.fromkeys([*order["source"], *sources])).index)
        targets = sorted(targets, key=list(dict.fromkeys([*order["target"], *targets])).index)
    stats = cell_stats(frame, ["source", "target"])

    def table(col: str) -> pd.DataFrame:
        return stats.pivot(index="source", columns="target", values=col).reindex(index=sources, columns=targets)

    return Matrix(experiment, metric, table("mean"), table("std"), table("n"))


def pivot(
    df: pd.DataFrame,
    experiment: str | None = None,
    metric: str | None = None,
    split: str = "test",
    selection: str | None = None,
    model: str | None = None,
    task: str | None = None,
    regime: str | None = None,
) -> Matrix:
    sub, experiment, metric = select(df, experiment, metric, split, selection, model=model, task=task, regime=regime)
    everything = experiment_records(df, experiment)  # every rule: target_dev lists the languages as source_dev does
    return matrix_of(sub, experiment, metric, order=everything[everything["split"] == split])


def few_shot_summary(
    df: pd.DataFrame,
    experiment: str | None = None,
    metric: str | None = None,
    model: str | None = None,
    task: str | None = None,
) -> pd.DataFrame:
    """Mean, std and count over shot sets x seeds per (source, target, K), with the K = 0 cell added:
    one rule per cell, so count = shot sets x seeds."""
    sub, experiment, metric = select(df, experiment, metric, few_shot=True, model=model, task=task)
    zero, _, _ = select(
        df,
        experiment,
        metric,
        model=str(sub["model"].iloc[0]),
        task=str(sub["task"].iloc[0]),
        regime=str(sub["regime"].iloc[0]),
    )
    both = pd.concat([zero.assign(k=0), sub])
    both["k"] = pd.to_numeric(both["k"]).astype(int)
    out = cell_stats(both, ["source", "target", "k"], keep_k=True).rename(columns={"n": "count"})
    out.attrs.update(experiment=experiment, metric=metric)
    return out
