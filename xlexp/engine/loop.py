"""The training loop: one model, its optimiser and linear schedule, and a hook for periodic evaluation."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from xlexp.config.schema import OPTIMIZERS, OptimizerSettings
from xlexp.data.tokenized import TokenizedSplit, collate, train_batches
from xlexp.engine import distributed
from xlexp.engine.graphed import STEP_GRAPH, GraphedStep, check_supported
from xlexp.engine.inference import autocast
from xlexp.engine.losses import LABELS, TrainLoss
from xlexp.errors import XlexpError

log = logging.getLogger(__name__)


class NonFiniteLoss(XlexpError, FloatingPointError):
    """Training diverged (NaN/inf loss): a setting the user can change, so one line and no traceback;
    the unit leaves no records (nothing was written yet)."""


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int
    eval_batch_size: int
    group_by_length: bool
    eval_every: int | None
    precision: str  # fp32 | bf16 (already resolved from auto)
    seed: int
    grad_accum_steps: int = 1  # micro-batches of batch_size per optimizer step
    # torch.compile the training forward: True = default mode with dynamic shapes (batches are padded
    # per batch); or a torch.compile mode, e.g. "reduce-overhead" (CUDA graphs: one per batch shape)
    compile: bool | str = False
    sampling: str = "uniform"  # uniform | balanced: draw examples with probability 1 / (count of their class)

    def steps_per_epoch(self, n_examples: int) -> int:
        """Optimizer steps per epoch."""
        return math.ceil(math.ceil(n_examples / self.batch_size) / self.grad_accum_steps)


@dataclass
class TrainResult:
    steps: int = 0
    eval_steps: list[int] = field(default_factory=list)
    train_loss: float = float("nan")
    graph_replays: int = 0  # trainer.compile=step-graph: steps run as a CUDA graph replay (the rest ran eagerly)


def build_optimizer(
    model: nn.Module, opt: OptimizerSettings, capturable_on: torch.device | None = None
) -> torch.optim.Optimizer:
    """The optimizer over the trainable parameters. ``capturable_on`` (a CUDA device): AdamW with its
    learning rate and step counters on that device, so its step can be recorded in a CUDA graph
    (:mod:`xlexp.engine.graphed`); the schedule then fills the lr tensor in place (:class:`DeviceLR`)."""
    name = opt.name
    # no weight decay on biases and LayerNorm weights (the usual BERT recipe)
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)
    wd = float(opt.weight_decay)
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    lr = float(opt.lr)
    if name == "adamw":
        # fused AdamW: one kernel over all parameters; ~9x faster steps than the per-tensor loop on
        # this CPU for e5-small (its 96M-parameter embedding dominates the update)
        if capturable_on is not None:
            lr_t = torch.tensor(lr, dtype=torch.float32, device=capturable_on)
            return torch.optim.AdamW(
                groups, lr=lr_t, betas=tuple(opt.betas), eps=float(opt.eps), fused=True, capturable=True
            )
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(opt.betas), eps=float(opt.eps), fused=True)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=float(opt.momentum))
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=lr, relative_step=False, scale_parameter=False, warmup_init=False)
    raise XlexpError(f"unknown optimizer '{name}'; available: {', '.join(OPTIMIZERS)}")


def linear_factor(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, linear_factor(warmup_steps, total_steps))


class DeviceLR:
    """The linear schedule for an optimizer whose learning rate is a device tensor (a CUDA graph reads
    it). ``LambdaLR`` handles tensor rates too, but computes each new value from a device tensor and
    reads it back with ``.item()`` — a host-device sync every step; here the value is computed in
    Python and written with one ``fill_`` kernel, so the host never waits for the GPU."""

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Callable[[int], float]):
        self.optimizer, self.factor, self.step_count = optimizer, factor, 0
        self.base = [float(g["lr"]) for g in optimizer.param_groups]
        self._fill()

    def _fill(self) -> None:
        for g, b in zip(self.optimizer.param_groups, self.base):
            g["lr"].fill_(b * self.factor(self.step_count))

    def get_last_lr(self) -> list[float]:
        return [b * self.factor(self.step_count) for b in self.base]

    def step(self) -> None:
        self.step_count += 1
        self._fill()


def train(
    model: nn.Module,
    train_split: TokenizedSplit,
    opt: OptimizerSettings,
    settings: TrainSettings,
    pad_id: int,
    device: torch.device,
    on_eval: Callable[[int, float], None] | None = None,
    on_step: Callable[[int, float, float], None] | None = None,
    sample_weights: np.ndarray | None = None,
    loss: TrainLoss = LABELS,
) -> TrainResult:
    """Train for ``settings.epochs``. ``on_eval(step, epoch)`` runs every ``eval_every`` steps (or at
    each epoch end) and always at the last step; what is evaluated and kept is the caller's business
    (see :mod:`xlexp.engine.selection`). ``sample_weights`` draws each epoch's examples with these
    probabilities (multi-source sampling) instead of a permutation. ``loss``: the task kind's
    (:mod:`xlexp.engine.losses`; class cross-entropy by default)."""
    rng = np.random.default_rng(settings.seed)
    steps_per_epoch = settings.steps_per_epoch(len(train_split))
    total = steps_per_epoch * settings.epochs
    accum = settings.grad_accum_steps
    eval_every = settings.eval_every or steps_per_epoch
    graphed = settings.compile == STEP_GRAPH
    if graphed:
        check_supported(device, accum, opt.name, not loss.classes, distributed.info().enabled)
    optimizer = build_optimizer(model, opt, capturable_on=device if graphed else None)
    factor = linear_factor(int(float(opt.warmup_ratio) * total), total)
    scheduler = DeviceLR(optimizer, factor) if graphed else torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(opt.label_smoothing))
    counts = class_counts(train_split) if loss.classes else np.zeros(0, dtype=np.int64)  # spans: no classes
    if opt.class_weights == "balanced":
        loss_fn.weight = torch.from_numpy(balanced_weights(counts)).to(device)
    if settings.sampling == "balanced":
        if not loss.classes:
            raise XlexpError(BALANCED_NEEDS_LABELS)
        sample_weights = balanced_sampling(train_split, counts, sample_weights)
    grad_clip = opt.grad_clip
    world = distributed.info()
    net = distributed.wrap(model, device)  # DDP under torchrun; the model itself otherwise
    stepper = None
    if graphed:
        stepper = GraphedStep(
            model,
            optimizer,
            loss_fn,
            grad_clip,
            settings.precision,
            settings.batch_size,
            int(train_split.lengths.max()),
            pad_id,
            device,
        )
    elif settings.compile:
        mode = None if settings.compile is True else str(settings.compile)
        net = torch.compile(net, dynamic=True if mode is None else None, mode=mode)

    result = TrainResult()
    step, running = 0, []
    # The loss of step s is read (one GPU sync) only after step s+1 is queued, so the GPU never waits
    # for Python between steps; on the CPU this changes nothing (every op is synchronous there).
    pending: tuple[int, torch.Tensor, float] | None = None

    def report() -> None:
        nonlocal pending
        if pending is None:
            return
        done_step, loss_t, lr = pending
        pending = None
        value = loss_t.item()
        if not math.isfinite(value):
            raise NonFiniteLoss(
                f"non-finite training loss at step {done_step} (lr {lr:.2e}): training diverged; "
                f"lower optimizer.lr, set optimizer.grad_clip=1.0 or warmup (optimizer.warmup_ratio=0.1), "
                f"or try trainer.precision=fp32"
            )
        running.append(value)
        if on_step:
            on_step(done_step, value, lr)

    model.train()
    for _ in range(settings.epochs):
        batches = train_batches(train_split, settings.batch_size, rng, settings.group_by_length, sample_weights)
        for start in range(0, len(batches), accum):
            group = batches[start : start + accum]
            if stepper is not None:  # forward, backward, clipping and the update: one graph replay
                lr = scheduler.get_last_lr()[0]
                batch_loss = stepper(collate(train_split, group[0], pad_id))
                scheduler.step()
            else:
                # every micro-batch's summed loss over the group's label count: the gradient of one big batch
                count = sum(_n_labels(train_split, idx) for idx in group)
                batch_loss = torch.zeros((), device=device)
                for idx in group:
                    if world.enabled:  # under DDP each micro-batch is averaged over ranks; weight micro-batches equally
                        value, part = _ddp_batch_loss(
                            net, train_split, idx, pad_id, device, settings.precision, loss_fn, world.world_size, loss
                        )
                        value, part = value / len(group), part / len(group)
                    else:
                        batch = collate(train_split, idx, pad_id)
                        with autocast(device, settings.precision):
                            logits = net(
                                to_device(batch["input_ids"], device), to_device(batch["attention_mask"], device)
                            )
                        value = loss.batch_sum(logits, to_device(batch["labels"], device), loss_fn)[0] / max(count, 1)
                        part = value.detach()
                    value.backward()
                    batch_loss += part
                if grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            step += 1
            report()  # the previous step's loss: this step is already queued
            pending = (step, batch_loss, lr)
            if on_eval and (step % eval_every == 0 or step == total):
                report()
                model.eval()
                on_eval(step, step / steps_per_epoch)
                model.train()
                result.eval_steps.append(step)
    report()
    result.steps = step
    result.graph_replays = stepper.replays if stepper is not None else 0
    result.train_loss = float(np.mean(running[-steps_per_epoch:])) if running else float("nan")
    return result


def class_counts(split: TokenizedSplit) -> np.ndarray:
    """Training examples (sentence tasks) or labelled words (token tasks) per class id."""
    labels = (
        split.labels if split.token_labels is None else np.concatenate(split.token_labels or [np.zeros(0, np.int64)])
    )
    labels = np.asarray(labels)
    labels = labels[labels >= 0]
    return np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)


def balanced_weights(counts: np.ndarray) -> np.ndarray:
    """Cross-entropy class weights n / (classes x count): 1 on average over the training examples, so the
    loss keeps its scale; a class absent from the training split gets weight 0 (it never occurs)."""
    present = counts > 0
    weights = np.zeros(len(counts), dtype=np.float32)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


BALANCED_NEEDS_LABELS = (
    "data.sampling=balanced needs one label per example; this task labels words or spans: "
    "use optimizer.class_weights=balanced instead"
)


def balanced_sampling(split: TokenizedSplit, counts: np.ndarray, base: np.ndarray | None) -> np.ndarray:
    """Per-example draw probabilities 1 / count(class), times ``base`` (multi-source sampling) if given."""
    if split.token_labels is not None:
        raise XlexpError(BALANCED_NEEDS_LABELS)
    weights = 1.0 / counts[np.asarray(split.labels)]
    if base is not None:
        weights = weights * np.asarray(base)
    return weights / weights.sum()


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device without a sync: a copy from pageable memory would wait for every queued kernel."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _n_labels(split: TokenizedSplit, idx: np.ndarray) -> int:
    """Examples (sentence tasks) or labelled word pieces (token tasks) in a batch."""
    if split.token_labels is None:
        return len(idx)
    return int(sum((split.token_labels[i] != -100).sum() for i in idx))


def _ddp_batch_loss(
    net: nn.Module,
    split: TokenizedSplit,
    idx: np.ndarray,
    pad_id: int,
    device: torch.device,
    precision: str,
    loss_fn: nn.CrossEntropyLoss,
    world_size: int,
    loss: TrainLoss = LABELS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of the batch loss, scaled so that DDP's gradient average over ranks equals
    the one-process gradient of the whole batch's mean loss: sum over my slice x world / whole-batch count.
    Also returns the whole batch's mean loss, the same on every rank (so all ranks stop on a NaN together)."""
    part = distributed.shard(idx)
    empty = len(part) == 0  # a last batch smaller than the world: still run forward/backward (DDP syncs all ranks)
    batch = collate(split, idx[:1] if empty else part, pad_id)
    with autocast(device, precision):
        logits = net(to_device(batch["input_ids"], device), to_device(batch["attention_mask"], device))
    total, labels = loss.batch_sum(logits, to_device(batch["labels"], device), loss_fn)  # labels: those that count
    if empty:
        total = total * 0.0
    count = torch.tensor(0.0 if empty else float((labels != loss_fn.ignore_index).sum()), device=device)
    sums = distributed.all_reduce_sum(torch.stack([total.detach(), count]))  # [whole-batch loss sum, count]
    return total * world_size / sums[1].clamp(min=1.0), sums[0] / sums[1].clamp(min=1.0)
