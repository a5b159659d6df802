"""How much of the encoder trains: full fine-tuning, LoRA adapters (the ``peft`` library), frozen
embeddings or bottom layers, and gradient checkpointing.

The task head always trains. The short label that records and experiment names carry (``full``,
``lora-r8``, ``freeze-emb+4l``...) is ``TransformerSettings.finetune``; the options are checked there too.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from xlexp.config.schema import TransformerSettings
from xlexp.errors import XlexpError

log = logging.getLogger(__name__)


def prepare(classifier: nn.Module, model_cfg: TransformerSettings) -> nn.Module:
    """Apply freezing, LoRA and gradient checkpointing to ``classifier.encoder`` in place."""
    encoder = classifier.encoder
    if model_cfg.gradient_checkpointing:
        if not getattr(encoder, "supports_gradient_checkpointing", False):
            raise XlexpError(f"model '{model_cfg.name}' does not support gradient checkpointing")
        enable = getattr(encoder, "activation_checkpointing_enable", None)  # transformers >= 5.x name
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if model_cfg.freeze == "embeddings":
        encoder.get_input_embeddings()  # fails early on an encoder without one
        for p in _embeddings_module(encoder).parameters():
            p.requires_grad_(False)
    n_layers = model_cfg.freeze_layers
    if n_layers:
        layers = _layers(encoder)
        if n_layers > len(layers):
            raise XlexpError(f"model.freeze_layers={n_layers} but '{model_cfg.name}' has {len(layers)} layers")
        for layer in layers[:n_layers]:
            for p in layer.parameters():
                p.requires_grad_(False)
    if model_cfg.peft in ("lora", "qlora"):
        classifier.encoder = _lora(encoder, model_cfg)
    return classifier


def _lora(encoder: nn.Module, model_cfg: TransformerSettings) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    from xlexp.models.peft_setup import lora_targets, prepare_kbit

    lora = model_cfg.lora
    targets = lora_targets(encoder, lora.target_modules, model_cfg.name)  # [auto]: from the architecture
    if model_cfg.peft == "qlora":  # 4-bit base weights (loaded so by xlexp.models.decoders)
        encoder = prepare_kbit(encoder, model_cfg.gradient_checkpointing)
    config = LoraConfig(
        r=int(lora.r), lora_alpha=int(lora.alpha), lora_dropout=float(lora.dropout), target_modules=targets, bias="none"
    )
    # frozen base weights: only the adapters (and, outside the encoder, the task head) train
    return get_peft_model(encoder, config)


def _embeddings_module(encoder: nn.Module) -> nn.Module:
    # BERT, XLM-R, DeBERTa: word + position + type embeddings and their LayerNorm
    return getattr(encoder, "embeddings", None) or encoder.get_input_embeddings()


def _layers(encoder: nn.Module) -> nn.ModuleList:
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise XlexpError(f"model.freeze_layers: cannot find the transformer layers of {type(encoder).__name__}")
    return layers


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The entries of ``state_dict`` that training can change: trainable parameters and buffers.
    A LoRA checkpoint is then a few MB instead of the whole encoder. CPU tensors are the live
    weights, not copies: save them at once."""
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if k not in frozen}
