"""Inference and metrics: a trained model's predictions on a split (batched, under autocast) and
its sentence encodings; sklearn for classification, seqeval for BIO spans (no hub-loaded metric
scripts), cosine nearest neighbours for retrieval. (``xlexp.predict`` is another thing: predicting
unmeasured cells of a transfer matrix.)"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from xlexp.data.tokenized import TokenizedSplit, collate, eval_batches
from xlexp.errors import XlexpError

METRICS = ("accuracy", "macro_f1", "span_f1", "span_precision", "span_recall")


def autocast(device: torch.device, precision: str):
    """bf16 autocast where asked for; a no-op context for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.inference_mode()
def predict(
    model, split: TokenizedSplit, batch_size: int, pad_id: int, device: torch.device, precision: str = "fp32"
) -> np.ndarray | list[np.ndarray]:
    """Sentence tasks: one label id per example. Token tasks: per example, the predicted tag of
    each labelled position (each word's first piece), in order."""
    was_training = model.training
    model.eval()
    token_level = split.token_labels is not None
    preds: np.ndarray | list = [None] * len(split) if token_level else np.empty(len(split), dtype=np.int64)
    for idx in eval_batches(split, batch_size):
        batch = collate(split, idx, pad_id)
        with autocast(device, precision):
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        best = logits.argmax(-1).cpu().numpy()
        if token_level:
            labels = batch["labels"].numpy()
            for row, i in enumerate(idx):
                preds[i] = best[row][labels[row] != -100]
        else:
            preds[idx] = best
    model.train(was_training)
    return preds


def compute_metrics(
    preds, split: TokenizedSplit, metrics: tuple[str, ...], label_names: tuple[str, ...]
) -> dict[str, float]:
    if split.token_labels is not None:
        gold = [tl[tl != -100] for tl in split.token_labels]
        return token_metrics(preds, gold, split.example_ids, metrics, label_names)
    out: dict[str, float] = {}
    for name in metrics:
        if name == "accuracy":
            out[name] = float(accuracy_score(split.labels, preds))
        elif name == "macro_f1":
            out[name] = macro_f1(split.labels, preds)
        else:
            raise XlexpError(f"metric '{name}' does not apply to sentence tasks; use accuracy or macro_f1")
    return out


def macro_f1(gold, preds) -> float:
    """Macro-F1 over the labels present in this test set's gold OR its predictions (scikit-learn's and
    HF ``evaluate``'s default, ``f1_score(average="macro")`` with ``labels=None``): a label that is in
    neither is not part of this target's task and must not count as F1 = 0. A label that is predicted
    but absent from the gold does count (F1 = 0: every prediction of it is wrong). docs/metrics.md."""
    return float(f1_score(np.asarray(gold), np.asarray(preds), average="macro", zero_division=0))


def label_counts(gold, preds) -> tuple[int, int]:
    """(labels macro-F1 averages over, labels in the gold): what a macro-F1 cell records beside its value."""
    gold, preds = np.asarray(gold), np.asarray(preds)
    return int(np.union1d(gold, preds).size), int(np.unique(gold).size)


def _sentences(seqs: list[np.ndarray], example_ids: np.ndarray) -> list[np.ndarray]:
    """Windows of one sentence (consecutive, same example id) joined back into the sentence."""
    out: dict[int, list[np.ndarray]] = {}
    for seq, ex in zip(seqs, example_ids):
        out.setdefault(int(ex), []).append(seq)
    return [np.concatenate(parts) for parts in out.values()]


def token_metrics(
    preds: list[np.ndarray],
    gold: list[np.ndarray],
    example_ids: np.ndarray,
    metrics: tuple[str, ...],
    label_names: tuple[str, ...],
) -> dict[str, float]:
    from seqeval.metrics import classification_report

    p_sent, g_sent = _sentences(preds, example_ids), _sentences(gold, example_ids)
    out: dict[str, float] = {}
    if "accuracy" in metrics:  # token (word) accuracy, the POS metric
        out["accuracy"] = float(np.mean(np.concatenate(p_sent) == np.concatenate(g_sent)))
    span = [m for m in metrics if m.startswith("span_")]
    if span:
        names = np.asarray(label_names)
        y_true = [names[g].tolist() for g in g_sent]
        y_pred = [names[p].tolist() for p in p_sent]
        report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
        micro = report["micro avg"]
        out.update(
            {
                "span_f1": float(micro["f1-score"]),
                "span_precision": float(micro["precision"]),
                "span_recall": float(micro["recall"]),
            }
        )
        out = {k: v for k, v in out.items() if k in metrics}
        for entity, row in report.items():  # per entity type: span_f1/PER, span_f1/LOC, ...
            if "avg" not in entity:
                out[f"span_f1/{entity}"] = float(row["f1-score"])
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise XlexpError(f"unknown metric(s) {sorted(unknown)}; known: {', '.join(METRICS)}")
    return out


@torch.inference_mode()
def encode(
    model,
    split: TokenizedSplit,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    precision: str,
    layer: int | None,
    progress=None,
) -> np.ndarray:
    """Mean-pooled hidden states of ``layer`` (None = last), L2-normalised, one row per example."""
    model.eval()
    out = np.empty((len(split), model.config.hidden_size), dtype=np.float32)
    bar = progress.add_task("encode", total=len(split), info="") if progress is not None else None
    for idx in eval_batches(split, batch_size):
        if bar is not None:
            progress.update(bar, advance=len(idx))
        batch = collate(split, idx, pad_id)
        mask = batch["attention_mask"].to(device)
        with autocast(device, precision):
            res = model(
                input_ids=batch["input_ids"].to(device), attention_mask=mask, output_hidden_states=layer is not None
            )
        hidden = (res.hidden_states[layer] if layer is not None else res.last_hidden_state).float()
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
    return out


def retrieval_accuracy(xx: np.ndarray, pivot: np.ndarray) -> dict[str, float]:
    """Accuracy@1 of cosine nearest-neighbour search in both directions (row i <-> row i)."""
    sims = xx @ pivot.T
    gold = np.arange(len(xx))
    return {"acc1_xx2en": float(np.mean(sims.argmax(1) == gold)), "acc1_en2xx": float(np.mean(sims.argmax(0) == gold))}
