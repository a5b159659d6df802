"""In-language fine-tuning: each target trains on its own train split, selects on its own dev split
and is tested on its test split (the matrix diagonal; the upper bound for transfer).
``langpair.sources`` is ignored. Config: ``xlexp/conf/regime/full.yaml``."""

from __future__ import annotations

from xlexp.config.schema import RegimeSettings
from xlexp.experiment.context import RunContext, UnitOutput
from xlexp.experiment.plan import TrainingUnit
from xlexp.experiment.regimes import Regime, register
from xlexp.experiment.transfer import train_unit


@register
class Full(Regime):
    name = "full"
    task_types = (
        "sentence_classification",
        "pair_classification",
        "token_classification",
        "extractive_qa",
        "generation",
    )
    together = True
    takes_sources = False

    def units(self, settings: RegimeSettings, sources, targets, watch, seeds) -> list[TrainingUnit]:
        return [TrainingUnit(t, (t,), (t,), (t,), (t,) if t in watch else (), seed) for seed in seeds for t in targets]

    def run_unit(self, ctx: RunContext, unit: TrainingUnit, index: int, out: UnitOutput) -> None:
        train_unit(ctx, unit, index, ctx.build_classifier(), out)
