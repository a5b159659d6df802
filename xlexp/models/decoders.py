"""Decoder (GPT-style) and encoder-decoder (seq2seq) models: classifier and tagger heads on a decoder,
the language models that in-context transfer and generation use, and the tiny random models that
make every path testable offline.

Why a module of its own: an autoregressive model differs from an encoder in exactly the places
handled here. Its attention is causal, so only the *last* non-pad token has seen the whole text
(the classifier pools it, wherever the padding sits); many tokenizers have no pad token (Llama 3,
mGPT), so one is set (the eos token: masked out anyway); big checkpoints load in bf16 or, for QLoRA,
4-bit (``xlexp.models.peft_setup``). Everything else (LoRA, freezing, checkpoints, trimming) goes
through the same code as the encoders, because :class:`DecoderClassifier` exposes its backbone as
``.encoder`` like the encoder heads do.

Loading goes through ``xlexp.models.encoders`` (one load path, one offline error message); this
module never imports it (encoders imports this one lazily), so the deterministic vocabulary builder
is passed in by the caller.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xlexp.config.names import temp_path
from xlexp.config.schema import DecoderSettings, LanguageModelSettings, TransformerSettings
from xlexp.errors import XlexpError
from xlexp.models.heads import TokenClassifier
from xlexp.models.weights import load_weights

log = logging.getLogger(__name__)

TINY_LM_VERSION = 2  # 2: decoded text joins punctuation ("It's", not "It ' s")


# -- tokenizer ------------------------------------------------------------------------------------
def prepare_tokenizer(tokenizer, model_cfg: LanguageModelSettings):
    """Pad token and padding side of a decoder or seq2seq tokenizer. A decoder without a pad token
    pads with its eos token (or ``model.pad_token``): padded positions are masked out of attention
    and pooling, so which id fills them does not matter. A seq2seq model keeps its tokenizer's
    padding (``model.pad_token`` and ``model.padding_side`` are decoder keys)."""
    decoder = isinstance(model_cfg, DecoderSettings)
    wanted = model_cfg.pad_token if decoder else None
    if wanted:
        if wanted not in tokenizer.get_vocab():
            raise XlexpError(f"model.pad_token '{wanted}' is not in the tokenizer of model '{model_cfg.name}'")
        tokenizer.pad_token = wanted
    elif tokenizer.pad_token_id is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise XlexpError(
                f"tokenizer of model '{model_cfg.name}' has no pad, eos or unk token; "
                f"set model.pad_token to one of its tokens"
            )
        tokenizer.pad_token = fallback
    if decoder and model_cfg.padding_side:
        tokenizer.padding_side = model_cfg.padding_side
    return tokenizer


# -- heads ------------------------------------------------------------------------------------------
def _last_index(mask: torch.Tensor) -> torch.Tensor:
    """Position of the last attended token of each row, for right or left padding alike."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * mask.long()).argmax(1)


class DecoderClassifier(nn.Module):
    """Decoder backbone + last-token (or mean) pooling + dropout + a float32 linear layer."""

    def __init__(self, backbone: nn.Module, num_labels: int, pooling: str = "last", dropout: float = 0.0):
        super().__init__()
        if pooling not in ("last", "mean"):
            raise XlexpError(f"model.pooling for a decoder must be 'last' or 'mean', got '{pooling}'")
        self.encoder, self.pooling = backbone, pooling  # named .encoder: freezing/LoRA/trimming treat it as one
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(backbone.config.hidden_size, num_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    @property
    def config(self):
        return self.encoder.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "mean":
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        else:
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), _last_index(attention_mask)]
        return self.classifier(self.dropout(pooled.float()))


# -- loading ------------------------------------------------------------------------------------------
def pretrained_kwargs(model_cfg: LanguageModelSettings, offline: bool) -> dict[str, Any]:
    """``from_pretrained`` arguments: safetensors, no remote code, the dtype, and for QLoRA the
    4-bit quantisation (CUDA only)."""
    kwargs: dict[str, Any] = {"local_files_only": offline, "trust_remote_code": False, "use_safetensors": True}
    dtype = model_cfg.dtype
    if dtype == "bf16":
        kwargs["dtype"] = torch.bfloat16
    elif dtype == "fp32" or dtype is None:
        kwargs["dtype"] = torch.float32
    if model_cfg.peft == "qlora":
        from xlexp.models.peft_setup import quantization_kwargs

        kwargs.update(quantization_kwargs(model_cfg))
    return kwargs


def load_classifier(
    model_cfg: DecoderSettings, path: str, num_labels: int, token_level: bool, offline: bool
) -> nn.Module:
    """A decoder as a sequence classifier or tagger (``AutoModel``: the backbone without the LM head)."""
    from transformers import AutoModel

    if model_cfg.family == "seq2seq":
        raise XlexpError(
            f"model '{model_cfg.name}' is a seq2seq model: it runs generation tasks (type: generation); "
            f"for classification and tagging use an encoder or a decoder (e.g. model=tiny_random_decoder)"
        )
    backbone = AutoModel.from_pretrained(path, **pretrained_kwargs(model_cfg, offline))
    if model_cfg.dropout is not None:
        log.info("model.dropout is applied to the head only for decoders")
    dropout = float(model_cfg.dropout or 0.0)
    if model_cfg.checkpoint:
        _load_checkpoint(backbone, model_cfg)
    if token_level:
        return TokenClassifier(backbone, num_labels, dropout)  # a head on every position, as for encoders
    return DecoderClassifier(backbone, num_labels, model_cfg.pooling, dropout)


def load_lm(model_cfg: TransformerSettings, path: str, offline: bool) -> nn.Module:
    """The whole language model with its head: ``AutoModelForCausalLM`` for a decoder,
    ``AutoModelForSeq2SeqLM`` for a seq2seq model (in-context transfer, generation)."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if model_cfg.family not in ("decoder", "seq2seq"):
        raise XlexpError(
            f"model '{model_cfg.name}' is an {model_cfg.family}: in-context transfer and generation "
            f"need a decoder or seq2seq model (e.g. model=tiny_random_decoder, model=qwen2_5_0_5b)"
        )
    auto = AutoModelForSeq2SeqLM if model_cfg.family == "seq2seq" else AutoModelForCausalLM
    model = auto.from_pretrained(path, **pretrained_kwargs(model_cfg, offline))
    if model_cfg.checkpoint:
        _load_checkpoint(model, model_cfg)
    return model


def _load_checkpoint(model: nn.Module, model_cfg: TransformerSettings) -> None:
    checkpoint = model_cfg.checkpoint
    if not Path(checkpoint).is_file():
        raise XlexpError(f"model.checkpoint {checkpoint} is not a file (expected a .pt state dict saved by xlexp)")
    state = load_weights(checkpoint, "model.checkpoint")
    inner = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    missing, unexpected = model.load_state_dict(inner or state, strict=False)
    if unexpected or len(missing) == len(model.state_dict()):
        raise XlexpError(
            f"model.checkpoint {checkpoint} does not match model '{model_cfg.name}' "
            f"({len(unexpected)} unexpected, {len(missing)} missing weights)"
        )


# -- tiny random decoder and seq2seq models ------------------------------------------------------------
VocabBuilder = Callable[..., dict[str, int]]


def build_tiny_random_lm(
    model_cfg: LanguageModelSettings, texts: list[str], cache_dir: Path, seed: int, vocab_builder: VocabBuilder
) -> Path:
    """A small random Llama-style decoder (``family: decoder``) or T5-style seq2seq model
    (``family: seq2seq``) with a WordPiece tokenizer chosen deterministically from ``texts``
    (``vocab_builder`` is the encoders' ``wordpiece_vocab``); cached by content hash, so the same
    text and seed give the same model in every process.

    The decoder's tokenizer is Llama-like: ``<s>`` first, no pad token (so the pad-token path is
    exercised), case kept; the seq2seq one is T5-like: ``</s>`` last, ``<pad>`` = decoder start."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    family = model_cfg.family
    arch = model_cfg.arch if isinstance(model_cfg, DecoderSettings) else "t5"
    dims = {
        k: int(getattr(model_cfg, k))
        for k in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size")
    }
    key = [family, arch, dims, seed, sorted(texts), TINY_LM_VERSION]
    digest = hashlib.sha1(json.dumps(key, ensure_ascii=False).encode()).hexdigest()[:16]
    out = Path(cache_dir) / "models" / f"tiny_random_{family}-{digest}"
    if (out / "model.safetensors").exists():
        return out

    specials = ["<unk>", "<s>", "</s>"] if family == "decoder" else ["<pad>", "</s>", "<unk>"]
    normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    vocab = vocab_builder(texts, dims["vocab_size"], specials, normalizer, pre_tokenizer)
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="<unk>"))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    ids = {s: tok.token_to_id(s) for s in specials}
    if family == "decoder":
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", ids["<s>"])]
        )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            unk_token="<unk>",
            bos_token="<s>",
            eos_token="</s>",
            model_max_length=512,
            clean_up_tokenization_spaces=True,
        )
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", ids["</s>"])]
        )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            unk_token="<unk>",
            eos_token="</s>",
            pad_token="<pad>",
            model_max_length=512,
            clean_up_tokenization_spaces=True,
        )
    torch.manual_seed(seed)
    model = _tiny_model(family, arch, dims, tok.get_vocab_size(), ids)
    tmp = temp_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    fast.save_pretrained(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    try:
        os.replace(tmp, out)
    except OSError:  # another worker built the same folder first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _tiny_model(family: str, arch: str, dims: dict[str, int], vocab_size: int, ids: dict[str, int]) -> nn.Module:
    if family == "seq2seq":
        from transformers import T5Config, T5ForConditionalGeneration

        config = T5Config(
            vocab_size=vocab_size,
            d_model=dims["hidden_size"],
            d_ff=dims["intermediate_size"],
            num_layers=dims["num_layers"],
            num_decoder_layers=dims["num_layers"],
            num_heads=dims["num_heads"],
            d_kv=dims["hidden_size"] // dims["num_heads"],
            dropout_rate=0.0,
            pad_token_id=ids["<pad>"],
            eos_token_id=ids["</s>"],
            decoder_start_token_id=ids["<pad>"],
            tie_word_embeddings=True,
        )
        return T5ForConditionalGeneration(config)
    common = dict(
        vocab_size=vocab_size,
        hidden_size=dims["hidden_size"],
        intermediate_size=dims["intermediate_size"],
        num_hidden_layers=dims["num_layers"],
        num_attention_heads=dims["num_heads"],
        num_key_value_heads=dims["num_heads"],
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
    )
    # Llama, not Qwen2: transformers 5 loads any qwen2 checkpoint's tokenizer as its own byte-level BPE
    # class (qwen2 is in MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS), which would discard our WordPiece one.
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(**common))
