"""Classical baselines (``model.family: classical``): scikit-learn n-gram features + an MLP or a
logistic regression, run through the same plan, records, predictions, tracker and matrices as the
transformers (``pipeline.run_unit`` hands a unit to :func:`classical_cells`).

Features are counts (or binary / tf-idf) of token n-grams, where tokens are either words
(``features: word``: runs of letters, combining marks and digits by default; see
``conf/model/classical_mlp.yaml`` for why not sklearn's default ``token_pattern``) or the pieces of a named model config's tokenizer (``features: subword``,
e.g. ``tokenizer: me5_small_offline``, whose tokenizer is XLM-R's). The vectorizer is fitted on the
unit's train split(s); every target's test split goes through the same vocabulary, so
cross-lingual transfer works (and shows how little surface overlap carries). One fit per unit: there
are no checkpoints, so test cells are recorded under ``last`` and under the regime's selection rule
(the same numbers), which is what ``xlexp matrix`` shows by default.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import regex
from omegaconf import DictConfig, OmegaConf

from xlexp.data.tokenized import TokenizedSplit
from xlexp.errors import XlexpError
from xlexp.engine.predict import compute_metrics
from xlexp.experiment.plan import Plan, TrainingUnit
from xlexp.tasks.spec import Example, TaskSpec, load_split

if TYPE_CHECKING:  # pipeline imports this module lazily; no import cycle at run time
    from xlexp.experiment.runner import RunContext, UnitOutput

log = logging.getLogger(__name__)

FAMILY = "classical"
FEATURES = ("word", "subword")
WEIGHTINGS = ("count", "binary", "tfidf")
CLASSIFIERS = {"mlp": "MLPClassifier", "logreg": "LogisticRegression"}
TASK_TYPES = ("sentence_classification", "pair_classification")
REGIMES = ("zero_shot", "multi_source", "full")
PAIR_SEPARATOR = "[SEP]"   # pair tasks: "text [SEP] text_pair", so n-grams can tell the sides apart


def is_classical(model_cfg) -> bool:
    return model_cfg.get("family") == FAMILY


def check(cfg: DictConfig, spec: TaskSpec) -> None:
    """Everything a classical run can get wrong, in one line, before any data is read."""
    m = cfg.model
    if spec.type not in TASK_TYPES:
        raise XlexpError(
            f"model '{m.name}' (family classical) handles sentence and pair classification only; task '{spec.name}' "
            f"is {spec.type}. Use a transformer model for it (model=me5_small_offline, xlmr_base, mbert, tiny_random), "
            f"or a classical model on a classification task (task=sib200, nusax_senti, xnli, pawsx)")
    if cfg.regime.name not in REGIMES:
        raise XlexpError(f"model '{m.name}' (family classical) runs regime {', '.join(REGIMES)}; "
                         f"regime {cfg.regime.name} continues training on K shots, which a fitted scikit-learn "
                         f"model does not do here")
    if m.get("features", "word") not in FEATURES:
        raise XlexpError(f"model.features must be one of {', '.join(FEATURES)}; got {m.get('features')!r}")
    if m.get("weighting", "count") not in WEIGHTINGS:
        raise XlexpError(f"model.weighting must be one of {', '.join(WEIGHTINGS)}; got {m.get('weighting')!r}")
    ngram = list(m.get("ngram_range") or [1, 1])
    if len(ngram) != 2 or not all(isinstance(n, int) and n >= 1 for n in ngram) or ngram[0] > ngram[1]:
        raise XlexpError(f"model.ngram_range must be [min_n, max_n] with 1 <= min_n <= max_n; got {ngram}")
    name = (m.get("classifier") or {}).get("name")
    if name not in CLASSIFIERS:
        raise XlexpError(f"model.classifier.name must be one of {', '.join(CLASSIFIERS)}; got {name!r}")
    if m.get("features", "word") == "subword" and not m.get("tokenizer"):
        raise XlexpError("model.features=subword needs model.tokenizer: the name of a model config whose tokenizer "
                         "to use, e.g. model.tokenizer=me5_small_offline (the XLM-R tokenizer)")
    make_classifier(m, cfg.seed)  # unknown classifier knobs fail here, before any data is read


def describe(model_cfg) -> str:
    """One line for logs: what is fitted on what."""
    lo, hi = list(model_cfg.get("ngram_range") or [1, 1])
    grams = f"{lo}-gram" if lo == hi else f"{lo}..{hi}-gram"
    what = (f"{model_cfg.tokenizer} sub-word" if model_cfg.get("features") == "subword" else "word")
    return (f"scikit-learn {CLASSIFIERS[model_cfg.classifier.name]} on {what} {grams} "
            f"{model_cfg.get('weighting', 'count')} features")


def prepare(cfg: DictConfig, spec: TaskSpec, plan: Plan, data_dir: Path, cache_dir: Path) -> str:
    """Checks the config (before any work) and returns the description the run log shows in place of
    a model path. The sub-word tokenizer, if any, is loaded by the first unit."""
    check(cfg, spec)
    if cfg.model.get("features") == "subword":
        _tokenizer(cfg, plan, data_dir, cache_dir)  # fail early on an unknown or unbuildable tokenizer
    return describe(cfg.model)


# -- features ---------------------------------------------------------------------------------
_TOKENIZERS: dict[tuple, object] = {}


def _model_config(name: str) -> DictConfig:
    from xlexp.config.compose import CONF_DIR

    folder = Path(CONF_DIR) / "model"
    path = folder / f"{name}.yaml"
    if not path.exists():
        usable = sorted(p.stem for p in folder.glob("*.yaml")
                        if not p.stem.startswith("_") and not is_classical(OmegaConf.load(p)))
        raise XlexpError(f"model.tokenizer={name}: no model config conf/model/{name}.yaml; "
                         f"use one of {', '.join(usable)}")
    sub = OmegaConf.load(path)
    if is_classical(sub):
        raise XlexpError(f"model.tokenizer={name} is itself a classical model; name a transformer model config")
    return sub


def _tokenizer(cfg: DictConfig, plan: Plan, data_dir: Path, cache_dir: Path):
    """The tokenizer of the model config ``model.tokenizer`` (resolved and loaded like the pipeline
    does: the offline e5 is built on first use; tiny_random is trained on the plan's train text)."""
    from xlexp.models.encoders import load_tokenizer, resolve_model_path

    name = str(cfg.model.tokenizer)
    key = (name, str(cache_dir), plan.languages if name == "tiny_random" else ())
    if key not in _TOKENIZERS:
        sub = _model_config(name)
        texts = None
        if sub.get("source") == "tiny_random":
            from xlexp.experiment.runner import _training_texts

            texts = _training_texts(TaskSpec.from_config(cfg.task), plan, data_dir, cfg.data.source)
        path = resolve_model_path(sub, cache_dir, texts, cfg.seed)
        _TOKENIZERS[key] = load_tokenizer(sub, path)
    return _TOKENIZERS[key]


def _pieces(tokenizer, texts: list[str]) -> list[str]:
    """Each text as its tokenizer pieces joined by spaces (no special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # fast tokenizers: one batched call in Rust
        return [" ".join(e.tokens) for e in backend.encode_batch(texts, add_special_tokens=False)]
    return [" ".join(tokenizer.tokenize(t)) for t in texts]


class Featurizer:
    """Examples -> strings of tokens -> a sparse n-gram matrix (vocabulary fitted on training text)."""

    def __init__(self, model_cfg, tokenizer=None):
        self.cfg, self.tokenizer = model_cfg, tokenizer
        self.vectorizer = self._vectorizer()

    def _vectorizer(self):
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

        c = self.cfg
        weighting = c.get("weighting", "count")
        kwargs = dict(ngram_range=tuple(c.get("ngram_range") or (1, 1)), lowercase=bool(c.get("lowercase", True)),
                      min_df=c.get("min_df", 1), max_features=c.get("max_features"), dtype=np.float32)
        if self.tokenizer is not None:  # pieces are already split: n-grams over them, no regex
            kwargs.update(tokenizer=str.split, token_pattern=None)
        elif c.get("token_pattern"):  # the `regex` module: Unicode classes (\p{L}, \p{M}) that `re` lacks
            try:
                kwargs.update(tokenizer=regex.compile(c.token_pattern).findall, token_pattern=None)
            except regex.error as e:
                raise XlexpError(f"model.token_pattern {c.token_pattern!r} is not a valid regular expression: {e}") from None
        # token_pattern null: scikit-learn's own default, (?u)\b\w\w+\b compiled with `re`
        if weighting == "tfidf":
            return TfidfVectorizer(**kwargs)
        return CountVectorizer(binary=weighting == "binary", **kwargs)

    def strings(self, examples: list[Example]) -> list[str]:
        firsts = [e.text for e in examples]
        seconds = [e.text_pair for e in examples]
        if self.tokenizer is not None:
            firsts = _pieces(self.tokenizer, firsts)
            if any(s is not None for s in seconds):
                seconds = _pieces(self.tokenizer, [s or "" for s in seconds])
        return [a if b is None else f"{a} {PAIR_SEPARATOR} {b}" for a, b in zip(firsts, seconds)]

    def fit_transform(self, examples: list[Example]):
        return self.vectorizer.fit_transform(self.strings(examples))

    def transform(self, examples: list[Example]):
        return self.vectorizer.transform(self.strings(examples))


def make_classifier(model_cfg, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    knobs = OmegaConf.to_container(model_cfg.classifier, resolve=True)
    name = knobs.pop("name")
    cls = {"mlp": MLPClassifier, "logreg": LogisticRegression}[name]
    if "hidden_layer_sizes" in knobs and isinstance(knobs["hidden_layer_sizes"], list):
        knobs["hidden_layer_sizes"] = tuple(knobs["hidden_layer_sizes"])
    valid = cls().get_params()
    unknown = sorted(set(knobs) - set(valid))
    if unknown:
        raise XlexpError(f"model.classifier: {cls.__name__} has no parameter(s) {unknown}; "
                         f"its parameters: {', '.join(sorted(valid))}")
    knobs.setdefault("random_state", seed)
    return cls(**knobs)


# -- one unit ---------------------------------------------------------------------------------
def _examples(ctx: "RunContext", lang: str, split: str, seed: int) -> tuple[list[Example], np.ndarray]:
    """A split's raw examples and their row ids, subsampled like the pipeline's tokenized splits."""
    c = ctx.cfg
    examples = load_split(ctx.spec, lang, split, Path(c.paths.data_dir), c.data.source)
    ids = np.arange(len(examples), dtype=np.int64)
    limit = c.data.max_train_examples if split == "train" else c.data.max_eval_examples
    if limit is not None and limit < len(examples):
        ids = np.sort(np.random.default_rng(seed).permutation(len(examples))[:limit])
        examples = [examples[i] for i in ids]
    return examples, ids


def _labelled(examples: list[Example], ids: np.ndarray) -> TokenizedSplit:
    """What metrics and per-example predictions read (labels, row ids); no token ids are needed."""
    return TokenizedSplit(input_ids=[], labels=np.asarray([e.label for e in examples], dtype=np.int64), example_ids=ids)


def _fit(clf, X, y, threads: int | None) -> list[str]:
    """Fit, collecting convergence warnings (one log line per unit instead of one per fit)."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if threads:
            with threadpool_limits(limits=int(threads)):
                clf.fit(X, y)
        else:
            clf.fit(X, y)
    for w in caught:  # anything else goes on as usual
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]


def classical_cells(ctx: "RunContext", unit: TrainingUnit, out: "UnitOutput") -> None:
    """Fit on the unit's train split(s), score its dev splits (``split=dev`` records) and test every
    target (under ``last`` and the regime's selection rule)."""
    cfg, spec = ctx.cfg, ctx.spec
    started = time.perf_counter()
    tokenizer = None
    if cfg.model.get("features") == "subword":
        tokenizer = _tokenizer(cfg, ctx.plan, Path(cfg.paths.data_dir), ctx.cache_dir)
    if len(unit.train_languages) > 1 and cfg.regime.get("sampling", "proportional") != "proportional":
        log.warning("classical models fit on the union of the sources' train splits: regime.sampling=%s is ignored",
                    cfg.regime.get("sampling"))
    features = Featurizer(cfg.model, tokenizer)
    train = [ex for lang in unit.train_languages for ex in _examples(ctx, lang, "train", unit.seed)[0]]
    X = features.fit_transform(train)
    y = np.asarray([e.label for e in train], dtype=np.int64)
    clf = make_classifier(cfg.model, unit.seed)
    problems = _fit(clf, X, y, cfg.trainer.get("num_threads"))
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
    ctx.tracker.log_metrics({f"dev/{lang}/{name}": v for lang, m in dev_metrics.items() for name, v in m.items()}, n_iter)
    if ctx.hooks.on_eval:  # one evaluation per unit (sweeps over the classical knobs see it as their objective)
        ctx.hooks.on_eval(unit, n_iter, dev_metrics)
    rules = list(dict.fromkeys(("last", cfg.regime.selection)))
    tests = []
    for target in unit.targets:
        test, preds, metrics = score(target, "test")
        for rule in rules:
            out.add_test(target, test, preds, metrics, rule, n_iter)
        tests.append(metrics[primary])
    source_dev = np.mean([dev_scores[lang] for lang in unit.select_languages]) if unit.select_languages else np.nan
    log.info("classical %s (seed %d): %d train examples, %d features, %d iterations%s; dev %s %.4f; test %s %s in %.1fs",
             unit.source, unit.seed, len(train), X.shape[1], n_iter, " (not converged)" if problems else "",
             primary, source_dev, primary,
             f"{tests[0]:.4f}" if len(tests) == 1 else f"mean {np.mean(tests):.4f} over {len(tests)} targets",
             time.perf_counter() - started)
