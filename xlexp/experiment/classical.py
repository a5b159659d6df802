"""Classical baselines (``model.family: classical``) through the same plan, records, predictions,
tracker and matrices as transformers: fit on the unit's train split(s), score its dev splits
(``split=dev`` records) and test every target under ``last`` and the regime's selection rule (one
fit, no checkpoints: the same numbers). Features and estimators live in ``xlexp.models.classical``.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from xlexp.config.schema import ClassicalSettings, Settings
from xlexp.data.tokenized import TokenizedSplit
from xlexp.engine.inference import compute_metrics
from xlexp.experiment.context import RunContext, UnitOutput, training_texts
from xlexp.experiment.plan import Plan, TrainingUnit
from xlexp.experiment.regimes.multi_source import MultiSourceSettings
from xlexp.models.classical import Featurizer, check, describe, fit_quietly, make_classifier, subword_tokenizer
from xlexp.tasks.spec import Example, TaskSpec, load_split

log = logging.getLogger(__name__)


def _examples(ctx: RunContext, lang: str, split: str, seed: int) -> tuple[list[Example], np.ndarray]:
    """A split's raw examples and their row ids, subsampled like the tokenized splits of transformer runs."""
    s = ctx.settings
    examples = load_split(ctx.spec, lang, split, s.paths.data_dir, s.data.source)
    ids = np.arange(len(examples), dtype=np.int64)
    limit = s.data.max_train_examples if split == "train" else s.data.max_eval_examples
    if limit is not None and limit < len(examples):
        ids = np.sort(np.random.default_rng(seed).permutation(len(examples))[:limit])
        examples = [examples[i] for i in ids]
    return examples, ids


def _labelled(examples: list[Example], ids: np.ndarray) -> TokenizedSplit:
    """What metrics and per-example predictions read (labels, row ids); no token ids are needed."""
    return TokenizedSplit(input_ids=[], labels=np.asarray([e.label for e in examples], dtype=np.int64), example_ids=ids)


def tokenizer_for(s: Settings, spec: TaskSpec, plan: Plan):
    """``features=subword``: the named model config's tokenizer (None for word features); a
    tiny_random tokenizer is trained on the plan's train text, read only when it is not cached."""
    model: ClassicalSettings = s.model
    if model.features != "subword":
        return None
    return subword_tokenizer(
        model,
        s.paths.cache_dir,
        s.seed,
        plan.languages,
        lambda: training_texts(spec, plan, s.paths.data_dir, s.data.source),
    )


def prepare(s: Settings, spec: TaskSpec, plan: Plan) -> str:
    """Everything a classical run can get wrong, before any data is read (the sub-word tokenizer is
    built or loaded too); returns the description the run log shows in place of a model path."""
    check(s.model, spec, s.seed)
    tokenizer_for(s, spec, plan)
    return describe(s.model)


def run_unit(ctx: RunContext, unit: TrainingUnit, index: int, out: UnitOutput) -> None:
    """Fit on the unit's train split(s), score its dev splits and test every target."""
    s, spec = ctx.settings, ctx.spec
    started = time.perf_counter()
    tokenizer = tokenizer_for(s, spec, ctx.plan)
    if (
        len(unit.train_languages) > 1
        and isinstance(s.regime, MultiSourceSettings)
        and s.regime.sampling != "proportional"
    ):
        log.warning(
            "classical models fit on the union of the sources' train splits: regime.sampling=%s is ignored",
            s.regime.sampling,
        )
    features = Featurizer(s.model, tokenizer)
    train = [ex for lang in unit.train_languages for ex in _examples(ctx, lang, "train", unit.seed)[0]]
    X = features.fit_transform(train)
    y = np.asarray([e.label for e in train], dtype=np.int64)
    clf = make_classifier(s.model, unit.seed)
    problems = fit_quietly(clf, X, y, s.trainer.num_threads)
    n_iter = int(np.max(clf.n_iter_))  # MLP: epochs; logistic regression: solver iterations
    if problems:
        log.warning("classical %s (seed %d): %s", unit.source, unit.seed, problems[0].splitlines()[0])

    def score(lang: str, split: str):
        examples, ids = _examples(ctx, lang, split, unit.seed)
        labelled = _labelled(examples, ids)
        preds = clf.predict(features.transform(examples)).astype(np.int64)
        return labelled, preds, compute_metrics(preds, labelled, spec.metrics, spec.labels)

    primary = spec.primary_metric
    dev_metrics = {}
    for lang in dict.fromkeys((*unit.select_languages, *unit.dev_targets)):
        dev, _, dev_metrics[lang] = score(lang, "dev")
        out.add(lang, "dev", dev_metrics[lang], len(dev), "eval", n_iter)
    dev_scores = {lang: m[primary] for lang, m in dev_metrics.items()}
    ctx.tracker.log_metrics(
        {f"dev/{lang}/{name}": v for lang, m in dev_metrics.items() for name, v in m.items()}, n_iter
    )
    if ctx.hooks.on_eval:  # one evaluation per unit (sweeps over the classical knobs see it as their objective)
        ctx.hooks.on_eval(unit, n_iter, dev_metrics)
    rules = list(dict.fromkeys(("last", s.regime.selection)))
    tests = []
    for target in unit.targets:
        test, preds, metrics = score(target, "test")
        for rule in rules:
            out.add_test(target, test, preds, metrics, rule, n_iter)
        tests.append(metrics[primary])
    source_dev = np.mean([dev_scores[lang] for lang in unit.select_languages]) if unit.select_languages else np.nan
    log.info(
        "classical %s (seed %d): %d train examples, %d features, %d iterations%s; dev %s %.4f; test %s %s in %.1fs",
        unit.source,
        unit.seed,
        len(train),
        X.shape[1],
        n_iter,
        " (not converged)" if problems else "",
        primary,
        source_dev,
        primary,
        f"{tests[0]:.4f}" if len(tests) == 1 else f"mean {np.mean(tests):.4f} over {len(tests)} targets",
        time.perf_counter() - started,
    )
