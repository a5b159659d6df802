"""Pair features for the sources x targets of a matrix, and which of them are missing where.

Per (source, target): the URIEL distances (``xlexp.predict.uriel``: genetic, geographic,
syntactic, phonological, inventory, script), ``same_language`` (the same normalised tag: an
in-language cell), ``script_match`` (ISO 15924 script from ``xlexp.results.languages``),
``log_train_size`` (of the source's training split) and, when a model and the task's text are
given, the model's view (``xlexp.predict.represent``): ``vocab_overlap`` of sub-words and
``model_similarity`` (cosine of mean-pooled hidden states, NN-Rank's signal), from the task's text
or another task's, matched by language (``language_keys``: SIB-200's Flores-200 sentences for the
codes of a matrix read from a CSV). A feature a language lacks is NaN for its cells and listed in
``missing`` (the completion then uses the features that exist), so an unknown code never stops a
prediction.

``source_similarity``/``target_similarity`` are language x language similarities from the same
features (mean URIEL distance, and model similarity when present): the completion uses them for
rows or columns without any measured cell, the active chooser to spread its picks.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xlexp.errors import XlexpError
from xlexp.predict import uriel
from xlexp.predict.represent import cosine
from xlexp.results.languages import normalize_tag, script_of

log = logging.getLogger(__name__)

URIEL_FEATURES = tuple(uriel.CATEGORIES)
SIMILARITY_URIEL = ("genetic", "geographic", "syntactic", "script")


@dataclass
class PairFeatures:
    sources: list[str]
    targets: list[str]
    names: list[str]
    values: np.ndarray  # sources x targets x features, NaN = missing
    missing: dict[str, list[str]] = field(default_factory=dict)  # feature -> languages that lack it
    source_similarity: np.ndarray | None = None  # sources x sources, in [0, 1]
    target_similarity: np.ndarray | None = None  # targets x targets

    def feature(self, name: str) -> np.ndarray:
        return self.values[..., self.names.index(name)]

    def missing_note(self) -> str:
        """One line naming the features some languages lack ('' when none)."""
        groups: dict[tuple[str, ...], list[str]] = {}
        for name, codes in self.missing.items():
            if codes:
                groups.setdefault(tuple(codes), []).append(name)
        parts = [
            f"{', '.join(names)} for {', '.join(codes[:8])}{f' (+{len(codes) - 8})' if len(codes) > 8 else ''}"
            for codes, names in groups.items()
        ]
        return "missing features (used without them): " + "; ".join(parts) if parts else ""

    def subset(self, names: list[str]) -> PairFeatures:
        idx = [self.names.index(n) for n in names if n in self.names]
        return PairFeatures(
            self.sources,
            self.targets,
            [self.names[i] for i in idx],
            self.values[..., idx],
            {k: v for k, v in self.missing.items() if k in names},
            self.source_similarity,
            self.target_similarity,
        )


def _similarity(langs_a: list[str], langs_b: list[str], model_sim: np.ndarray | None = None) -> np.ndarray:
    """exp(-mean URIEL distance / 0.15), averaged with model similarity where given; 0 where unknown."""
    try:
        d = uriel.distances(langs_a, langs_b, list(SIMILARITY_URIEL))
        stack = np.stack([d[k] for k in SIMILARITY_URIEL])
    except XlexpError:  # no URIEL (the predict extra is missing): same language and model similarity only
        stack = np.full((1, len(langs_a), len(langs_b)), np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pair without any distance stays NaN
        mean = np.nanmean(stack, axis=0)
    sim = np.where(np.isfinite(mean), np.exp(-np.nan_to_num(mean, nan=1.0) / 0.15), 0.0)
    same = np.array([[normalize_tag(a) == normalize_tag(b) for b in langs_b] for a in langs_a])
    sim = np.where(same, 1.0, sim)
    if model_sim is not None:
        ok = np.isfinite(model_sim)
        sim = np.where(ok, 0.5 * sim + 0.5 * np.clip(np.nan_to_num(model_sim), 0, 1), sim)
    return sim


def pair_features(
    sources: list[str],
    targets: list[str],
    train_sizes: dict[str, int] | None = None,
    views: dict[str, object] | None = None,
) -> PairFeatures:
    """Features for every (source, target). ``train_sizes``: source -> training examples;
    ``views``: language -> ``represent.LanguageView`` (model similarity and vocabulary overlap)."""
    names, planes, missing = [], [], {}
    try:
        dist = uriel.distances(sources, targets)
        unknown = [c for c in dict.fromkeys([*sources, *targets]) if uriel.uriel_code(c) is None]
        for name in URIEL_FEATURES:
            names.append(f"uriel_{name}")
            planes.append(dist[name])
            lacking = {c for i, c in enumerate(sources) if np.isnan(dist[name][i]).all()}
            lacking |= {c for j, c in enumerate(targets) if np.isnan(dist[name][:, j]).all()}
            missing[f"uriel_{name}"] = sorted(lacking | set(unknown))
    except XlexpError as e:  # the predict extra missing: go on with the other features, say so
        log.warning("URIEL features unavailable: %s", e)
        missing[f"uriel_* ({e})"] = ["every language"]
    tags_s, tags_t = [normalize_tag(c) for c in sources], [normalize_tag(c) for c in targets]
    names.append("same_language")
    planes.append(np.array([[float(a.split("-")[0] == b.split("-")[0]) for b in tags_t] for a in tags_s]))
    scripts_s, scripts_t = [script_of(c) for c in sources], [script_of(c) for c in targets]
    names.append("script_match")
    planes.append(np.array([[float(a == b) if a and b else np.nan for b in scripts_t] for a in scripts_s]))
    missing["script_match"] = sorted({c for c, s in zip([*sources, *targets], [*scripts_s, *scripts_t]) if not s})
    if train_sizes:
        names.append("log_train_size")
        planes.append(
            np.array([[np.log1p(train_sizes[s]) if train_sizes.get(s) else np.nan] * len(targets) for s in sources])
        )
        missing["log_train_size"] = [s for s in sources if not train_sizes.get(s)]
    if views is not None:
        from xlexp.predict.represent import vocab_overlap

        names += ["model_similarity", "vocab_overlap"]
        planes += [
            _view_pairs(views, sources, targets, lambda a, b: cosine(a.mean, b.mean)),
            _view_pairs(views, sources, targets, vocab_overlap),
        ]
        lacking = sorted(c for c in dict.fromkeys([*sources, *targets]) if views.get(c) is None)
        missing["model_similarity"] = missing["vocab_overlap"] = lacking
    values = np.stack(planes, axis=-1)
    src_sim = _similarity(sources, sources, _model_cosines(views, sources))
    tgt_sim = _similarity(targets, targets, _model_cosines(views, targets))
    return PairFeatures(list(sources), list(targets), names, values, missing, src_sim, tgt_sim)


def _view_pairs(views, rows: list[str], cols: list[str], fn) -> np.ndarray:
    """``fn(view_a, view_b)`` for every (row, column) language pair; NaN where a view is missing."""
    out = np.full((len(rows), len(cols)), np.nan)
    for i, a in enumerate(rows):
        for j, b in enumerate(cols):
            va, vb = views.get(a), views.get(b)
            if va is not None and vb is not None:
                out[i, j] = fn(va, vb)
    return out


def _model_cosines(views, langs: list[str]) -> np.ndarray | None:
    return None if views is None else _view_pairs(views, langs, langs, lambda a, b: cosine(a.mean, b.mean))


def language_keys(codes: list[str], keys: list[str], max_distance: int = 3) -> dict[str, str]:
    """Code -> the key of ``keys`` (another task's languages) for the same language, by normalised
    tag (``en`` -> ``eng_Latn``, ``fa`` -> ``pes_Arab``); of several scripts or varieties the one
    nearest by CLDR's tag distance, i.e. the language's usual script (``zh`` -> ``zho_Hans``, ``ar``
    -> ``arb_Arab``) and else the one there is (``sr`` -> ``srp_Cyrl``). Another language only
    within ``max_distance`` (CLDR: a macrolanguage and its standard, ``no`` -> ``nob_Latn``; not
    ``gsw`` -> German). A code without a match is left out."""
    import langcodes

    tags = [normalize_tag(k) for k in keys]
    out = {}
    for c in codes:
        if c in keys:
            out[c] = c
            continue
        tag = normalize_tag(c)
        lang = tag.split("-")[0]
        try:
            d, i = min((t.split("-")[0] != lang, langcodes.tag_distance(tag, t), i) for i, t in enumerate(tags))[1:]
        except (ValueError, langcodes.tag_parser.LanguageTagError):  # a code langcodes cannot parse
            continue
        if tags[i].split("-")[0] == lang or d <= max_distance:
            out[c] = keys[i]
    return out


def task_views(
    task: str,
    model: str,
    langs: list[str],
    data_dir: Path,
    cache_dir: Path,
    n_sentences: int = 200,
    by_language: bool = False,
):
    """Language -> LanguageView for every language with text in the task's data (cached).
    ``by_language``: the codes are another matrix's, matched to the task's languages by
    :func:`language_keys` (e.g. SIB-200's parallel Flores text for UD codes)."""
    from xlexp.predict.represent import Representations, language_texts

    if by_language:
        from xlexp.tasks.spec import load_task

        keys = language_keys(langs, list(load_task(task).languages))
    else:
        keys = {c: c for c in langs}
    texts = {k: language_texts(task, k, data_dir, n_sentences) for k in dict.fromkeys(keys.values())}
    every = [t for ts in texts.values() for t in ts]
    reps = Representations(model, cache_dir, texts_for_tiny=every)
    views, todo = {}, [k for k, ts in texts.items() if ts]
    started = last = time.monotonic()
    for i, k in enumerate(todo, start=1):  # a line at most every 15 s: encoding 200 languages takes minutes
        views[k] = reps.view(k, texts[k])
        if time.monotonic() - last >= 15 or i == len(todo):
            last = time.monotonic()
            rate = i / max(last - started, 1e-9)
            log.info(
                "model features (%s): %d/%d language(s) (%.2f/s)%s",
                model,
                i,
                len(todo),
                rate,
                f", ~{(len(todo) - i) / rate:.0f}s left" if i < len(todo) else "",
            )
    return {c: views[k] for c, k in keys.items() if k in views}


def train_sizes(task: str, sources: list[str], data_dir: Path) -> dict[str, int]:
    """Training examples per source (the task's train split as read; 0 where absent)."""
    from xlexp.errors import XlexpError
    from xlexp.tasks.spec import load_split, load_task

    spec = load_task(task)
    out = {}
    for s in sources:
        if s not in spec.languages:
            out[s] = 0
            continue
        try:
            out[s] = (
                len(load_split(spec, s, "train", data_dir, "local", allow_empty=True))
                if spec.has_split(s, "train", data_dir, "local")
                else 0
            )
        except XlexpError:
            out[s] = 0
    if spec.max_train_examples:
        out = {s: min(n, int(spec.max_train_examples)) for s, n in out.items()}
    return out
