"""Extractive QA prediction: start/end scores per window -> the best valid span per question -> EM/F1.

Post-processing follows the Hugging Face QA example (``postprocess_qa_predictions``): in each window
take the ``n_best`` highest start and end scores, keep pairs that lie in the context (never in the
question or on special tokens), end >= start and at most ``max_answer_length`` pieces long, score a
pair by start + end logit, and answer with the best pair over all windows of the question (its
characters in the context, via the offset mapping). A question with no valid pair gets the empty
answer (EM and F1 0 unless a gold answer normalises to nothing). Windows are scored in
length-sorted batches and reduced to one candidate each at once, so memory does not grow with the
number of windows. Metrics: :mod:`xlexp.tasks.qa_metric`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xlexp.data.tokenized import TokenizedSplit, collate, eval_batches
from xlexp.engine.inference import autocast
from xlexp.errors import XlexpError
from xlexp.tasks import qa_metric

METRICS = ("exact_match", "f1")


@dataclass
class QAPredictions:
    """One row per question of the split (sorted by example id): the answer and its scores."""

    example_ids: np.ndarray
    texts: list[str]
    exact_match: np.ndarray
    f1: np.ndarray

    def __len__(self) -> int:
        return len(self.example_ids)


def best_span(
    start: np.ndarray, end: np.ndarray, offsets: np.ndarray, n_best: int = 20, max_answer_length: int = 30
) -> tuple[float, int, int] | None:
    """(score, first piece, last piece) of the best valid span of one window, or None."""
    valid = offsets[:, 0] >= 0
    if not valid.any():
        return None
    pos = np.flatnonzero(valid)
    s_idx = pos[np.argsort(-start[pos], kind="stable")[:n_best]]
    e_idx = pos[np.argsort(-end[pos], kind="stable")[:n_best]]
    length = e_idx[None, :] - s_idx[:, None]
    scores = start[s_idx][:, None] + end[e_idx][None, :]
    scores = np.where((length >= 0) & (length < max_answer_length), scores, -np.inf)
    i, j = np.unravel_index(np.argmax(scores), scores.shape)
    if not np.isfinite(scores[i, j]):
        return None
    return float(scores[i, j]), int(s_idx[i]), int(e_idx[j])


@torch.inference_mode()
def predict_answers(
    model,
    split: TokenizedSplit,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    precision: str = "fp32",
    n_best: int = 20,
    max_answer_length: int = 30,
) -> QAPredictions:
    if split.offsets is None or split.examples is None:
        raise XlexpError("predict_answers needs a QA split (windows with offsets and their examples)")
    was_training = model.training
    model.eval()
    best: dict[int, tuple[float, int, int]] = {}  # example -> (score, start char, end char)
    for idx in eval_batches(split, batch_size):
        batch = collate(split, idx, pad_id)
        with autocast(device, precision):
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        logits = logits.float().cpu().numpy()
        for row, i in enumerate(idx):
            off = split.offsets[i]
            n = len(off)
            cand = best_span(logits[row, :n, 0], logits[row, :n, 1], off, n_best, max_answer_length)
            if cand is None:
                continue
            ex = int(split.example_ids[i])
            if ex not in best or cand[0] > best[ex][0]:
                best[ex] = (cand[0], int(off[cand[1], 0]), int(off[cand[2], 1]))
    model.train(was_training)
    ids = np.unique(split.example_ids)
    texts = [split.examples[ex].context[best[ex][1] : best[ex][2]] if ex in best else "" for ex in ids.tolist()]
    em, f1 = score_answers(texts, [split.examples[ex] for ex in ids.tolist()])
    return QAPredictions(ids, texts, em, f1)


def score_answers(texts: list[str], examples: list) -> tuple[np.ndarray, np.ndarray]:
    """Per-question exact match and F1 (max over gold answers) with each example's normalisation."""
    pairs = [qa_metric.score(t, [a for a, _ in e.answers], e.norm, e.lang) for t, e in zip(texts, examples)]
    return np.asarray([p[0] for p in pairs], dtype=np.float64), np.asarray([p[1] for p in pairs], dtype=np.float64)


def qa_metrics(preds: QAPredictions, metrics: tuple[str, ...]) -> dict[str, float]:
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise XlexpError(f"metric(s) {sorted(unknown)} do not apply to extractive QA; use {', '.join(METRICS)}")
    values = {"exact_match": preds.exact_match, "f1": preds.f1}
    return {m: float(values[m].mean()) if len(preds) else 0.0 for m in metrics}
