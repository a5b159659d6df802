"""Vocabulary trimming: keep only the token ids an experiment's data uses.

Multilingual encoders carry 120k-500k-token vocabularies and an experiment touches a few percent of
them (the 12 NusaX languages use ~10.5k of XLM-R's 250k ids), yet every training step computes a
dense gradient for, and AdamW updates, the whole embedding matrix. Trimming keeps the rows of the
ids that occur in the plan's data (every split of every language) plus the special tokens, and
renumbers the tokenized data to match. The model is unchanged on any text made of kept tokens:
its logits are identical (tested); text with other tokens would see the unknown token instead, and
by construction the plan's data has none.

The tokenizer itself is left alone: its output ids are renumbered with one lookup table
(``TokenCache.remap``), which is exact and works for every tokenizer type (WordPiece, SentencePiece
Unigram, BPE).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from xlexp.data.tokenized import TokenizedSplit
from xlexp.errors import XlexpError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VocabTrim:
    kept: np.ndarray  # old ids kept, ascending; new id i = kept[i]
    old_to_new: np.ndarray  # old id -> new id (ids not kept map to the new unknown id)
    original_size: int

    @property
    def size(self) -> int:
        return len(self.kept)

    @property
    def digest(self) -> str:
        """Identifies the trimmed vocabulary (part of cache keys of trimmed models)."""
        return hashlib.sha1(self.kept.tobytes()).hexdigest()[:12]


def plan_trim(splits: Iterable[TokenizedSplit], tokenizer, vocab_size: int) -> VocabTrim:
    """The ids used by ``splits`` plus every special token of ``tokenizer``."""
    used = np.zeros(vocab_size, dtype=bool)
    for split in splits:
        if split.input_ids:
            used[np.concatenate(split.input_ids)] = True
    specials = [i for i in tokenizer.all_special_ids if i is not None and 0 <= i < vocab_size]
    used[specials] = True
    kept = np.flatnonzero(used)
    unk = tokenizer.unk_token_id
    if unk is None or not used[unk]:
        raise XlexpError("model.trim_vocab=true needs a tokenizer with an unknown token")
    old_to_new = np.full(vocab_size, np.searchsorted(kept, unk), dtype=np.int32)
    old_to_new[kept] = np.arange(len(kept), dtype=np.int32)
    return VocabTrim(kept, old_to_new, vocab_size)


def trim_embeddings(encoder: nn.Module, trim: VocabTrim) -> None:
    """Keep the rows of ``trim.kept`` in the input embedding (and in tied/untied output embeddings
    and their bias, if the model has an LM head); update the config to match."""
    old = encoder.get_input_embeddings()
    # rows past the tokenizer's ids (vocabularies padded to a round size) are never used: dropped too
    if old.num_embeddings < trim.original_size:
        raise XlexpError(
            f"trim_vocab: the embedding has {old.num_embeddings} rows but the tokenizer "
            f"{trim.original_size} ids; the model and its tokenizer do not match"
        )
    index = torch.from_numpy(trim.kept.astype(np.int64))
    pad = getattr(encoder.config, "pad_token_id", None)
    new_pad = int(trim.old_to_new[pad]) if pad is not None and 0 <= pad < trim.original_size else None
    # built from the kept rows directly (``_weight``): a fresh nn.Embedding would first initialise
    # itself randomly, drawing from the global RNG in proportion to the kept vocabulary, so adding a
    # target language would change the dropout masks and with them the trained source model
    with torch.no_grad():
        rows = old.weight[index.to(old.weight.device)].detach().clone()
    new = nn.Embedding(len(index), old.embedding_dim, padding_idx=new_pad, _weight=rows)
    new.weight.requires_grad_(old.weight.requires_grad)
    encoder.set_input_embeddings(new)
    get_out = getattr(encoder, "get_output_embeddings", None)
    out = get_out() if get_out is not None else None
    if out is not None:  # an LM head: tie again, or slice its own rows
        if out.weight.data_ptr() == old.weight.data_ptr():
            out.weight = new.weight
        else:
            out.weight = nn.Parameter(out.weight.detach()[index.to(out.weight.device)].clone())
        if getattr(out, "bias", None) is not None:
            out.bias = nn.Parameter(out.bias.detach()[index.to(out.bias.device)].clone())
        out.out_features = len(index)
    encoder.config.vocab_size = len(index)
    if new_pad is not None:
        encoder.config.pad_token_id = new_pad
        embeddings = getattr(encoder, "embeddings", None)
        if isinstance(getattr(embeddings, "padding_idx", None), int):  # RoBERTa-style position ids count non-pad ids
            embeddings.padding_idx = new_pad
    for name in ("bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id"):
        old_id = getattr(encoder.config, name, None)
        if isinstance(old_id, int) and 0 <= old_id < trim.original_size:
            setattr(encoder.config, name, int(trim.old_to_new[old_id]))


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters); tied weights counted once."""
    seen: dict[int, nn.Parameter] = {}
    for p in model.parameters():
        seen.setdefault(id(p), p)
    total = sum(p.numel() for p in seen.values())
    return total, sum(p.numel() for p in seen.values() if p.requires_grad)
