"""Multi-source transfer: one model trained on the union of the sources (the matrix row is named by
the source set, ``eng+ind+jav``), checkpoints selected on the mean source dev score. Sampling: the
plain union (proportional), each source equally (uniform), or p(lang) ~ n_lang^(1/T) (temperature).
Config: ``xlexp/conf/regime/multi_source.yaml``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from xlexp.config.schema import RegimeSettings
from xlexp.errors import XlexpError
from xlexp.experiment.context import RunContext, UnitOutput
from xlexp.experiment.plan import TrainingUnit
from xlexp.experiment.regimes import Regime, register
from xlexp.experiment.transfer import train_unit

log = logging.getLogger(__name__)
SAMPLING = ("proportional", "uniform", "temperature")


@dataclass(frozen=True)
class MultiSourceSettings(RegimeSettings):
    sampling: str = "proportional"  # proportional | uniform | temperature
    temperature: float = 5.0  # sampling=temperature: p(lang) ~ n_lang^(1/T)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sampling not in SAMPLING:
            raise XlexpError(f"regime.sampling must be proportional, uniform or temperature; got '{self.sampling}'")
        if not isinstance(self.temperature, (int, float)) or self.temperature <= 0:
            raise XlexpError(f"regime.temperature must be > 0, got {self.temperature}")


def sampling_weights(sizes: list[int], mode: str, temperature: float) -> np.ndarray | None:
    """Per-example probabilities for multi-source training: language l gets p_l ~ n_l^(1/T)."""
    if mode == "proportional":
        return None
    if mode == "uniform":
        lang_p = np.ones(len(sizes))
    elif mode == "temperature":
        if temperature <= 0:
            raise XlexpError(f"regime.temperature must be > 0, got {temperature}")
        lang_p = np.asarray(sizes, dtype=float) ** (1.0 / temperature)
    else:
        raise XlexpError(f"regime.sampling must be proportional, uniform or temperature; got '{mode}'")
    lang_p /= lang_p.sum()
    return np.concatenate([np.full(n, p / n) for n, p in zip(sizes, lang_p)])


@register
class MultiSource(Regime):
    name = "multi_source"
    task_types = (
        "sentence_classification",
        "pair_classification",
        "token_classification",
        "extractive_qa",
        "generation",
    )
    settings_class = MultiSourceSettings
    together = True  # units differ by seed: several seeds train in one stack

    def units(self, settings: MultiSourceSettings, sources, targets, watch, seeds) -> list[TrainingUnit]:
        if len(sources) < 2:
            raise XlexpError(f"regime multi_source needs at least two sources, got {list(sources)}")
        return [TrainingUnit("+".join(sources), sources, sources, targets, watch, seed) for seed in seeds]

    def run_unit(self, ctx: RunContext, unit: TrainingUnit, index: int, out: UnitOutput) -> None:
        s: MultiSourceSettings = ctx.settings.regime
        train_unit(
            ctx,
            unit,
            index,
            ctx.build_classifier(),
            out,
            weights=lambda sizes: sampling_weights(sizes, s.sampling, float(s.temperature)),
        )

    def run_units_together(self, ctx: RunContext, units, indices, outs) -> None:
        from xlexp.experiment.together import train_units

        s: MultiSourceSettings = ctx.settings.regime
        train_units(
            ctx, units, indices, outs, weights=lambda sizes: sampling_weights(sizes, s.sampling, float(s.temperature))
        )
