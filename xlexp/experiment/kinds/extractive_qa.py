"""``extractive_qa`` (XQuAD, MLQA, TyDiQA-GoldP): the answer is a span of the context. Question and
context are cut into overlapping windows (:func:`xlexp.data.qa.tokenize_qa`), each keeping its
pieces' character offsets; a span head (:class:`xlexp.models.span.SpanHead`) is trained with the
start/end loss (:data:`xlexp.engine.losses.SPANS`); the best span over a question's windows is
decoded and scored on the answer texts, EM/F1 (:mod:`xlexp.engine.qa`). Examples are questions, not
windows: subsamples, few-shot draws and ``n_examples`` count questions, and no draw is per class."""

from __future__ import annotations

import numpy as np

from xlexp.data.qa import tokenize_qa
from xlexp.data.tokenized import TokenizedSplit
from xlexp.engine.losses import SPANS
from xlexp.engine.qa import predict_answers, qa_metrics
from xlexp.experiment.kinds import TRANSFORMERS, WindowedKind, register
from xlexp.models.encoders import load_span_model


@register
class ExtractiveQA(WindowedKind):
    name = "extractive_qa"
    loss = SPANS
    keeps_examples = True
    families = TRANSFORMERS

    def tokenize(self, spec, tokenizer, examples, max_length, side=""):
        o = spec.options
        w = tokenize_qa(tokenizer, examples, max_length, int(o["doc_stride"]), int(o["max_query_length"]))
        return TokenizedSplit(w.input_ids, w.labels, w.n_truncated, w.example_ids, offsets=w.offsets, examples=examples)

    def build_model(self, model_settings, path, spec):
        return load_span_model(model_settings, path)

    def score(self, model, split, spec, batch_size, pad_id, device, precision):
        o = spec.options
        answers = predict_answers(
            model, split, batch_size, pad_id, device, precision, int(o["n_best"]), int(o["max_answer_length"])
        )
        return answers, qa_metrics(answers, spec.metrics)

    def subsample(self, split, limit, seed):
        """``limit`` questions with all their windows."""
        ids = np.unique(split.example_ids)
        if limit is None or limit >= len(ids):
            return split
        keep = np.sort(np.random.default_rng(seed).permutation(ids)[:limit])
        return split.subset(np.flatnonzero(np.isin(split.example_ids, keep)))

    def shot_labels(self, pool):
        """Draw K questions (ids = question rows), not windows: one (class-less) label per question."""
        return np.zeros(int(pool.example_ids.max()) + 1, dtype=np.int64)

    def shot_rows(self, pool, ids):
        return pool.subset(np.flatnonzero(np.isin(pool.example_ids, np.asarray(ids))))

    def prediction_columns(self, test, preds):
        """One row per question: the answer and its EM/F1."""
        return {
            "example": preds.example_ids,
            "label": -1,
            "pred": -1,
            "pred_text": preds.texts,
            "exact_match": preds.exact_match,
            "f1": preds.f1,
        }
