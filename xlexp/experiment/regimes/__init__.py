"""Regimes as registered units: each module in this folder defines one :class:`Regime` subclass
(decorated with :func:`register`) and, if it has options, its ``RegimeSettings`` subclass; its YAML
lives in ``xlexp/conf/regime/NAME.yaml``. Modules here are found by scanning the folder, so adding a
regime is one new module plus one YAML file, with no edit anywhere else.

A regime answers three questions: which training units a plan has (``units``), which extra splits
they need (``needs``), and how one unit turns into records (``run_unit``). Shared pieces (training a
model on a unit and testing it under every selection rule) live in ``xlexp.experiment.transfer``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from xlexp.config.registry import Registry
from xlexp.config.schema import RegimeSettings
from xlexp.experiment.plan import TrainingUnit

if TYPE_CHECKING:
    from xlexp.config.schema import Settings
    from xlexp.experiment.context import RunContext, UnitOutput
    from xlexp.experiment.plan import Plan
    from xlexp.tasks.spec import TaskSpec


class Regime:
    """One way of turning (sources, targets, seeds) into trained models and test cells."""

    name: ClassVar[str]
    settings_class: ClassVar[type[RegimeSettings]] = RegimeSettings
    classical: ClassVar[bool] = True  # whether a fitted scikit-learn model (model.family=classical) can run it
    takes_sources: ClassVar[bool] = True  # False: langpair.sources is ignored (full fine-tuning)
    trains: ClassVar[bool] = True  # False: no model is trained (in-context prompting scores a frozen model)
    # The task types (``xlexp.tasks.types``) the regime really implements, and the model families it runs;
    # None: every one. Checked when the settings are resolved (``check_compatible``), before any data is
    # read: a pair the regime cannot honour is refused in one line instead of running under its label.
    task_types: ClassVar[tuple[str, ...] | None] = None
    families: ClassVar[tuple[str, ...] | None] = None
    # whether trainer.sources_together may train several units in one stack: each unit is exactly one
    # xlexp.experiment.transfer.train_unit (few-shot goes on to train per target, so it says False)
    together: ClassVar[bool] = False
    tokenizes: ClassVar[bool] = True  # False: the runner validates the rows without tokenizing them (the probe)
    # True: ``run_unit`` carries every task kind the regime declares to records itself (a frozen model:
    # the probe mines bitext on retrieval tasks, in-context prompting decodes generation tasks); False:
    # a kind with a unit executor of its own (``TaskKind.executor``: retrieval, generation) runs the
    # regime's units there (``xlexp.experiment.executors``)
    own_executor: ClassVar[bool] = False

    @classmethod
    def refusal(cls, task_type: str) -> str | None:
        """The regime's own one line for a task type it does not run (None: the generic line, which
        names the regimes that do)."""
        return None

    def units(
        self,
        settings: RegimeSettings,
        sources: tuple[str, ...] | None,
        targets: tuple[str, ...],
        watch: tuple[str, ...],
        seeds: tuple[int, ...],
    ) -> list[TrainingUnit]:
        """The plan's training units. ``sources`` is None when the regime does not take sources (``takes_sources``)."""
        raise NotImplementedError

    def needs(self, unit: TrainingUnit, settings: RegimeSettings) -> dict[tuple[str, str], str]:
        """Splits beyond train (train languages), dev (selection languages) and test (targets) that the
        unit reads, as ``{(language, split): why}``."""
        return {}

    def check(self, settings: Settings, spec: TaskSpec) -> None:
        """The regime's own checks of the task and model, before the data is looked at (one line each)."""

    def preflight(self, settings: Settings, spec: TaskSpec, plan: Plan) -> None:
        """The regime's own checks of the plan's data, before any model is loaded."""

    def run_unit(self, ctx: RunContext, unit: TrainingUnit, index: int, out: UnitOutput) -> None:
        raise NotImplementedError

    def run_units_together(
        self, ctx: RunContext, units: list[TrainingUnit], indices: list[int], outs: list[UnitOutput]
    ) -> None:
        """Several units in one stacked pass (``trainer.sources_together``), each into its own output."""
        from xlexp.experiment.together import train_units

        train_units(ctx, units, indices, outs)


REGISTRY: Registry[Regime] = Registry("regime", __name__, __path__)
register = REGISTRY.register  # class decorator: make ``cls`` available as ``regime=<cls.name>``
available = REGISTRY.names
get = REGISTRY.get


def settings_class(name: str) -> type[RegimeSettings]:
    return get(name).settings_class


def check_compatible(regime_name: str, task_name: str, task_type: str | None, family: str) -> None:
    """One line (exit 2) when ``regime_name`` does not implement tasks of ``task_type`` or models of
    ``family``, naming the regimes that do. Every record's regime label is then one that happened."""
    from xlexp.errors import XlexpError

    regime = get(regime_name)
    if regime.task_types is not None and task_type not in regime.task_types:
        able = [n for n in available() if get(n).task_types is None or task_type in get(n).task_types]
        own = regime.refusal(task_type)  # a regime's own words, if it has them
        if own:
            raise XlexpError(f"regime {regime_name} does not run {task_type} tasks: {own}")
        raise XlexpError(
            f"regime {regime_name} does not run {task_type} tasks (task '{task_name}'); it runs "
            f"{', '.join(regime.task_types)}. Regimes for {task_type}: {', '.join(able)}"
        )
    if regime.families is not None and family not in regime.families:
        raise XlexpError(
            f"regime {regime_name} needs a {' or '.join(regime.families)} model (model.family); "
            f"this model is {family}"
            + (" (e.g. model=tiny_random_decoder or model=qwen2_5_0_5b)" if "decoder" in regime.families else "")
        )
