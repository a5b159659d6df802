"""Several models of one architecture trained in one stacked pass (``trainer.sources_together=N``).

Why: a transfer matrix trains the same small model once per source, and one small model keeps
neither a GPU (BENCHMARKS §6b: 18% MFU at batch 32) nor the Python loop busy. Here N models are one
set of stacked parameters (``torch.func.stack_module_state``) and one forward is ``vmap`` over
``functional_call``: every matmul becomes a batched matmul over the N models, and the host issues
one step for N models. This module holds the loops (:func:`train_together`, :func:`predict_together`);
the stack itself and its optimizer are in ``xlexp.engine.stacked_models``.

Each model keeps everything that makes its records its own, so that a unit trained in a stack has the
records it has when trained alone (fp32: equal within float rounding; tested):

- **data order**: its own ``numpy`` generator and batches, exactly as :func:`xlexp.engine.loop.train`
  draws them; each step the N batches are stacked, rows and positions padded (padded rows carry the
  label -100 and an all-zero attention mask, so they add nothing to the loss or the gradient);
- **dropout**: its own ``torch.Generator``, started from the global generator's state after its model
  was built (as the one-at-a-time run sees it), and each mask is drawn at the shape the model's own
  unpadded batch has, so it consumes its generator exactly as the one-at-a-time run does. Dropout
  runs through :class:`~xlexp.engine.stack_ops.StackedDropout` (an ``autograd.Function`` with a
  ``vmap`` rule) and the attention through xlexp's registered HF attention function, both vmap-safe
  (``xlexp.engine.stack_ops``);
- **optimizer**: :class:`~xlexp.engine.stacked_models.StackedAdamW`, torch's fused AdamW kernel on
  each model's rows of the stacked tensors with that model's learning rate (each model has its own
  linear schedule and length), its own gradient clipping (the norm over that model's gradients only)
  and the usual no-decay rule for biases and LayerNorm weights;
- **schedule, evaluation and length**: a model that has done its steps stops (learning rate 0 and out
  of the stack); evaluation runs at each model's own steps (the caller batches the models due).

Limits (one line each, before training, see :func:`check_supported`): AdamW, sentence or token
classification (not span QA), ``trainer.compile=false``, no gradient checkpointing, no LoRA, one
process (not under torchrun).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from xlexp.config.schema import OptimizerSettings
from xlexp.data.tokenized import TokenizedSplit, collate, eval_batches, train_batches
from xlexp.engine.graphed import class_weight
from xlexp.engine.inference import autocast
from xlexp.engine.loop import (
    NonFiniteLoss,
    TrainSettings,
    _n_labels,
    balanced_sampling,
    balanced_weights,
    class_counts,
    linear_factor,
)
from xlexp.engine.stack_ops import (
    ACTIVE,
    DropoutPlan,
    generator_after_seeding,  # noqa: F401  (a stack member's generator: callers use stacked.)
)
from xlexp.engine.stacked_models import StackedAdamW, StackedModels
from xlexp.errors import XlexpError

log = logging.getLogger(__name__)

SETTING = "trainer.sources_together"


def check_supported(
    opt: OptimizerSettings,
    compile: bool | str,
    spans: bool,
    lora: bool,
    gradient_checkpointing: bool,
    distributed: bool,
) -> None:
    """The combinations the stacked trainer does not do, as one line each (before any training)."""
    if opt.name != "adamw":
        raise XlexpError(
            f"{SETTING}>1 trains with a stacked AdamW; optimizer={opt.name} is not stacked: "
            f"use optimizer=adamw or {SETTING}=1"
        )
    if compile:
        raise XlexpError(
            f"{SETTING}>1 does not combine with trainer.compile={compile} yet: set trainer.compile=false or {SETTING}=1"
        )
    if spans:
        raise XlexpError(f"{SETTING}>1 trains sentence and token classifiers; span (QA) tasks: {SETTING}=1")
    if lora:
        raise XlexpError(f"{SETTING}>1 does not stack LoRA adapters yet: use model.peft=null or {SETTING}=1")
    if gradient_checkpointing:
        raise XlexpError(
            f"{SETTING}>1 does not combine with model.gradient_checkpointing (the recomputed "
            f"forward would draw dropout again): set it to false or {SETTING}=1"
        )
    if distributed:
        raise XlexpError(f"{SETTING}>1 runs in one process; under torchrun use {SETTING}=1")


# -- training -------------------------------------------------------------------------------
@dataclass
class Member:
    """One model of the stack: its data, settings and callbacks (as :func:`loop.train` takes them)."""

    name: str
    split: TokenizedSplit
    settings: TrainSettings
    generator: torch.Generator
    sample_weights: np.ndarray | None = None
    on_step: Callable[[int, float, float], None] | None = None
    # filled in by train_together
    total: int = 0
    steps_per_epoch: int = 0
    eval_every: int = 0
    weight: torch.Tensor | None = None
    losses: list[float] = field(default_factory=list)


@dataclass
class StackResult:
    steps: list[int]
    train_loss: list[float]


def _groups(member: Member):
    """The member's optimizer steps as groups of micro-batches, epoch after epoch (loop.train's order)."""
    s = member.settings
    rng = np.random.default_rng(s.seed)
    for _ in range(s.epochs):
        batches = train_batches(member.split, s.batch_size, rng, s.group_by_length, member.sample_weights)
        for start in range(0, len(batches), s.grad_accum_steps):
            yield batches[start : start + s.grad_accum_steps]


def _padded_length(lengths: list[int], avoid: set[int]) -> int:
    """The stacked batch's length: the longest member's, lengthened past any model dimension it equals
    (a dropout mask's sequence dimensions are found by that size)."""
    t = max(lengths)
    while t in avoid:
        t += 1
    return t


def model_sizes(model: nn.Module) -> set[int]:
    """Every dimension size of the model's parameters and its config's head count and head size."""
    sizes = {d for p in model.parameters() for d in p.shape}
    config = getattr(getattr(model, "encoder", model), "config", None)
    if config is not None:
        heads = getattr(config, "num_attention_heads", None)
        if heads:
            sizes |= {int(heads), int(config.hidden_size) // int(heads)}
    return sizes


def train_together(
    stack: StackedModels,
    members: list[Member],
    opt: OptimizerSettings,
    pad_id: int,
    device: torch.device,
    on_eval: Callable[[int, list[int]], None] | None,
    sizes: set[int],
) -> StackResult:
    """Train the stack's models, each as :func:`xlexp.engine.loop.train` trains it alone.
    ``on_eval(step, members_due)`` runs at a step where some members evaluate (every ``eval_every``
    of their steps or each epoch end, and their last step); the stack is in eval mode meanwhile."""
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(opt.label_smoothing))
    for m in members:
        s = m.settings
        m.steps_per_epoch = s.steps_per_epoch(len(m.split))
        m.total = m.steps_per_epoch * s.epochs
        m.eval_every = s.eval_every or m.steps_per_epoch
        counts = class_counts(m.split)
        if opt.class_weights == "balanced":
            m.weight = torch.from_numpy(balanced_weights(counts)).to(device)
        if s.sampling == "balanced":
            m.sample_weights = balanced_sampling(m.split, counts, m.sample_weights)
    factors = [linear_factor(int(float(opt.warmup_ratio) * m.total), m.total) for m in members]
    base_lr = float(opt.lr)
    optimizer = StackedAdamW(stack, opt)
    iters = [_groups(m) for m in members]
    precision = members[0].settings.precision
    n = len(members)
    pending = None

    def report() -> None:
        nonlocal pending
        if pending is None:
            return
        step, losses, lrs, active = pending
        pending = None
        values = losses.tolist()
        for i in active:
            value = values[i]
            if not math.isfinite(value):
                raise NonFiniteLoss(
                    f"non-finite training loss at step {step} of source {members[i].name} (lr {lrs[i]:.2e}): training "
                    f"diverged; lower optimizer.lr, set optimizer.grad_clip=1.0 or warmup (optimizer.warmup_ratio=0.1), "
                    f"or try trainer.precision=fp32"
                )
            members[i].losses.append(value)
            if members[i].on_step:
                members[i].on_step(step, value, lrs[i])

    stack.train()
    for step in range(1, max(m.total for m in members) + 1):
        active = [i for i, m in enumerate(members) if step <= m.total]
        groups = {i: next(iters[i]) for i in active}
        counts = {i: sum(_n_labels(members[i].split, idx) for idx in groups[i]) for i in active}
        step_losses = torch.zeros(n, device=device)
        for j in range(max(len(g) for g in groups.values())):
            due = [i for i in active if j < len(groups[i])]
            batches = [collate(members[i].split, groups[i][j], pad_id) for i in due]
            rows = [b["input_ids"].shape[0] for b in batches]
            lengths = [b["input_ids"].shape[1] for b in batches]
            width = _padded_length(lengths, sizes)
            ids, mask, labels = _stack_batches(batches, max(rows), width, pad_id)
            ACTIVE.plan = DropoutPlan([members[i].generator for i in due], rows, lengths, width)
            try:
                with autocast(device, precision):
                    logits = stack.forward(due, ids.to(device), mask.to(device))
            finally:
                ACTIVE.plan = None
            labels = labels.to(device)
            total = torch.zeros((), device=device)
            for k, i in enumerate(due):
                lg = logits[k].float()
                loss = nn.functional.cross_entropy(
                    lg.reshape(-1, lg.shape[-1]),
                    labels[k].reshape(-1),
                    reduction="sum",
                    label_smoothing=loss_fn.label_smoothing,
                    ignore_index=loss_fn.ignore_index,
                    weight=class_weight(members[i].weight, lg),
                ) / max(counts[i], 1)
                total = total + loss
                step_losses[i] += loss.detach()
            total.backward()
        if opt.grad_clip:
            optimizer.clip(float(opt.grad_clip))
        lrs = [base_lr * factors[i](step - 1) if i in groups else 0.0 for i in range(n)]
        optimizer.step(lrs)
        optimizer.zero_grad()
        report()
        pending = (step, step_losses, lrs, active)
        due_eval = [i for i in active if step % members[i].eval_every == 0 or step == members[i].total]
        if on_eval and due_eval:
            report()
            stack.eval()
            on_eval(step, due_eval)
            stack.train()
    report()
    stack.eval()
    return StackResult(
        [m.total for m in members],
        [float(np.mean(m.losses[-m.steps_per_epoch :])) if m.losses else float("nan") for m in members],
    )


def _stack_batches(batches: list[dict], rows: int, width: int, pad_id: int):
    """(n, rows, width) ids and mask, labels padded with -100 (ignored: no loss, no gradient)."""
    n = len(batches)
    ids = torch.full((n, rows, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, rows, width), dtype=torch.long)
    token = batches[0]["labels"].dim() == 2
    labels = torch.full((n, rows, width) if token else (n, rows), -100, dtype=torch.long)
    for k, b in enumerate(batches):
        r, t = b["input_ids"].shape
        ids[k, :r, :t] = b["input_ids"]
        mask[k, :r, :t] = b["attention_mask"]
        if token:
            labels[k, :r, :t] = b["labels"]
        else:
            labels[k, :r] = b["labels"]
    return ids, mask, labels


@torch.inference_mode()
def predict_together(
    stack: StackedModels,
    members: list[int],
    split: TokenizedSplit,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    precision: str = "fp32",
) -> list:
    """:func:`xlexp.engine.inference.predict` for several models of the stack at once: one pass over the
    split, each batch run by every member (the inputs are shared, not copied)."""
    stack.eval()
    token_level = split.token_labels is not None
    out = [([None] * len(split)) if token_level else np.empty(len(split), dtype=np.int64) for _ in members]
    for idx in eval_batches(split, batch_size):
        batch = collate(split, idx, pad_id)
        with autocast(device, precision):
            logits = stack.forward(
                members, batch["input_ids"].to(device), batch["attention_mask"].to(device), shared=True
            )
        best = logits.argmax(-1).cpu().numpy()
        if token_level:
            labels = batch["labels"].numpy()
            for k in range(len(members)):
                for row, i in enumerate(idx):
                    out[k][i] = best[k][row][labels[row] != -100]
        else:
            for k in range(len(members)):
                out[k][idx] = best[k]
    return out
