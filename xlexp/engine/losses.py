"""The training losses a task kind hands to the loop (``xlexp.experiment.kinds``): the loop asks the
loss, never the shape of the split, what a batch's summed loss is and whether its labels are classes.

- :data:`LABELS`: cross-entropy over classes, flattened so that one loss serves sentence ``(B, C)``
  and token ``(B, T, C)`` logits (-100 is ignored); class weights, balanced sampling and the graphed
  step apply.
- :data:`SPANS`: extractive QA, ``(B, T, 2)`` start/end logits against ``(B, 2)`` gold positions
  (:func:`xlexp.models.span.span_loss`); no classes.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from xlexp.engine.graphed import class_weight
from xlexp.models.span import span_loss


class TrainLoss:
    """``batch_sum`` returns the batch's summed loss and the labels that count it (those not equal to
    ``loss_fn.ignore_index``: the distributed path divides by their number over all ranks)."""

    classes: ClassVar[bool] = True  # labels are class ids: class weights, balanced sampling, a CUDA-graph step

    def batch_sum(
        self, logits: torch.Tensor, labels: torch.Tensor, loss_fn: nn.CrossEntropyLoss
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class LabelLoss(TrainLoss):
    def batch_sum(self, logits, labels, loss_fn):
        labels = labels.reshape(-1)
        total = nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            labels,
            reduction="sum",
            label_smoothing=loss_fn.label_smoothing,
            ignore_index=loss_fn.ignore_index,
            weight=class_weight(loss_fn.weight, logits),
        )
        return total, labels


class SpanLoss(TrainLoss):
    classes = False

    def batch_sum(self, logits, labels, loss_fn):
        return span_loss(logits, labels), labels[:, 0]


LABELS = LabelLoss()
SPANS = SpanLoss()
