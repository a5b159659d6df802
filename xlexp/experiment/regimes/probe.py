"""Frozen-encoder probing, MTEB's classification protocol as a transfer regime.

Each text is embedded once with the model's own sentence-embedding recipe (``model.embedding``:
pooling, normalisation, prefix; ``regime.prefix`` replaces the prefix) and cached per (model,
language, split, prefix) (``xlexp.models.embeddings``). For every source, ``regime.draws`` times,
``regime.per_label`` examples of each label are drawn from its train split and a scikit-learn
``LogisticRegression`` (``regime.classifier``: its constructor arguments; MTEB: ``max_iter=100``,
``random_state=42``, otherwise scikit-learn's defaults: lbfgs, L2, C=1, no feature scaling) is fitted
on their vectors; every target's whole test split is scored. In-language (source = target) this is
MTEB's ``AbsTaskClassification`` with ``method="logReg"``; across languages it is a probe transfer
matrix.

The draws follow MTEB's ``_undersample_data`` (mteb 2.x, ``abstasks/classification.py``): one index
permutation of the train split, re-shuffled before each draw by ``np.random.RandomState(seed)``
(``regime.sampling_seed``, MTEB 42; null: the run's seed), then the first ``per_label`` rows of each
label in that order. Each draw is a record's ``shot_set``, so matrices show mean ± std over draws like
few-shot shot sets, and the mean over draws is MTEB's reported score.

Selection-rule free: there are no checkpoints and no dev split, one fit per draw. Records are written
under one rule, ``regime.selection`` (default ``last``: what was fitted is what is tested); every rule
would give the same number, and a 205 x 205 matrix with 10 draws is 840,500 records already.

Task kinds (``task_types``): sentence classification; pair classification, whose features are
``[u, v, |u - v|, u * v]`` of the two sentences' vectors (SentEval/InferSent's pair features: MTEB's
own pair classification is a threshold on one similarity, not a trained probe); retrieval tasks
(Tatoeba) run MTEB's bitext mining (``xlexp.engine.bitext``) with no classifier. Other kinds (token
classification, QA, generation) have no sentence vector to probe and are refused with one line.

Config: ``xlexp/conf/regime/probe.yaml``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xlexp.config.schema import RegimeSettings, positive_int
from xlexp.data.tokenized import TokenizedSplit
from xlexp.engine.bitext import bitext_mining_metrics
from xlexp.engine.inference import compute_metrics, label_counts
from xlexp.errors import XlexpError
from xlexp.experiment.context import RunContext, UnitOutput
from xlexp.experiment.plan import TrainingUnit
from xlexp.experiment.regimes import Regime, register
from xlexp.models.embeddings import EmbeddingCache, recipe_of
from xlexp.tasks.spec import TaskSpec, load_split

log = logging.getLogger(__name__)

PAIR_FEATURES = ("concat_diff_prod",)  # [u, v, |u - v|, u * v]
CLASSIFIERS = ("logistic_regression",)


@dataclass(frozen=True)
class ProbeSettings(RegimeSettings):
    selection: str = "last"  # the one rule records carry (no checkpoints)
    dev_targets: object = "none"  # no dev split is read
    per_label: int = 8  # MTEB: samples_per_label
    draws: int = 10  # MTEB: n_experiments
    sampling_seed: int | None = 42  # MTEB's seed (draws and the classifier's random_state); null: the run's seed
    prefix: str | None = None  # null: the model's own (model.embedding.prefix); "": none
    train_split: str = "train"
    pair_features: str = "concat_diff_prod"
    in_language: bool = False  # true: each target is probed from its own train split only (MTEB's numbers)
    predictions: bool = False  # keep per-example test predictions (a 205 x 205 matrix x 10 draws is 86M rows)
    classifier: Mapping[str, Any] = field(default_factory=lambda: {"name": "logistic_regression", "max_iter": 100})

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int("regime.per_label", self.per_label)
        positive_int("regime.draws", self.draws)
        if self.sampling_seed is not None and (
            not isinstance(self.sampling_seed, int) or isinstance(self.sampling_seed, bool)
        ):
            raise XlexpError(
                f"regime.sampling_seed must be an integer or null (the run's seed); got {self.sampling_seed!r}"
            )
        if self.prefix is not None and not isinstance(self.prefix, str):
            raise XlexpError(
                f'regime.prefix must be a string ("" for none) or null (the model\'s own); got {self.prefix!r}'
            )
        if self.pair_features not in PAIR_FEATURES:
            raise XlexpError(
                f"regime.pair_features must be one of {', '.join(PAIR_FEATURES)}; got {self.pair_features!r}"
            )
        name = dict(self.classifier or {}).get("name", "logistic_regression")
        if name not in CLASSIFIERS:
            raise XlexpError(f"regime.classifier.name must be one of {', '.join(CLASSIFIERS)}; got {name!r}")


def make_probe(settings: ProbeSettings, seed: int):
    """The classifier of one draw: ``LogisticRegression(**regime.classifier)``; ``random_state`` is
    the draw seed unless the options name one. An unknown option fails with one line."""
    from sklearn.linear_model import LogisticRegression

    options = {k: v for k, v in dict(settings.classifier or {}).items() if k != "name"}
    options.setdefault("random_state", seed)
    try:
        return LogisticRegression(**options)
    except TypeError as e:
        raise XlexpError(
            f"regime.classifier: {e} (the keys are LogisticRegression's constructor arguments, e.g. "
            f"max_iter, C, solver)"
        ) from None


def undersample(labels: np.ndarray, per_label: int, draws: int, seed: int) -> list[np.ndarray]:
    """MTEB's draws: ``idxs`` starts as 0..n-1 and is re-shuffled in place before each draw by a
    fresh ``RandomState(seed)``; a draw keeps the first ``per_label`` rows of each label in that
    order (row ids, in draw order)."""
    idxs = np.arange(len(labels))
    out = []
    for _ in range(draws):
        np.random.RandomState(seed).shuffle(idxs)
        count: dict[int, int] = defaultdict(int)
        chosen = []
        for i in idxs:
            if count[int(labels[i])] < per_label:
                chosen.append(int(i))
                count[int(labels[i])] += 1
        out.append(np.asarray(chosen, dtype=np.int64))
    return out


def check_per_label(spec: TaskSpec, code: str, labels: np.ndarray, per_label: int, split: str) -> None:
    """Every label of the task needs ``per_label`` examples in the source's train split."""
    counts = np.bincount(labels[labels >= 0], minlength=len(spec.labels))
    short = [(spec.labels[i], int(c)) for i, c in enumerate(counts) if c < per_label]
    if short:
        shown = ", ".join(f"{name!r} has {c}" for name, c in short[:5])
        raise XlexpError(
            f"regime.per_label={per_label}: the {split} split of source '{code}' (task '{spec.name}') has "
            f"fewer examples of {len(short)} label(s) ({shown}); use regime.per_label<={int(counts.min())} "
            f"or another source"
        )


def label_metrics(
    pred: np.ndarray, gold: np.ndarray, metrics: tuple[str, ...], n_labels: int
) -> dict[str, float] | None:
    """Accuracy and macro-F1 from one confusion matrix, as ``engine.inference.compute_metrics`` defines
    them (macro-F1 over the labels present in the gold or the predictions, scikit-learn's default label
    set, ``zero_division=0``; docs/metrics.md); None when a metric is not one of these two. A 205 x 205 matrix with 10
    draws scores 420,250 cells: scikit-learn's per-call overhead would be most of the run."""
    if any(m not in ("accuracy", "macro_f1") for m in metrics):
        return None
    cm = np.bincount(gold * n_labels + pred, minlength=n_labels * n_labels).reshape(n_labels, n_labels)
    out: dict[str, float] = {}
    for m in metrics:
        if m == "accuracy":
            out[m] = float(np.trace(cm) / max(len(gold), 1))
        else:
            tp = np.diag(cm).astype(float)
            denom = cm.sum(0) + cm.sum(1)  # 2 tp + fp + fn
            present = denom > 0
            f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=present)
            out[m] = float(f1.sum() / max(int(present.sum()), 1))
    return out


_CACHES: dict[str, EmbeddingCache] = {}


@register
class Probe(Regime):
    name = "probe"
    settings_class = ProbeSettings
    classical = False  # the probe IS the classifier; a classical model has no sentence vectors
    tokenizes = False  # the runner validates the rows without tokenizing them: the probe reads cached vectors
    own_executor = True  # retrieval tasks: bitext mining here, not the retrieval executor
    task_types = ("sentence_classification", "pair_classification", "retrieval")

    @classmethod
    def refusal(cls, task_type: str) -> str | None:
        """The one line for a task kind this regime cannot run (None: it can)."""
        if task_type in cls.task_types:
            return None
        return (
            f"regime=probe scores frozen sentence vectors and runs sentence or pair classification (or bitext mining "
            f"on retrieval tasks); task type '{task_type}' has no sentence-level label to probe: use "
            f"regime=zero_shot or few_shot"
        )

    def units(self, settings: ProbeSettings, sources, targets, watch, seeds) -> list[TrainingUnit]:
        if settings.in_language:  # the diagonal: MTEB trains and tests each language on itself
            return [TrainingUnit(t, (t,), (), (t,), (), seed) for seed in seeds for t in targets]
        return [TrainingUnit(s, (s,), (), targets, (), seed) for seed in seeds for s in sources]

    def check(self, settings, spec: TaskSpec) -> None:
        """Before the data is looked at: the task kind, the model's embedding recipe and the
        classifier options, each one line."""
        why = self.refusal(spec.type)
        if why:
            raise XlexpError(why)
        recipe_of(settings.model, settings.regime.prefix)
        make_probe(settings.regime, 0)

    def preflight(self, settings, spec: TaskSpec, plan) -> None:
        """Before any model is loaded or text embedded: ``per_label`` against every source's train
        split (its labels only)."""
        if spec.trains:
            for lang in dict.fromkeys(lang for u in plan.units for lang in u.train_languages):
                examples = load_split(
                    spec, lang, settings.regime.train_split, settings.paths.data_dir, settings.data.source
                )
                check_per_label(
                    spec,
                    lang,
                    np.asarray([e.label for e in examples]),
                    settings.regime.per_label,
                    settings.regime.train_split,
                )

    def needs(self, unit: TrainingUnit, settings: ProbeSettings) -> dict[tuple[str, str], str]:
        if settings.train_split == "train":
            return {}
        return {(s, settings.train_split): "the probe draws its examples from it" for s in unit.train_languages}

    @staticmethod
    def embeddings(ctx: RunContext) -> EmbeddingCache:
        """One embedding cache per run (the encoder is loaded on the first miss only)."""
        c = _CACHES.get(ctx.run_id)
        if c is None:
            from xlexp.models.encoders import load_encoder

            s = ctx.settings
            recipe = recipe_of(s.model, s.regime.prefix)
            c = EmbeddingCache(
                ctx.spec,
                s.model.name,
                ctx.model_path,
                ctx.cache.tokenizer,
                recipe,
                s.paths.data_dir,
                s.paths.cache_dir,
                s.data.source,
                lambda: load_encoder(s.model, ctx.model_path).to(ctx.device),
                s.data.eval_batch_size,
                ctx.device,
            )
            _CACHES.clear()
            _CACHES[ctx.run_id] = c
            log.info("probe: %s sentence vectors (%s), cached under %s", s.model.name, recipe.describe(), c.dir)
        return c

    def features(self, ctx: RunContext, cache: EmbeddingCache, lang: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        one = cache.get(lang, split)
        if not ctx.kind.pair:
            return one.emb, one.labels
        u, v = one.emb, cache.get(lang, split, "pair").emb
        return np.hstack([u, v, np.abs(u - v), u * v]), one.labels

    def run_unit(self, ctx: RunContext, unit: TrainingUnit, index: int, out: UnitOutput) -> None:
        s: ProbeSettings = ctx.settings.regime
        cache = self.embeddings(ctx)
        started = time.perf_counter()
        if not ctx.spec.trains:  # retrieval: MTEB's bitext mining, no classifier
            for i, t in enumerate(unit.targets, 1):
                xx, pivot = cache.get(t, "test"), cache.get(t, "test", "pair")
                metrics = bitext_mining_metrics(xx.emb, pivot.emb, f"of '{t}'")
                out.add(t, "test", metrics, len(xx), s.selection, None)
                # one line per target: an uncached 112-pair run embeds for an hour or more on a CPU
                log.info(
                    "bitext mining %s (%d/%d): f1 %.4f, accuracy %.4f (%.0fs so far)",
                    t,
                    i,
                    len(unit.targets),
                    metrics["f1"],
                    metrics["accuracy"],
                    time.perf_counter() - started,
                )
            log.info(
                "bitext mining (MTEB protocol), %d target(s) in %.1fs", len(unit.targets), time.perf_counter() - started
            )
            return
        from threadpoolctl import threadpool_limits

        seed = s.sampling_seed if s.sampling_seed is not None else unit.seed
        X, y = self.features(ctx, cache, unit.source, s.train_split)
        check_per_label(ctx.spec, unit.source, y, s.per_label, s.train_split)
        draws = undersample(y, s.per_label, s.draws, seed)
        tests = {t: self.features(ctx, cache, t, "test") for t in unit.targets}
        # every target's test vectors in one array: one predict call per draw for the whole row
        bounds = np.cumsum([0] + [len(yt) for _, yt in tests.values()])
        X_all = np.concatenate([Xt for Xt, _ in tests.values()])
        primary = []
        # one BLAS thread: these products are tiny, and thread start-up and contention cost more than
        # they save (on 2 shared cores, 4x faster fits and 7x faster predictions; same numbers)
        with threadpool_limits(1):
            for d, rows in enumerate(draws):
                clf = make_probe(s, seed)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    clf.fit(X[rows], y[rows])
                n_iter = int(np.max(clf.n_iter_))
                if caught and d == 0:
                    log.info("probe %s, draw 0: %s", unit.source, str(caught[0].message).splitlines()[0])
                pred_all = clf.predict(X_all).astype(np.int64)
                for i, (t, (_, yt)) in enumerate(tests.items()):
                    pred = pred_all[bounds[i] : bounds[i + 1]]
                    metrics = label_metrics(pred, yt, ctx.spec.metrics, len(ctx.spec.labels))
                    if metrics is None:  # a metric the fast path does not know: the engine's
                        metrics = compute_metrics(
                            pred, TokenizedSplit(input_ids=[], labels=yt), ctx.spec.metrics, ctx.spec.labels
                        )
                    if s.predictions:
                        out.add_test(
                            t, TokenizedSplit(input_ids=[], labels=yt), pred, metrics, s.selection, n_iter, shot_set=d
                        )
                    else:
                        out.add(
                            t,
                            "test",
                            metrics,
                            len(yt),
                            s.selection,
                            n_iter,
                            shot_set=d,
                            n_labels=label_counts(yt, pred)[0] if "macro_f1" in metrics else None,
                        )
                    primary.append(metrics[ctx.spec.primary_metric])
        log.info(
            "probe %s: %d draw(s) of %d per label (%d examples), %d target(s): mean test %s %.4f in %.1fs "
            "(embedding %.1fs so far)",
            unit.source,
            len(draws),
            s.per_label,
            len(draws[0]),
            len(tests),
            ctx.spec.primary_metric,
            float(np.mean(primary)),
            time.perf_counter() - started,
            cache.seconds,
        )
