"""Classical baselines (``model.family: classical``): scikit-learn n-gram features + an MLP or a
logistic regression, run through the same plan, records, predictions, tracker and matrices as the
transformers (``xlexp.experiment.classical`` runs a unit with the pieces defined here).

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
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import regex
import yaml

from xlexp.config.schema import ClassicalSettings, EncoderSettings, build
from xlexp.errors import XlexpError
from xlexp.tasks.spec import Example, TaskSpec

log = logging.getLogger(__name__)

FAMILY = "classical"
FEATURES = ("word", "subword")
WEIGHTINGS = ("count", "binary", "tfidf")
CLASSIFIERS = {"mlp": "MLPClassifier", "logreg": "LogisticRegression"}
PAIR_SEPARATOR = "[SEP]"  # pair tasks: "text [SEP] text_pair", so n-grams can tell the sides apart


def is_classical(model: Mapping[str, Any]) -> bool:
    return model.get("family") == FAMILY


def _load(path: Path) -> dict[str, Any]:
    """A model YAML as a plain mapping (its ``defaults`` list dropped: the schema's defaults apply)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw.pop("defaults", None)
    return raw


def check(model: ClassicalSettings, spec: TaskSpec, seed: int) -> None:
    """What the schema cannot know (the estimator's own parameters), in one line, before any data is
    read. Which task kinds a classical model runs is the kinds' declaration (``TaskKind.families``),
    checked with the settings."""
    name = (model.classifier or {}).get("name")
    if name not in CLASSIFIERS:
        raise XlexpError(f"model.classifier.name must be one of {', '.join(CLASSIFIERS)}; got {name!r}")
    make_classifier(model, seed)  # unknown classifier knobs fail here, before any data is read


def describe(model: ClassicalSettings) -> str:
    """One line for logs: what is fitted on what."""
    lo, hi = model.ngram_range
    grams = f"{lo}-gram" if lo == hi else f"{lo}..{hi}-gram"
    what = f"{model.tokenizer} sub-word" if model.features == "subword" else "word"
    return f"scikit-learn {CLASSIFIERS[model.classifier['name']]} on {what} {grams} {model.weighting} features"


# -- features ---------------------------------------------------------------------------------
_TOKENIZERS: dict[tuple, object] = {}


def _model_config(name: str) -> dict[str, Any]:
    """Model config ``name`` as Hydra would find it: an XLEXP_CONFIG_PATH folder's ``model/`` first."""
    from xlexp.config.paths import find_config, list_configs

    path = find_config("model", name)
    if path is None:
        usable = [
            n
            for n in list_configs("model")
            if not n.startswith("_") and not is_classical(_load(find_config("model", n)))
        ]
        raise XlexpError(
            f"model.tokenizer={name}: no model config model/{name}.yaml in xlexp/conf or "
            f"XLEXP_CONFIG_PATH; use one of {', '.join(usable)}"
        )
    sub = _load(path)
    if is_classical(sub):
        raise XlexpError(f"model.tokenizer={name} is itself a classical model; name a transformer model config")
    return sub


def subword_tokenizer(
    model: ClassicalSettings, cache_dir: Path, seed: int, languages: tuple[str, ...], texts: Callable[[], list[str]]
):
    """The tokenizer of the model config ``model.tokenizer`` (resolved and loaded like transformer
    runs do: the offline e5 is built on first use; tiny_random is trained on ``texts()``, the plan's
    train text, whose languages key the cache)."""
    from xlexp.models.encoders import load_tokenizer, resolve_model_path

    name = str(model.tokenizer)
    key = (name, str(cache_dir), languages if name == "tiny_random" else ())
    if key not in _TOKENIZERS:
        sub = build(EncoderSettings, _model_config(name), f"model {name}")
        path = resolve_model_path(sub, cache_dir, texts() if sub.source == "tiny_random" else None, seed)
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

    def __init__(self, model: ClassicalSettings, tokenizer=None):
        self.cfg, self.tokenizer = model, tokenizer
        self.vectorizer = self._vectorizer()

    def _vectorizer(self):
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

        c = self.cfg
        weighting = c.weighting
        kwargs = dict(
            ngram_range=tuple(c.ngram_range),
            lowercase=bool(c.lowercase),
            min_df=c.min_df,
            max_features=c.max_features,
            dtype=np.float32,
        )
        if self.tokenizer is not None:  # pieces are already split: n-grams over them, no regex
            kwargs.update(tokenizer=str.split, token_pattern=None)
        elif c.token_pattern:  # the `regex` module: Unicode classes (\p{L}, \p{M}) that `re` lacks
            try:
                kwargs.update(tokenizer=regex.compile(c.token_pattern).findall, token_pattern=None)
            except regex.error as e:
                raise XlexpError(
                    f"model.token_pattern {c.token_pattern!r} is not a valid regular expression: {e}"
                ) from None
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


def make_classifier(model: ClassicalSettings, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    knobs = dict(model.classifier)
    name = knobs.pop("name")
    cls = {"mlp": MLPClassifier, "logreg": LogisticRegression}[name]
    if "hidden_layer_sizes" in knobs and isinstance(knobs["hidden_layer_sizes"], list):
        knobs["hidden_layer_sizes"] = tuple(knobs["hidden_layer_sizes"])
    valid = cls().get_params()
    unknown = sorted(set(knobs) - set(valid))
    if unknown:
        raise XlexpError(
            f"model.classifier: {cls.__name__} has no parameter(s) {unknown}; "
            f"its parameters: {', '.join(sorted(valid))}"
        )
    knobs.setdefault("random_state", seed)
    return cls(**knobs)


def fit_quietly(clf, X, y, threads: int | None) -> list[str]:
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
