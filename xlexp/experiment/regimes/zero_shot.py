"""Zero-shot transfer: train once per source on its train split, test every target under the three
checkpoint rules (source_dev, the XTREME protocol and the default view; target_dev, the oracle;
last). Config: ``xlexp/conf/regime/zero_shot.yaml``."""

from __future__ import annotations

from xlexp.config.schema import RegimeSettings
from xlexp.experiment.context import RunContext, UnitOutput
from xlexp.experiment.plan import TrainingUnit
from xlexp.experiment.regimes import Regime, register
from xlexp.experiment.transfer import train_unit


@register
class ZeroShot(Regime):
    name = "zero_shot"
    together = True

    def units(self, settings: RegimeSettings, sources, targets, watch, seeds) -> list[TrainingUnit]:
        return [TrainingUnit(s, (s,), (s,), targets, watch, seed) for seed in seeds for s in sources]

    def run_unit(self, ctx: RunContext, unit: TrainingUnit, index: int, out: UnitOutput) -> None:
        train_unit(ctx, unit, index, ctx.build_classifier(), out)
