"""Prediction and metrics (sklearn; no hub-loaded metric scripts)."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from xlexp.data import TokenizedSplit, collate, eval_batches
from xlexp.errors import XlexpError

METRICS = ("accuracy", "macro_f1")


def autocast(device: torch.device, precision: str):
    """bf16 autocast where asked for; a no-op context for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.inference_mode()
def predict(model, split: TokenizedSplit, batch_size: int, pad_id: int, device: torch.device, precision: str = "fp32") -> np.ndarray:
    was_training = model.training
    model.eval()
    preds = np.empty(len(split), dtype=np.int64)
    for idx in eval_batches(split, batch_size):
        batch = collate(split, idx, pad_id)
        with autocast(device, precision):
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        preds[idx] = logits.argmax(-1).cpu().numpy()
    model.train(was_training)
    return preds


def compute_metrics(preds: np.ndarray, labels: np.ndarray, metrics: tuple[str, ...], num_labels: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in metrics:
        if name == "accuracy":
            out[name] = float(accuracy_score(labels, preds))
        elif name == "macro_f1":
            # all labels, so a class never predicted counts as F1 = 0 instead of vanishing from the mean
            out[name] = float(f1_score(labels, preds, labels=list(range(num_labels)), average="macro", zero_division=0))
        else:
            raise XlexpError(f"unknown metric '{name}'; known: {', '.join(METRICS)}")
    return out
