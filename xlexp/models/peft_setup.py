"""LoRA targets from the architecture, and QLoRA's 4-bit loading (bitsandbytes, CUDA only).

``model.lora.target_modules: [auto]`` names the attention and MLP projections of the model's
architecture (``config.model_type``), so one decoder YAML serves Qwen2, Llama, Gemma, BLOOM and GPT-2
style models (mGPT) without the user looking up layer names. Known names come from the table
below, then from peft's own table; an unknown architecture is one line naming its linear layers.

``model.peft=qlora`` loads the frozen base weights in 4-bit NF4 with bf16 compute
(``BitsAndBytesConfig``), prepares the model for k-bit training and adds LoRA adapters on top.
bitsandbytes is imported lazily and only for QLoRA: it is a CUDA library, absent on CPU machines.
"""

from __future__ import annotations

from torch import nn

from xlexp.config.schema import LanguageModelSettings
from xlexp.errors import XlexpError

# attention projections first: LoRA's usual choice; the MLP ones where a paper adapts "all linear"
AUTO_TARGETS: dict[str, tuple[str, ...]] = {
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "gemma": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "gemma2": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "bloom": ("query_key_value", "dense"),
    "gpt2": ("c_attn", "c_proj"),  # mGPT is a GPT-2 architecture
    "t5": ("q", "v"),
    "mt5": ("q", "v"),
    "mbart": ("q_proj", "v_proj"),
    "m2m_100": ("q_proj", "v_proj"),
    "marian": ("q_proj", "v_proj"),
    "bert": ("query", "value"),
    "xlm-roberta": ("query", "value"),
    "deberta-v2": ("query_proj", "value_proj"),
}


def _linear_names(model: nn.Module) -> set[str]:
    names = set()
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear) or type(m).__name__ in ("Conv1D", "Linear4bit", "Linear8bitLt"):
            names.add(n.rsplit(".", 1)[-1])
    return names


def lora_targets(model: nn.Module, configured: tuple[str, ...], model_name: str) -> list[str]:
    """The module names LoRA adapts: ``configured``, with ``auto`` resolved from the architecture."""
    names = _linear_names(model)
    if tuple(configured) == ("auto",):
        model_type = getattr(getattr(model, "config", None), "model_type", "")
        targets = AUTO_TARGETS.get(model_type)
        if targets is None:
            try:
                from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TABLE
            except ImportError:  # pragma: no cover - older peft
                PEFT_TABLE = {}
            targets = tuple(PEFT_TABLE.get(model_type, ()))
        if not targets:
            raise XlexpError(
                f"model.lora.target_modules=auto: no known LoRA targets for architecture '{model_type}' "
                f"of '{model_name}'; name them, e.g. model.lora.target_modules=[...] from its linear "
                f"layers {sorted(names)}"
            )
        configured = targets
    missing = [t for t in configured if t not in names]
    if missing:
        raise XlexpError(
            f"model.lora.target_modules {missing} are not linear layers of '{model_name}'; "
            f"its linear layers are named {sorted(names)}"
        )
    return list(configured)


def quantization_kwargs(model_cfg: LanguageModelSettings) -> dict:
    """``from_pretrained`` arguments for 4-bit NF4 base weights (QLoRA, Dettmers et al. 2023)."""
    import torch

    if not torch.cuda.is_available():
        raise XlexpError(
            f"model.peft=qlora loads '{model_cfg.name}' in 4-bit with bitsandbytes, which needs a CUDA GPU; "
            f"on this machine use model.peft=lora"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise XlexpError(
            f"model.peft=qlora needs the bitsandbytes package ({e}); `pip install bitsandbytes` on the "
            f"CUDA machine, or use model.peft=lora"
        ) from None
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    return {"quantization_config": config, "dtype": torch.bfloat16, "device_map": {"": torch.cuda.current_device()}}


def prepare_kbit(model: nn.Module, gradient_checkpointing: bool) -> nn.Module:
    """peft's preparation of a 4-bit model for training (fp32 norms, input grads for checkpointing)."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=gradient_checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False}
    )
