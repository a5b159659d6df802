"""Bitext mining scored as MTEB scores it (``BitextMiningEvaluator`` + ``AbsTaskBitextMining``):
for every sentence of the non-pivot side, its cosine nearest neighbour among ALL pivot sentences
(one direction only); sentence i's gold match is pivot row i. Metrics: accuracy, and precision,
recall and F1 of the matches averaged with ``average="weighted"`` (scikit-learn, ``zero_division=0``)
over the gold ids, which is MTEB's main score (F1). XTREME's protocol (accuracy@1 in both
directions, ``engine.inference.retrieval_accuracy``) stays the ``regime=zero_shot`` one.
"""

from __future__ import annotations

import numpy as np

from xlexp.errors import XlexpError

BITEXT_METRICS = ("f1", "accuracy", "precision", "recall", "acc1_xx2en", "acc1_en2xx")


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def bitext_mining_metrics(xx: np.ndarray, pivot: np.ndarray, where: str = "") -> dict[str, float]:
    """MTEB's bitext-mining metrics for line-aligned embeddings (row i of ``xx`` translates row i of
    ``pivot``), plus both directions' accuracy@1 (``acc1_xx2en`` equals MTEB's accuracy)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    if len(xx) != len(pivot):
        raise XlexpError(
            f"bitext mining{' ' + where if where else ''}: the two sides have {len(xx)} and {len(pivot)} "
            f"sentences; they must be line-aligned (sentence i of one side translates sentence i of the "
            f"other): fix the data files"
        )
    if len(xx) == 0:
        raise XlexpError(f"bitext mining{' ' + where if where else ''}: no sentences")
    sims = _unit(xx) @ _unit(pivot).T  # cosine, whether or not the recipe normalises
    pred = sims.argmax(1)  # first index on ties, like torch.topk on CPU in practice
    gold = np.arange(len(xx))
    return {
        "f1": float(f1_score(gold, pred, average="weighted", zero_division=0)),
        "accuracy": float(accuracy_score(gold, pred)),
        "precision": float(precision_score(gold, pred, average="weighted", zero_division=0)),
        "recall": float(recall_score(gold, pred, average="weighted", zero_division=0)),
        "acc1_xx2en": float(np.mean(pred == gold)),
        "acc1_en2xx": float(np.mean(sims.argmax(0) == gold)),
    }
