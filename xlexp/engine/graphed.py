"""The whole training step as one CUDA graph per batch shape (``trainer.compile=step-graph``).

Why: on a GPU the eager step of a base-size encoder is host-bound — one Python thread issues over a
thousand small kernels per step (forward, backward, grad clipping, the optimizer), and the GPU waits
for them (BENCHMARKS.md §6: 8 ms of kernels in a 44 ms step at batch 32 x 128). ``torch.compile``'s
``reduce-overhead`` mode graphs only the forward/backward and leaves clipping, ``zero_grad`` and the
optimizer to Python. Here forward, loss, backward, clipping and the (capturable, fused) AdamW update
are recorded once per (batch size, padded length) and replayed with one call, so the host issues one
graph per step and only copies the next batch into the graph's input buffers.

How, following PyTorch's "whole network capture" recipe (torch.cuda.graphs docs):

- Lengths are padded up to a few buckets (``buckets()``: quarters of ``max_length``), so a dataset
  needs at most four graphs per batch size instead of one per distinct batch width.
- The first batch of a new shape runs eagerly on a side stream (a real training step: lazy
  initialisation of cuBLAS workspaces, the optimizer state, autocast); the second is captured and
  replayed; later ones are replayed. A batch smaller than ``batch_size`` (each epoch's last) always
  runs eagerly: padding rows would change the loss normalisation for nothing.
- The learning rate is a device tensor that the schedule fills in place (``LambdaLR`` does so for
  tensor learning rates), so the captured optimizer sees every step's value; AdamW is built with
  ``capturable=True`` so its step counters live on the device too.
- Gradients are set to ``None`` before each capture: the captured backward allocates them from the
  graph pool, and the captured optimizer reads exactly those. Graphs share one memory pool; nothing a
  graph computes is read after another graph ran (the loss is copied out right after each replay).
- Dropout draws from CUDA's graph-safe Philox generator, advanced on every replay.

Same arithmetic as the eager loop (same loss, normalisation, clipping and AdamW update); the
numbers differ only by kernel choice and dropout draws. Limits (one clear error each, raised before
training): one GPU, ``grad_accum_steps=1``, AdamW, sentence or token classification (not span QA).
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
from torch import nn

from xlexp.config.schema import STEP_GRAPH
from xlexp.errors import XlexpError

__all__ = ["STEP_GRAPH", "GraphedStep", "buckets", "check_supported", "class_weight", "pad_batch"]


def buckets(max_length: int, n: int = 4, multiple: int = 8) -> list[int]:
    """Padded lengths: ``n`` evenly spaced steps up to ``max_length``, each a multiple of ``multiple``
    (tensor-core friendly). 128 -> [32, 64, 96, 128]."""
    out = sorted({min(max_length, multiple * math.ceil(max_length * k / n / multiple)) for k in range(1, n + 1)})
    return [b for b in out if b > 0]


def bucket_length(length: int, sizes: list[int]) -> int:
    """The smallest bucket that holds ``length`` (the longest one if none does)."""
    for b in sizes:
        if length <= b:
            return b
    return sizes[-1]


def pad_batch(batch: dict[str, torch.Tensor], length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a collated batch to ``length`` positions: pad ids, mask 0, and -100 for token labels
    (ignored by the loss), so the padded batch has exactly the loss and gradient of the original."""
    cur = batch["input_ids"].shape[1]
    if cur >= length:
        return batch
    extra = length - cur
    out = dict(batch)
    out["input_ids"] = nn.functional.pad(batch["input_ids"], (0, extra), value=pad_id)
    out["attention_mask"] = nn.functional.pad(batch["attention_mask"], (0, extra), value=0)
    if batch["labels"].dim() == 2:  # token labels
        out["labels"] = nn.functional.pad(batch["labels"], (0, extra), value=-100)
    return out


def class_weight(weight: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor | None:
    """The class weights padded to the head's number of classes (labels absent from the train split)."""
    if weight is None or len(weight) == logits.shape[-1]:
        return weight
    return nn.functional.pad(weight, (0, logits.shape[-1] - len(weight)))


def check_supported(device: torch.device, accum: int, optimizer_name: str, spans: bool, distributed: bool) -> None:
    """The limits of the graphed step, as one line each (before any training starts)."""
    where = "trainer.compile=step-graph"
    if device.type != "cuda":
        raise XlexpError(
            f"{where} captures CUDA graphs and needs a GPU (device is {device.type}); "
            f"use trainer.compile=false on this machine"
        )
    if distributed:
        raise XlexpError(f"{where} runs on one GPU; under torchrun use trainer.compile=reduce-overhead")
    if accum != 1:
        raise XlexpError(f"{where} needs trainer.grad_accum_steps=1 (got {accum}); raise data.batch_size instead")
    if optimizer_name != "adamw":
        raise XlexpError(
            f"{where} needs optimizer=adamw (capturable, with a device learning rate); got {optimizer_name}"
        )
    if spans:
        raise XlexpError(f"{where} does not graph span (QA) losses yet; use trainer.compile=reduce-overhead")


class GraphedStep:
    """Runs training steps: eager for a shape's first batch and for short batches, one CUDA-graph
    replay otherwise. ``__call__`` returns the step's loss as a device tensor (not synced)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: nn.CrossEntropyLoss,
        grad_clip: float | None,
        precision: str,
        batch_size: int,
        max_length: int,
        pad_id: int,
        device: torch.device,
    ):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.grad_clip, self.precision, self.batch_size = grad_clip, precision, batch_size
        self.sizes, self.pad_id, self.device = buckets(max_length), pad_id, device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor], torch.Tensor]] = {}
        self.seen: set[tuple] = set()
        self.pool = torch.cuda.graph_pool_handle()
        self.side = torch.cuda.Stream(device)
        self.replays = self.eager_steps = 0

    # -- the step itself: the same code runs eagerly and under capture ---------------------------
    def _autocast(self):
        if self.precision == "bf16":  # the autocast weight cache must be off inside a graph
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16, cache_enabled=False)
        return nullcontext()

    def _step(self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            logits = self.model(ids, mask)
        flat = labels.reshape(-1)
        count = (flat != self.loss_fn.ignore_index).sum().clamp(min=1)
        loss = (
            nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]),
                flat,
                reduction="sum",
                label_smoothing=self.loss_fn.label_smoothing,
                ignore_index=self.loss_fn.ignore_index,
                weight=class_weight(self.loss_fn.weight, logits),
            )
            / count
        )
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.params, float(self.grad_clip), foreach=True)
        self.optimizer.step()
        return loss.detach()

    def _eager(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        ids, mask, labels = (
            batch[k].to(self.device, non_blocking=True) for k in ("input_ids", "attention_mask", "labels")
        )
        self.side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.side):
            loss = self._step(ids, mask, labels)
        torch.cuda.current_stream(self.device).wait_stream(self.side)
        self.optimizer.zero_grad(set_to_none=True)
        self.eager_steps += 1
        return loss

    def _capture(self, key: tuple, batch: dict[str, torch.Tensor]) -> None:
        static = {k: torch.empty_like(batch[k], device=self.device) for k in ("input_ids", "attention_mask", "labels")}
        for k, v in static.items():
            v.copy_(batch[k], non_blocking=True)
        torch.cuda.synchronize(self.device)
        self.optimizer.zero_grad(set_to_none=True)  # the captured backward allocates the grads it then uses
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            loss = self._step(static["input_ids"], static["attention_mask"], static["labels"])
        self.graphs[key] = (graph, static, loss)

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        rows = batch["input_ids"].shape[0]
        if rows != self.batch_size:
            return self._eager(batch)
        batch = pad_batch(batch, bucket_length(batch["input_ids"].shape[1], self.sizes), self.pad_id)
        key = (rows, batch["input_ids"].shape[1], batch["labels"].dim())
        if key not in self.seen:  # warm-up: a real step, eagerly, on a side stream
            self.seen.add(key)
            return self._eager(batch)
        if key not in self.graphs:
            self._capture(key, batch)  # recording runs nothing: the replay below does the step
        else:
            graph, static, _ = self.graphs[key]
            for k, v in static.items():
                v.copy_(batch[k].pin_memory(), non_blocking=True)
        graph, _, loss = self.graphs[key]
        graph.replay()
        self.replays += 1
        return loss.clone()  # the next replay of any graph may reuse this memory
