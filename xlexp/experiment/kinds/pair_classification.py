"""``pair_classification``: one label per pair of texts, tokenized as a pair (``<s> a </s></s> b </s>``)."""

from __future__ import annotations

from xlexp.data.tokenized import tokenize_sequences
from xlexp.experiment.kinds import TaskKind, register


@register
class PairClassification(TaskKind):
    name = "pair_classification"
    pair = True

    def tokenize(self, spec, tokenizer, examples, max_length, side=""):
        enc = tokenizer([e.text for e in examples], [e.text_pair for e in examples], truncation=False)["input_ids"]
        return tokenize_sequences(enc, examples, max_length)
