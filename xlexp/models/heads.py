"""The per-position classification head shared by encoder and decoder backbones (taggers)."""

from __future__ import annotations

import torch
from torch import nn


class TokenClassifier(nn.Module):
    """Encoder (or decoder backbone) + dropout + a linear layer on every position (tags are read on each
    word's first piece; a decoder's first piece sees only its left context)."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # float(): a backbone loaded in bf16 (decoders) meets an fp32 head; a no-op for fp32 and autocast runs
        return self.classifier(self.dropout(hidden.float()))
