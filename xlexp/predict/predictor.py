"""One prediction: the measured matrix from the store, its features, the completion, the files.

``measured_matrix`` reads the cells through the one query layer (``xlexp.results.query``: latest
replicate, mean over seeds, the default selection rule); ``predict_matrix`` adds the rows and
columns asked for (``sources``/``targets``: languages not trained or tested yet), builds the
pair features (the model's view of each language when the model is an encoder and the task's
text is here), completes, and writes the predicted cells, and only those, through
``xlexp.results.predicted``. ``matrix_from_csv`` reads a published matrix (long ``source,target,value``
/ xpos's ``lang_train,lang_pred,score``, or wide) for ``xlexp predict --evaluate --matrix-csv``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xlexp.errors import XlexpError
from xlexp.predict.complete import Completion, CompletionSettings, complete
from xlexp.predict.features import PairFeatures, pair_features, task_views, train_sizes
from xlexp.results import query
from xlexp.results.predicted import write_predicted

log = logging.getLogger(__name__)


@dataclass
class Measured:
    experiment: str
    model: str
    task: str
    metric: str
    selection: str
    matrix: pd.DataFrame  # sources x targets, NaN where not measured


@dataclass
class Prediction:
    measured: Measured
    sources: list[str]
    targets: list[str]
    y: np.ndarray  # measured values (NaN elsewhere), sources x targets
    features: PairFeatures
    completion: Completion
    path: Path | None = None

    def frame(self) -> pd.DataFrame:
        """Long format: every cell, measured or predicted (``predicted`` column), with intervals."""
        rows = []
        for i, s in enumerate(self.sources):
            for j, t in enumerate(self.targets):
                measured = bool(self.completion.observed[i, j])
                rows.append(
                    dict(
                        source=s,
                        target=t,
                        value=float(self.y[i, j]) if measured else float(self.completion.mean[i, j]),
                        low=np.nan if measured else float(self.completion.low[i, j]),
                        high=np.nan if measured else float(self.completion.high[i, j]),
                        predicted=not measured,
                    )
                )
        return pd.DataFrame(rows)


def measured_matrix(
    results_dir: Path | str,
    experiment: str | None = None,
    task: str | None = None,
    model: str | None = None,
    metric: str | None = None,
    selection: str | None = None,
    records: pd.DataFrame | None = None,
) -> Measured:
    """``records``: these records instead of the whole store (active filling passes the records of
    the units it trained, found by content)."""
    df = query.load(results_dir) if records is None else records
    if experiment is None and (task or model):
        sub = df[(df["split"] == "test")]
        sub = sub[(sub["task"] == task) if task else True]
        sub = sub[(sub["model"] == model) if model else True]
        sub = sub[sub["regime"] == "zero_shot"] if "zero_shot" in set(sub["regime"]) else sub
        if sub.empty:
            raise XlexpError(f"no test records for task '{task}' and model '{model}' under {results_dir}")
        experiment = query.experiments_by_recency(sub)[0] if sub["experiment"].nunique() == 1 else None
        if experiment is None:  # several experiments of one task and model: one matrix of all of them
            name = f"{sub['model'].iloc[0]}-{sub['task'].iloc[0]}"
            df = sub.assign(experiment=name)
            experiment = name
        else:
            df = sub
    sub, experiment, metric = query.select(df, experiment, metric, "test", selection, model=model, task=task)
    m = query.matrix_of(sub, experiment, metric)
    return Measured(
        experiment, str(sub["model"].iloc[0]), str(sub["task"].iloc[0]), metric, str(sub["selection"].iloc[0]), m.mean
    )


def _languages(task: str, which: list[str] | None, present: list[str], data_dir: Path, role: str) -> list[str]:
    """``present`` plus the languages asked for (``all``: every task language with a train split
    for sources, every language for targets)."""
    if not which:
        return present
    if which == ["all"]:
        from xlexp.tasks.spec import load_task

        spec = load_task(task)
        langs = [c for c in spec.languages if role == "targets" or spec.has_split(c, "train", data_dir, "local")]
        return list(dict.fromkeys([*present, *langs]))
    return list(dict.fromkeys([*present, *which]))


def build_features(
    task: str | None,
    model: str | None,
    sources: list[str],
    targets: list[str],
    data_dir: Path | None,
    cache_dir: Path | None,
    model_features: bool = True,
    n_sentences: int = 200,
    text_task: str | None = None,
    text_model: str | None = None,
) -> PairFeatures:
    """``text_task``/``text_model``: the model's view of each language from another task's text,
    matched by language (``features.language_keys``; e.g. SIB-200's parallel Flores-200 sentences
    for a matrix read from a CSV, which has no task or model), instead of the matrix's own."""
    sizes, views = None, None
    if task and data_dir is not None:
        try:
            sizes = train_sizes(task, sources, Path(data_dir))
        except XlexpError as e:
            log.warning("training sizes unavailable: %s", e)
    view_task, view_model = (text_task, text_model or model) if text_task else (task, model)
    if model_features and view_task and view_model and data_dir is not None and cache_dir is not None:
        try:
            views = task_views(
                view_task,
                view_model,
                list(dict.fromkeys([*sources, *targets])),
                Path(data_dir),
                Path(cache_dir),
                n_sentences,
                by_language=bool(text_task),
            )
        except XlexpError as e:
            log.warning("model similarity unavailable (%s); using the other features", e)
            views = None
    return pair_features(sources, targets, sizes, views)


def predict_matrix(
    results_dir: Path | str,
    experiment: str | None = None,
    task: str | None = None,
    model: str | None = None,
    metric: str | None = None,
    selection: str | None = None,
    sources: list[str] | None = None,
    targets: list[str] | None = None,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    model_features: bool = True,
    cfg: CompletionSettings = CompletionSettings(),
    write: bool = True,
    hide_targets: list[str] | None = None,
    records: pd.DataFrame | None = None,
) -> Prediction:
    """``hide_targets``: treat these targets' measured cells as unknown (what would have been
    predicted before testing them); never written (``write`` is ignored then). ``records``: see
    :func:`measured_matrix`."""
    m = measured_matrix(results_dir, experiment, task, model, metric, selection, records)
    srcs = _languages(m.task, sources, [str(s) for s in m.matrix.index], Path(data_dir or "."), "sources")
    tgts = _languages(m.task, targets, [str(t) for t in m.matrix.columns], Path(data_dir or "."), "targets")
    y = m.matrix.reindex(index=srcs, columns=tgts).to_numpy(dtype=float, copy=True)
    for t in hide_targets or []:
        y[:, tgts.index(t)] = np.nan
    write = write and not hide_targets
    n_missing = int(np.isnan(y).sum())
    if not n_missing and model_features:  # a complete matrix: the model's view (minutes) would change nothing
        log.info(
            "predict: all %d cells of the %d source(s) x %d target(s) matrix of %s are measured: nothing to "
            "predict, so the model features are not computed",
            y.size,
            len(srcs),
            len(tgts),
            m.experiment,
        )
        model_features = False
    elif n_missing:
        log.info(
            "predict: %d of the %d cells of the %d source(s) x %d target(s) matrix of %s to predict from %d "
            "measured; features: URIEL and training sizes (seconds)%s",
            n_missing,
            y.size,
            len(srcs),
            len(tgts),
            m.experiment,
            y.size - n_missing,
            f", and {m.model}'s view of each of {len(set(srcs) | set(tgts))} language(s) (up to 200 sentences "
            f"each through the encoder, cached per model and text: seconds per language on a CPU the first "
            f"time, progress below; --no-model-features skips it)"
            if model_features and m.model
            else "",
        )
    feats = build_features(m.task, m.model, srcs, tgts, data_dir, cache_dir, model_features)
    res = complete(y, np.isfinite(y), feats.values, cfg, feats.names, feats.source_similarity, feats.target_similarity)
    pred = Prediction(m, srcs, tgts, y, feats, res)
    if write:
        cells = pred.frame()
        cells = cells[cells["predicted"]]
        note = feats.missing_note()
        cells = cells.assign(
            experiment=m.experiment,
            model=m.model,
            task=m.task,
            metric=m.metric,
            selection=m.selection,
            method=f"low-rank+features ({res.settings.describe() if res.settings else '?'})",
            missing_features=note,
        )
        pred.path = write_predicted(cells, results_dir, m.experiment, m.metric)
    return pred


def next_source(
    task: str,
    model: str,
    candidates: list[str],
    targets: list[str],
    y: np.ndarray,
    data_dir: Path,
    cache_dir: Path,
    model_features: bool = True,
) -> tuple[str, str]:
    """The candidate source to train next, and why (one line): ``y`` is candidates x targets with
    NaN where not measured (a trained source has a measured row). Before anything is measured the
    choice covers the candidates by language similarity alone; after, each candidate row is
    weighted by its predicted interval width and covered by the similarity the completion itself
    borrows by (``active.sequential_choice``'s rule, as ``xlexp predict --evaluate --budget`` scores it)."""
    from xlexp.predict.active import choose_sources, row_uncertainty

    feats = build_features(task, model, candidates, targets, data_dir, cache_dir, model_features)
    measured = [i for i in range(len(candidates)) if np.isfinite(y[i]).any()]
    weight, similarity, why = None, feats.source_similarity, "language similarity (nothing measured yet)"
    if measured:
        res = complete(
            y,
            np.isfinite(y),
            feats.values,
            CompletionSettings(folds=3),
            feats.names,
            feats.source_similarity,
            feats.target_similarity,
        )
        weight = row_uncertainty(res.low, res.high, res.observed)
        if res.row_sim is not None:
            similarity = res.row_sim
        why = f"covers the untrained sources with the widest predicted intervals ({len(measured)} trained)"
    pick = choose_sources(similarity, 1, measured, weight)
    if not pick:
        raise XlexpError("every candidate source is trained already")
    note = feats.missing_note()
    return candidates[pick[0]], why + (f"; {note}" if note else "")


MAX_ABS_SCORE = 1e6  # a score (accuracy, F1, BLEU, a percentage); beyond this a cell is a typo, not a score


def matrix_from_csv(path: Path | str) -> pd.DataFrame:
    """A complete matrix (sources x targets) from a CSV: long (source,target,value or xpos's
    lang_train,lang_pred,score) or wide (first column: source). The file is a user's: every way it
    can be wrong is one line naming the file and the fix (a missing, empty, header-only or all-empty
    file; a text or non-finite cell; two rows for one cell with different values, which an average
    would hide, or a source row given twice in the wide layout, which would become a second source
    whose hidden cells have an observed twin; fewer than 2 sources or targets)."""
    import csv

    where = f"--matrix-csv {path}"
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except FileNotFoundError:
        raise XlexpError(f"{where}: no such file") from None
    except pd.errors.EmptyDataError:
        raise XlexpError(
            f"{where}: the file is empty; give a header (source,target,value, or source then one "
            f"column per target) and one row per cell or source"
        ) from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, csv.Error) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise XlexpError(f"{where}: cannot read it as CSV ({first})") from None
    if df.empty:
        raise XlexpError(f"{where}: a header and no rows; add one row per cell (long) or per source (wide)")
    if len(df.columns) == 1:
        raise XlexpError(
            f"{where}: one column ({str(df.columns[0])[:60]!r}); columns are separated by commas "
            f"(source,target,value, or source then one column per target)"
        )
    for s, t, v in (("source", "target", "value"), ("lang_train", "lang_pred", "score")):
        if {s, t, v} <= set(df.columns):
            long = pd.DataFrame(
                {
                    "source": df[s].str.strip(),
                    "target": df[t].str.strip(),
                    "value": _numbers(df[v], where, v, df.index + 2),
                }
            )
            long = long[long["value"].notna()]
            conflicts = long.groupby(["source", "target"])["value"].nunique()
            conflicts = conflicts[conflicts > 1]
            if len(conflicts):
                src, tgt = conflicts.index[0]
                values = sorted(long[(long.source == src) & (long.target == tgt)]["value"].tolist())
                raise XlexpError(
                    f"{where}: {len(conflicts)} cell(s) given twice with different values, first "
                    f"({src}, {tgt}): {values}; keep one row per (source, target)"
                )
            wide = (
                long.groupby(["source", "target"], as_index=False, sort=False)["value"]
                .first()
                .pivot(index="source", columns="target", values="value")
            )  # duplicates agree (checked above)
            return _checked_shape(wide, where)
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise XlexpError(f"{where}: column(s) {dupes} appear twice in the header; one column per target")
    first = df.columns[0]
    rows = df[first].str.strip()
    twice = sorted(set(rows[rows.duplicated()]))
    if twice:
        raise XlexpError(
            f"{where}: source row(s) {twice[:5]} appear twice; one row per source (a second row would "
            f"become another source whose hidden cells have an observed twin)"
        )
    wide = pd.DataFrame({c: _numbers(df[c], where, c, df.index + 2) for c in df.columns[1:]})
    wide.index = pd.Index(rows, name="source")
    return _checked_shape(wide, where)


def _numbers(column: pd.Series, where: str, name: str, lines) -> pd.Series:
    """A column of cells as floats: empty cells (and NA, nan) are unmeasured; text, inf and
    |value| > MAX_ABS_SCORE are refused naming the line."""
    text = column.astype(str).str.strip()
    empty = text.str.lower().isin(["", "na", "nan", "n/a", "null", "none"])
    values = pd.to_numeric(text.where(~empty), errors="coerce")
    bad = (~empty) & (values.isna() | ~np.isfinite(values.fillna(0)) | (values.abs() > MAX_ABS_SCORE))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise XlexpError(
            f"{where}, line {list(lines)[i]}, column '{name}': {column.iloc[i]!r} is not a score (a finite "
            f"number up to {MAX_ABS_SCORE:g} in size; leave a cell empty when it was not measured)"
        )
    return values.astype(float)


def _checked_shape(wide: pd.DataFrame, where: str) -> pd.DataFrame:
    wide = wide.dropna(how="all").dropna(axis=1, how="all")
    if wide.shape[0] < 2 or wide.shape[1] < 2:
        raise XlexpError(
            f"{where}: {wide.shape[0]} source(s) x {wide.shape[1]} target(s) with a measured cell; "
            f"evaluating a predictor needs at least 2 of each"
        )
    wide.index = wide.index.astype(str)
    wide.columns = wide.columns.astype(str)
    return wide
