"""Regimes as registered units: each module in this folder defines one :class:`Regime` subclass
(decorated with :func:`register`) and, if it has options, its ``RegimeSettings`` subclass; its YAML
lives in ``xlexp/conf/regime/NAME.yaml``. Modules here are found by scanning the folder, so adding a
regime is one new module plus one YAML file, with no edit anywhere else.

A regime answers three questions: which training units a plan has (``units``), which extra splits
they need (``needs``), and how one unit turns into records (``run_unit``). Shared pieces (training a
model on a unit and testing it under every selection rule) live in ``xlexp.experiment.transfer``.

May import: experiment.context/plan/transfer and everything below experiment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from xlexp.config.registry import Registry
from xlexp.config.schema import RegimeSettings
from xlexp.experiment.plan import TrainingUnit

if TYPE_CHECKING:
    from xlexp.experiment.context import RunContext, UnitOutput


class Regime:
    """One way of turning (sources, targets, seeds) into trained models and test cells."""

    name: ClassVar[str]
    settings_class: ClassVar[type[RegimeSettings]] = RegimeSettings
    classical: ClassVar[bool] = True   # whether a fitted scikit-learn model (model.family=classical) can run it
    takes_sources: ClassVar[bool] = True   # False: langpair.sources is ignored (full fine-tuning)
    # whether trainer.sources_together may train several units in one stack: each unit is exactly one
    # xlexp.experiment.transfer.train_unit (few-shot goes on to train per target, so it says False)
    together: ClassVar[bool] = False

    def units(self, settings: RegimeSettings, sources: tuple[str, ...] | None, targets: tuple[str, ...],
              watch: tuple[str, ...], seeds: tuple[int, ...]) -> list[TrainingUnit]:
        """The plan's training units. ``sources`` is None when the regime does not take sources (``takes_sources``)."""
        raise NotImplementedError

    def needs(self, unit: TrainingUnit, settings: RegimeSettings) -> dict[tuple[str, str], str]:
        """Splits beyond train (train languages), dev (selection languages) and test (targets) that the
        unit reads, as ``{(language, split): why}``."""
        return {}

    def run_unit(self, ctx: "RunContext", unit: TrainingUnit, index: int, out: "UnitOutput") -> None:
        raise NotImplementedError

    def run_units_together(self, ctx: "RunContext", units: list[TrainingUnit], indices: list[int],
                           outs: list["UnitOutput"]) -> None:
        """Several units in one stacked pass (``trainer.sources_together``), each into its own output."""
        from xlexp.experiment.together import train_units

        train_units(ctx, units, indices, outs)


REGISTRY: Registry[Regime] = Registry("regime", __name__, __path__)
register = REGISTRY.register      # class decorator: make ``cls`` available as ``regime=<cls.name>``
available = REGISTRY.names
get = REGISTRY.get


def settings_class(name: str) -> type[RegimeSettings]:
    return get(name).settings_class
