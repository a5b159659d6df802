"""The state of a stack of N models of one architecture (``trainer.sources_together=N``): their
parameters as stacked tensors with one ``vmap``-ed forward (:class:`StackedModels`), one model's view
of them for checkpoints (:class:`ModelSlot`) and the optimizer that steps each model's rows on its own
(:class:`StackedAdamW`).

Why a module of its own: this is what a stack *is* (tensors, forward, update), independent of the
schedule that drives it. The training and prediction loops that feed the stack batches, learning
rates and evaluations are in ``xlexp.engine.stacked``, which imports these classes (never the reverse).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from xlexp.config.schema import OptimizerSettings
from xlexp.engine.stack_ops import ATTENTION, StackedDropout, register_attention


# -- the stacked models -------------------------------------------------------------------------
class StackedModels:
    """N models of one architecture as stacked tensors, with one ``vmap``-ed forward.

    ``forward(members, ids, mask)`` runs the models at positions ``members`` (all of them, or a
    subset: their rows of each stacked tensor, with gradients flowing back to them) on (n, B, T)
    inputs, or on shared (B, T) inputs (evaluation: one pass over a split for every member)."""

    def __init__(self, models: Sequence[nn.Module]):
        register_attention()
        self.n = len(models)
        self.base = copy.deepcopy(models[0]).to("meta")
        for module in list(self.base.modules()):
            for child_name, child in list(module.named_children()):
                if type(child) is nn.Dropout:
                    setattr(module, child_name, StackedDropout(child.p))
        for module in self.base.modules():
            config = getattr(module, "config", None)
            if config is not None and hasattr(config, "_attn_implementation"):
                config._attn_implementation = ATTENTION
        trainable = {n for n, p in models[0].named_parameters() if p.requires_grad}
        params, buffers = torch.func.stack_module_state(list(models))
        self.params = {k: v.detach().requires_grad_(k in trainable) for k, v in params.items()}
        self.buffers = buffers
        self.trainable = [k for k in self.params if k in trainable]
        self.training = True

    def train(self, mode: bool = True) -> None:
        # the flag only: HF's ``train()`` may re-"kernelize" the module tree, which a meta copy cannot
        for module in self.base.modules():
            module.training = mode
        self.training = mode

    def eval(self) -> None:
        self.train(False)

    def _state(self, members: list[int]) -> tuple[dict, dict]:
        if members == list(range(self.n)):
            return self.params, self.buffers
        idx = torch.tensor(members, device=next(iter(self.params.values())).device)
        return (
            {k: v.index_select(0, idx) for k, v in self.params.items()},
            {k: v.index_select(0, idx) for k, v in self.buffers.items()},
        )

    def forward(self, members: list[int], ids: torch.Tensor, mask: torch.Tensor, shared: bool = False) -> torch.Tensor:
        params, buffers = self._state(members)
        base = self.base

        def one(p, b, i, m):
            return torch.func.functional_call(base, (p, b), (i, m))

        dims = (0, 0, None, None) if shared else (0, 0, 0, 0)
        return torch.func.vmap(one, in_dims=dims)(params, buffers, ids, mask)

    def slot(self, i: int) -> ModelSlot:
        return ModelSlot(self, i)


class ModelSlot:
    """One model of the stack as far as checkpoints need it (``CheckpointKeeper.observe/load``)."""

    def __init__(self, stack: StackedModels, i: int):
        self.stack, self.i = stack, i

    def named_parameters(self):
        for k, v in self.stack.params.items():
            yield k, v[self.i]

    def state_dict(self) -> dict[str, torch.Tensor]:
        # copies: a view would save the whole stacked storage into each checkpoint file
        items = {**self.stack.params, **self.stack.buffers}
        return {k: v[self.i].detach().clone() for k, v in items.items()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True):
        items = {**self.stack.params, **self.stack.buffers}
        unexpected = [k for k in state if k not in items]
        missing = [k for k in items if k not in state]
        for k, v in state.items():
            if k in items:
                items[k][self.i].copy_(v)
        return missing, unexpected


# -- the optimizer ------------------------------------------------------------------------------
class StackedAdamW:
    """AdamW over stacked parameters, one model at a time: each model's rows (views of the stacked
    tensors) are updated by torch's fused AdamW kernel with that model's learning rate and the usual
    groups (no weight decay on biases and LayerNorm weights), so a model moves exactly as the
    one-at-a-time optimizer (``loop.build_optimizer``: fused AdamW) moves it. A model with learning
    rate 0 is skipped: it has finished and stays exactly as it is."""

    def __init__(self, stack: StackedModels, opt: OptimizerSettings):
        self.stack = stack
        self.names = list(stack.trainable)
        self.b1, self.b2 = (float(b) for b in opt.betas)
        self.eps, self.wd = float(opt.eps), float(opt.weight_decay)
        # no weight decay on biases and LayerNorm weights: a model's tensor has one dimension fewer
        self.groups = [
            ([k for k in self.names if stack.params[k].ndim - 1 >= 2], self.wd),
            ([k for k in self.names if stack.params[k].ndim - 1 < 2], 0.0),
        ]
        self.m = {k: torch.zeros_like(stack.params[k]) for k in self.names}
        self.v = {k: torch.zeros_like(stack.params[k]) for k in self.names}
        device = next(iter(stack.params.values())).device
        self.step_t = [torch.zeros((), dtype=torch.float32, device=device) for _ in range(stack.n)]

    def _grads(self, i: int) -> list[torch.Tensor]:
        return [self.stack.params[k].grad[i] for k in self.names if self.stack.params[k].grad is not None]

    @torch.no_grad()
    def clip(self, max_norm: float) -> None:
        """Each model's gradients scaled as ``clip_grad_norm_`` scales them: by min(1, max_norm /
        (the norm of its gradients' norms + 1e-6))."""
        for i in range(self.stack.n):
            grads = self._grads(i)
            if not grads:
                continue
            total = torch.nn.utils.get_total_norm(grads, 2.0)
            coef = torch.clamp(float(max_norm) / (total + 1e-6), max=1.0)
            torch._foreach_mul_(grads, coef)

    @torch.no_grad()
    def step(self, lrs: list[float]) -> None:
        """One AdamW step of every model whose learning rate (``lrs[i]``) is not 0."""
        for i, lr in enumerate(lrs):
            if lr == 0.0:
                continue
            self.step_t[i] += 1
            for names, wd in self.groups:
                names = [k for k in names if self.stack.params[k].grad is not None]
                if not names:
                    continue
                params = [self.stack.params[k][i] for k in names]
                torch._fused_adamw_(
                    params,
                    [self.stack.params[k].grad[i] for k in names],
                    [self.m[k][i] for k in names],
                    [self.v[k][i] for k in names],
                    [],
                    [self.step_t[i]] * len(names),
                    lr=float(lr),
                    beta1=self.b1,
                    beta2=self.b2,
                    weight_decay=wd,
                    eps=self.eps,
                    amsgrad=False,
                    maximize=False,
                )

    def zero_grad(self) -> None:
        for k in self.names:
            self.stack.params[k].grad = None
