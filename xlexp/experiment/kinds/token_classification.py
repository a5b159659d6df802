"""``token_classification``: a tag per word (POS, NER). The tag sits on each word's first piece and
long sentences are cut into windows of whole words (:func:`xlexp.data.tokenized.tokenize_words`); a
token head, class cross-entropy over the labelled pieces, word accuracy or seqeval span F1
(:func:`xlexp.engine.inference.token_metrics`). No per-example predictions are kept."""

from __future__ import annotations

from xlexp.data.tokenized import tokenize_words
from xlexp.experiment.kinds import TRANSFORMERS, WindowedKind, register


@register
class TokenClassification(WindowedKind):
    name = "token_classification"
    families = TRANSFORMERS

    def tokenize(self, spec, tokenizer, examples, max_length, side=""):
        return tokenize_words(tokenizer, [e.tokens for e in examples], [e.tags for e in examples], max_length)

    def prediction_columns(self, test, preds):
        return None  # per-example predictions are kept for sentence tasks (paired bootstrap) only
