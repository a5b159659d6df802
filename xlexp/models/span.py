"""The extractive-QA head: a start and an end score for every piece, on any encoder.

One linear layer (hidden -> 2) over the last hidden states, as BERT's SQuAD head and the Hugging
Face ``*ForQuestionAnswering`` models; padded positions get a large negative score so neither the
loss nor the span search ever picks them. Output: (batch, length, 2) logits, [..., 0] start and
[..., 1] end (``xlexp.engine.loop`` trains it with :func:`span_loss`).
"""

from __future__ import annotations

import torch
from torch import nn

NEG = -1e4  # fits bf16 and fp16


class SpanHead(nn.Module):
    def __init__(self, encoder: nn.Module, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.qa_outputs = nn.Linear(encoder.config.hidden_size, 2)
        nn.init.normal_(self.qa_outputs.weight, std=0.02)
        nn.init.zeros_(self.qa_outputs.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.qa_outputs(self.dropout(hidden))
        return logits.masked_fill(attention_mask.unsqueeze(-1) == 0, NEG)


def span_loss(logits: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Summed over the batch: (cross-entropy of the start position + of the end position) / 2."""
    logits = logits.float()
    start = nn.functional.cross_entropy(logits[..., 0], positions[:, 0], reduction="sum")
    end = nn.functional.cross_entropy(logits[..., 1], positions[:, 1], reduction="sum")
    return (start + end) / 2
