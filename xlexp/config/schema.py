"""Typed settings: the composed Hydra config, resolved once at the top into frozen dataclasses.

Why: the stages below the experiment runner (engine/, data/, models/, tracking/) should read
``settings.data.batch_size``, not ``cfg.data.get("batch_size", 16)`` with a default that may disagree
with the YAML's. Every default lives here, once; every check lives here too and fails before any work
with one line naming the key and the fix. The YAML tree (``xlexp/conf``) stays the user's interface:
these classes only say what its keys mean.

A key that is not a field of its group's class is an error (``+model.peeft=lora`` is a typo, not a
setting). The pieces live beside this module: the checks and :func:`build` in ``xlexp.config.checks``,
the model families in ``xlexp.config.model_settings`` (re-exported here, the one import for callers).
Regimes bring their own settings class (``RegimeSettings`` subclasses, one per regime module in
``xlexp.experiment.regimes``), so adding a regime never edits this file; the experiment layer passes
the class to :func:`resolve`, and the task parser too (tasks are a layer above this one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from xlexp.config.checks import build, fraction, one_of, positive_int
from xlexp.config.model_settings import (
    DECODER_PEFT_METHODS,
    FREEZE_OPTIONS,
    MODEL_FAMILIES,
    MODEL_SOURCES,
    PEFT_METHODS,
    ClassicalSettings,
    DecoderSettings,
    EmbeddingSettings,
    EncoderSettings,
    LanguageModelSettings,
    LoraSettings,
    ModelSettings,
    Seq2SeqSettings,
    TransformerSettings,
    model_settings,
)
from xlexp.errors import XlexpError

__all__ = [  # the model families and checks are re-exported: callers import settings from this one module
    "DECODER_PEFT_METHODS",
    "FREEZE_OPTIONS",
    "MODEL_FAMILIES",
    "MODEL_SOURCES",
    "PEFT_METHODS",
    "ClassicalSettings",
    "DecoderSettings",
    "EmbeddingSettings",
    "EncoderSettings",
    "LanguageModelSettings",
    "LoraSettings",
    "ModelSettings",
    "Seq2SeqSettings",
    "TransformerSettings",
    "model_settings",
    "build",
    "fraction",
    "one_of",
    "positive_int",
    "compile_setting",
    "DataSettings",
    "TrainerSettings",
    "OptimizerSettings",
    "RegimeSettings",
    "LangPairSettings",
    "PathSettings",
    "TrackerSettings",
    "TaskSettings",
    "Settings",
    "resolve",
    "COMPILE_MODES",
    "STEP_GRAPH",
    "PRECISIONS",
    "DATA_SOURCES",
    "SAMPLING",
    "CLASS_BALANCE",
    "OPTIMIZERS",
    "TRACKERS",
    "SELECTION_RULES",
    "NO_SELECTION",
]

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# xlexp's own: forward, backward, clipping and AdamW recorded as one CUDA graph per batch shape (engine/graphed.py)
STEP_GRAPH = "step-graph"
PRECISIONS = ("auto", "fp32", "bf16")
DATA_SOURCES = ("auto", "local", "hub")
SAMPLING = ("uniform", "balanced")
CLASS_BALANCE = ("balanced",)
OPTIMIZERS = ("adamw", "sgd", "adafactor")
TRACKERS = ("none", "wandb")
SELECTION_RULES = ("source_dev", "target_dev", "last")
# the rule of cells that had no checkpoint to choose (in-context prompting): never one of the three above
NO_SELECTION = "none"


# -- the trainer's compile key
def compile_setting(value: Any) -> bool | str:
    """``trainer.compile``: false, true (default mode, dynamic shapes) or a torch.compile mode name."""
    if value in (None, False, "false", "False"):
        return False
    if value in (True, "true", "True"):
        return True
    if value in COMPILE_MODES or value == STEP_GRAPH:
        return value
    raise XlexpError(
        f"trainer.compile must be true, false, {STEP_GRAPH} (the whole step as CUDA graphs) or a "
        f"torch.compile mode ({', '.join(COMPILE_MODES)}); "
        f"got {value!r}"
    )


# -- the groups ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSettings:
    batch_size: int = 16
    eval_batch_size: int = 64
    max_length: int = 128
    group_by_length: bool = True  # length-grouped training batches: less padding, same randomness
    max_train_examples: int | None = None  # subsample the train split (seeded)
    max_eval_examples: int | None = None  # subsample dev/test splits (recorded in n_examples)
    source: str = "auto"  # auto (local files if present, else the hub) | local | hub
    sampling: str = "uniform"  # uniform | balanced: draw training examples with 1 / class count

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
    eval_every: int | None = None  # steps between dev evaluations; None = once per epoch
    precision: str = "auto"  # auto = bf16 on CUDA and on CPUs with bf16 units, else fp32
    grad_accum_steps: int = 1
    compile: bool | str = False  # torch.compile: true, or a mode (reduce-overhead = CUDA graphs); step-graph
    device: str = "auto"
    num_threads: int | None = None
    progress: bool | str = "auto"  # rich progress bars: auto (only on a TTY) | true | false
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
    betas: tuple[float, float] = (0.9, 0.999)  # adamw
    eps: float = 1e-8  # adamw
    momentum: float = 0.0  # sgd
    warmup_ratio: float = 0.0  # linear warmup over this fraction of steps, then linear decay to 0
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # max grad norm; None disables clipping
    class_weights: str | None = (
        None  # None | balanced: cross-entropy weights n / (classes x count) from the train split
    )

    def __post_init__(self) -> None:
        one_of("optimizer.name", self.name, OPTIMIZERS)
        if (
            not isinstance(self.lr, (int, float))
            or isinstance(self.lr, bool)
            or not math.isfinite(self.lr)
            or self.lr <= 0
        ):
            raise XlexpError(f"optimizer.lr must be a positive finite number, got {self.lr!r}")
        for key in ("weight_decay", "eps", "momentum", *(("grad_clip",) if self.grad_clip is not None else ())):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise XlexpError(f"optimizer.{key} must be a finite number >= 0, got {value!r}")
        if self.grad_clip is not None and self.grad_clip == 0:
            raise XlexpError("optimizer.grad_clip must be positive (or null: no clipping), got 0")
        if len(self.betas) != 2 or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in self.betas
        ):
            raise XlexpError(
                f"optimizer.betas must be two numbers in [0, 1), e.g. [0.9,0.999]; got {list(self.betas)!r}"
            )
        fraction("optimizer.warmup_ratio", self.warmup_ratio)
        fraction("optimizer.label_smoothing", self.label_smoothing)
        if self.class_weights is not None:
            one_of("optimizer.class_weights", self.class_weights, CLASS_BALANCE)


@dataclass(frozen=True)
class RegimeSettings:
    """What every regime has; a regime module subclasses it with its own fields."""

    name: str
    selection: str = "source_dev"  # the rule matrices show by default
    seeds: tuple[int, ...] | None = None  # None = (seed,)
    dev_targets: Any = "auto"  # auto (all, up to 25) | all | none | a list of targets
    # target dev examples per evaluation, at most this multiple of the training examples between two
    # evaluations (each watched target gets a seeded subsample of its dev split); None = full dev sets
    target_dev_budget: float | None = 1.0
    target_dev_min: int = 50  # but never fewer than this per target (or its whole dev split)

    def __post_init__(self) -> None:
        one_of("regime.selection", self.selection, SELECTION_RULES)
        budget = self.target_dev_budget
        if budget is not None and (not isinstance(budget, (int, float)) or isinstance(budget, bool) or budget <= 0):
            raise XlexpError(
                f"regime.target_dev_budget must be a positive number or null (full dev sets); got {budget!r}"
            )
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
    sources: Any = None  # a list of task language codes, a comma string, or 'all'
    targets: Any = None
    # active filling: train only this many of ``sources`` (an int, or a share such as "30%"), chosen
    # one at a time by how much they help predict the others, then predict the rest (xlexp.fill)
    budget: Any = None

    def __post_init__(self) -> None:
        b = self.budget
        ok = (
            b is None
            or (isinstance(b, int) and not isinstance(b, bool) and b > 0)
            or (isinstance(b, str) and b.endswith("%") and _percent(b[:-1]) is not None)
        )
        if not ok:
            raise XlexpError(
                f"langpair.budget must be a positive number of sources or a share like 30%, or null "
                f"(train every source); got {b!r}"
            )

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


class TaskSettings(Protocol):
    """What the settings layer knows of a task: ``xlexp.tasks.spec.TaskSpec``, parsed once by
    :func:`resolve` with the parser the experiment layer passes in (tasks sit a layer above config, so
    this module names the spec's shape, not its class)."""

    name: str
    type: str
    metrics: tuple[str, ...]
    primary_metric: str


@dataclass(frozen=True)
class Settings:
    """One run's settings. ``task`` is the task file parsed once into its typed spec (a
    ``xlexp.tasks.spec.TaskSpec``); ``resolved`` is the whole resolved config, for the record's config
    hash and the tracker's run config."""

    name: str
    seed: int
    model: ModelSettings
    task: TaskSettings
    langpair: LangPairSettings
    regime: RegimeSettings
    optimizer: OptimizerSettings
    data: DataSettings
    trainer: TrainerSettings
    paths: PathSettings
    tracker: TrackerSettings
    resolved: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    rerun: bool = False  # train units again even when their complete records are in the store

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


REQUIRED_GROUPS = ("model", "task", "langpair", "regime", "optimizer", "tracker", "data", "trainer", "paths")


def resolve(
    raw: Mapping[str, Any],
    regime_class: Callable[[str], type[RegimeSettings]],
    task_spec: Callable[[Mapping[str, Any]], TaskSettings],
) -> Settings:
    """Plain resolved config (``OmegaConf.to_container(cfg, resolve=True)``) -> Settings, or one
    XlexpError naming the first bad key. ``regime_class(name)`` gives the regime's settings class
    (and raises for an unknown regime); ``task_spec`` parses the task group (``TaskSpec.from_config``),
    last, after every other group has been checked."""
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
        raise XlexpError(
            "regime.name is not set; pick a regime with regime=zero_shot (or few_shot, multi_source, full)"
        )
    tracker_raw = dict(raw["tracker"])
    rerun = raw.get("rerun", False)
    if not isinstance(rerun, bool):
        raise XlexpError(f"rerun must be true or false, got {rerun!r}")
    groups = dict(
        model=model_settings(model_raw),
        langpair=build(LangPairSettings, raw["langpair"], "langpair"),
        regime=build(regime_class(str(regime_raw["name"])), regime_raw, "regime"),
        optimizer=build(OptimizerSettings, raw["optimizer"], "optimizer"),
        data=build(DataSettings, raw["data"], "data"),
        trainer=build(TrainerSettings, raw["trainer"], "trainer"),
        paths=build(PathSettings, raw["paths"], "paths"),
        tracker=TrackerSettings(name=str(tracker_raw.pop("name", "none")), options=tracker_raw),
    )
    model, data = groups["model"], groups["data"]
    if model.max_length is not None and data.max_length > model.max_length:
        raise XlexpError(
            f"data.max_length={data.max_length} exceeds model '{model.name}''s limit "
            f"model.max_length={model.max_length}; use data.max_length<={model.max_length}"
        )
    return Settings(
        name=str(raw.get("name")), seed=seed, task=task_spec(raw["task"]), resolved=raw, rerun=rerun, **groups
    )
