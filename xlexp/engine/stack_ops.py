"""Dropout and attention that know the stack: what lets N models' forward run as one ``vmap`` over
``functional_call`` (``xlexp.engine.stacked``) and still draw each model's dropout masks from its own
generator, at the shape of its own unpadded batch.

Why a module of its own: these are the vmap-safe replacements for two of torch's and transformers'
ops (``nn.Dropout``; HF's eager attention and its padding mask, registered as ``xlexp_stacked``),
independent of how the stack is built, optimised and trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ATTENTION = "xlexp_stacked"  # the HF attention implementation name registered below


def generator_after_seeding(device: torch.device) -> torch.Generator:
    """A generator in the state the global one (of ``device``'s kind) is in now: right after a model was
    built, it is where that model's one-at-a-time training starts drawing its dropout masks."""
    if device.type == "cuda":
        gen = torch.Generator(device=device)
        gen.set_state(torch.cuda.get_rng_state(device))
        return gen
    gen = torch.Generator(device="cpu")
    gen.set_state(torch.get_rng_state())
    return gen


@dataclass
class DropoutPlan:
    """What a dropout call in a stacked training forward needs: each stacked model's generator and the
    rows and length of its own batch (its mask is drawn at that shape, then padded).

    On the CPU each mask is drawn as torch's CPU dropout draws it (``bernoulli_`` on a tensor of the
    model's own batch shape), so a model consumes its generator exactly as when trained alone. On a
    GPU torch's dropout is a fused kernel whose draws ``bernoulli_`` does not reproduce, so there the
    stack draws all N masks in one call from the first model's generator (one kernel instead of N per
    dropout site): the same distribution, not the same masks (bf16 on a GPU is not bit-reproducible
    anyway; the criterion there is the parity interval)."""

    generators: list[torch.Generator]
    rows: list[int]
    lengths: list[int]
    padded_length: int

    def mask(self, shape: torch.Size, dtype: torch.dtype, device: torch.device, p: float) -> torch.Tensor:
        """(N, *shape) keep-masks scaled by 1/(1-p), zero on padding; ``shape`` is one model's padded one."""
        if device.type != "cpu":  # padded rows and positions need no zeros: they are masked and carry no loss
            return (
                torch.empty((len(self.rows), *shape), dtype=dtype, device=device)
                .bernoulli_(1 - p, generator=self.generators[0])
                .div_(1 - p)
            )
        out = torch.zeros((len(self.rows), *shape), dtype=dtype, device=device)
        for j, (gen, rows, length) in enumerate(zip(self.generators, self.rows, self.lengths)):
            if rows == 0:
                continue
            real = [rows] + [length if d == self.padded_length else d for d in shape[1:]]
            # the same op as torch's CPU dropout (at::dropout: empty_like(input).bernoulli_(1 - p), / (1 - p))
            noise = torch.empty(real, dtype=dtype, device=device).bernoulli_(1 - p, generator=gen).div_(1 - p)
            out[(j, *[slice(0, n) for n in real])] = noise
        return out


class _ActivePlan:
    plan: DropoutPlan | None = None


ACTIVE = _ActivePlan()


class _Dropout(torch.autograd.Function):
    """``x * mask``: under ``vmap`` the N models' masks come from :class:`DropoutPlan`."""

    @staticmethod
    def forward(x: torch.Tensor, p: float) -> torch.Tensor:  # outside vmap: never used by the stacked trainer
        return nn.functional.dropout(x, p, True)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - the vmap rule's ops carry the gradient
        raise RuntimeError("stacked dropout is differentiated through its vmap rule")

    @staticmethod
    def vmap(info, in_dims, x: torch.Tensor, p: float):
        x = x.movedim(in_dims[0], 0)
        plan = ACTIVE.plan
        if plan is None or x.shape[0] != len(plan.rows):
            raise RuntimeError("stacked dropout outside a stacked training forward")
        return x * plan.mask(x.shape[1:], x.dtype, x.device, p), 0


def stacked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0 or x.numel() == 0:  # as at::dropout: no draw at all
        return x
    return _Dropout.apply(x, p)


class StackedDropout(nn.Dropout):
    """Replaces ``nn.Dropout`` in the stacked forward's module tree (same ``p``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stacked_dropout(x, self.p, self.training)


def stacked_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
):
    """HF's eager attention (BERT, XLM-R) with the stacked dropout; registered as ``xlexp_stacked``."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1)
    weights = stacked_dropout(weights, dropout, module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def stacked_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    attention_mask: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    device=None,
    **kwargs,
) -> torch.Tensor | None:
    """The bidirectional padding mask as an additive float mask, without HF's data-dependent "no
    padding, skip the mask" test (which ``vmap`` cannot trace)."""
    if attention_mask is None:
        return None
    keep = attention_mask[:, None, None, :kv_length].to(torch.bool)
    zero = torch.zeros((), dtype=dtype, device=keep.device)
    return torch.where(keep, zero, torch.finfo(dtype).min).expand(batch_size, 1, q_length, kv_length)


_REGISTERED = False


def register_attention() -> None:
    """Register :func:`stacked_attention` and :func:`stacked_mask` with transformers as ``xlexp_stacked`` (once)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register(ATTENTION, stacked_attention)
    AttentionMaskInterface.register(ATTENTION, stacked_mask)
    _REGISTERED = True
