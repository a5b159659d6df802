"""Language-model scoring and greedy generation, for in-context transfer and generation tasks.

``continuation_logprobs`` scores every (context, continuation) pair by the summed log-probability of
the continuation's tokens given the context, the rank-classification of GPT-3 and lm-eval. Pairs are
batched longest first, left-padded with explicit position ids so every continuation ends at the last
position: the LM head then runs on the last few positions only (``logits_to_keep``), not on the whole
prompt times a 150k-250k vocabulary. A context too long for ``max_length`` loses its *oldest* tokens
(the first demonstrations), never the query.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from xlexp.engine.inference import autocast

log = logging.getLogger(__name__)


@torch.inference_mode()
def continuation_logprobs(
    model,
    tokenizer,
    contexts: list[str],
    continuations: list[list[str]],
    batch_size: int,
    device: torch.device,
    precision: str,
    max_length: int,
) -> tuple[np.ndarray, int]:
    """``out[i, j]`` = log p(continuations[i][j] | contexts[i]); also how many contexts were cut."""
    ctx_ids = tokenizer(contexts, add_special_tokens=True)["input_ids"]
    unique = sorted({c for row in continuations for c in row})
    cont_ids = dict(zip(unique, tokenizer(unique, add_special_tokens=False)["input_ids"])) if unique else {}
    rows, cut = [], 0
    for i, (ids, conts) in enumerate(zip(ctx_ids, continuations)):
        for j, c in enumerate(conts):
            cont = list(cont_ids[c]) or [tokenizer.unk_token_id]
            budget = max_length - len(cont)
            ctx = list(ids)
            if len(ctx) > budget:
                bos = [ctx[0]] if tokenizer.bos_token_id is not None and ctx[0] == tokenizer.bos_token_id else []
                ctx = bos + ctx[len(ctx) - budget + len(bos) :]
                cut += j == 0
            rows.append((i, j, ctx + cont, len(cont)))
    out = np.full((len(contexts), max((len(c) for c in continuations), default=0)), -np.inf, dtype=np.float64)
    order = sorted(range(len(rows)), key=lambda r: -len(rows[r][2]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.eval()
    for start in range(0, len(order), batch_size):
        batch = [rows[r] for r in order[start : start + batch_size]]
        width = max(len(b[2]) for b in batch)
        n_max = max(b[3] for b in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            ids[row, width - len(b[2]) :] = torch.tensor(b[2])
            mask[row, width - len(b[2]) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with autocast(device, precision):
            logits = _last_logits(model, ids.to(device), mask.to(device), positions.to(device), n_max + 1)
        logp = torch.log_softmax(logits.float(), -1)  # (B, n_max + 1, V): positions width-n_max-1 .. width-1
        for row, (i, j, seq, n) in enumerate(batch):
            target = torch.tensor(seq[-n:], device=logp.device)
            # token t of the continuation (at position width-n+t) is predicted at position width-n+t-1
            pred = logp[row, n_max - n : n_max]
            out[i, j] = float(pred.gather(1, target.unsqueeze(1)).sum())
    return out, cut


def _last_logits(model, ids, mask, positions, keep: int) -> torch.Tensor:
    try:
        return model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits[:, -keep:]
    except TypeError:  # an architecture without logits_to_keep / position_ids (e.g. BLOOM's ALiBi)
        return model(input_ids=ids, attention_mask=mask).logits[:, -keep:]


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    sources: list[str],
    batch_size: int,
    device: torch.device,
    precision: str,
    max_length: int,
    max_new_tokens: int,
    num_beams: int = 1,
    stop: str | None = None,
    forced_bos_token_id: int | None = None,
) -> list[str]:
    """Decoded outputs for ``sources`` (greedy, or beam search), longest first in batches. A decoder
    continues its prompt (left-padded; the prompt is stripped from the output and the text is cut at
    ``stop``); a seq2seq model's output is the decoder's."""
    model.eval()
    decoder_only = not getattr(model.config, "is_encoder_decoder", False)
    enc = tokenizer(sources, add_special_tokens=True)["input_ids"]
    enc = [x[-max_length:] if decoder_only else x[:max_length] for x in enc]
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))
    out: list[str] = [""] * len(enc)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(enc[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            if decoder_only:  # left padding: the continuation starts at the same column everywhere
                ids[row, width - len(enc[i]) :] = torch.tensor(enc[i])
                mask[row, width - len(enc[i]) :] = 1
            else:
                ids[row, : len(enc[i])] = torch.tensor(enc[i])
                mask[row, : len(enc[i])] = 1
        kwargs = dict(max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False, pad_token_id=pad)
        if forced_bos_token_id is not None:
            kwargs["forced_bos_token_id"] = forced_bos_token_id
        with autocast(device, precision):
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
        if decoder_only:
            gen = gen[:, width:]
        texts = tokenizer.batch_decode(gen.cpu(), skip_special_tokens=True)
        for row, i in enumerate(idx):
            text = texts[row]
            if stop:
                text = text.split(stop, 1)[0]
            out[i] = text.strip()
    return out
