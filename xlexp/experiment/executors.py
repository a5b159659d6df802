"""Unit executors beside the regimes: who turns one training unit into records when the regime's own
``run_unit`` does not. A model family may have one (``classical``: a fitted scikit-learn model, any
task kind it runs), and a task kind may name one (``TaskKind.executor``: ``retrieval`` encodes and
searches, ``generation`` fine-tunes and decodes) that runs the regime's units unless the regime runs
the kind itself (``Regime.own_executor``: the probe, in-context prompting). The runner asks
:func:`for_unit`; it tests no task type and no model family. :func:`register` adds an executor from
outside the package (a task kind's module can name it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from xlexp.errors import XlexpError
from xlexp.experiment import classical, generation, retrieval

if TYPE_CHECKING:
    from xlexp.config.schema import Settings
    from xlexp.experiment.context import RunContext, UnitOutput
    from xlexp.experiment.kinds import TaskKind
    from xlexp.experiment.plan import TrainingUnit
    from xlexp.experiment.regimes import Regime

UnitExecutor = Callable[["RunContext", "TrainingUnit", int, "UnitOutput"], None]

_EXECUTORS: dict[str, UnitExecutor] = {
    "classical": classical.run_unit,
    "generation": generation.run_unit,
    "retrieval": retrieval.run_unit,
}
_FAMILIES: dict[str, str] = {"classical": "classical"}  # model.family -> the executor that runs all its units


def register(name: str, run_unit: UnitExecutor, family: str | None = None) -> None:
    """Make ``run_unit`` the executor ``name`` (a task kind's ``executor``), and with ``family`` the
    executor of every unit of that model family."""
    _EXECUTORS[name] = run_unit
    if family is not None:
        _FAMILIES[family] = name


def unregister(name: str) -> None:
    _EXECUTORS.pop(name, None)
    for family in [f for f, n in _FAMILIES.items() if n == name]:
        del _FAMILIES[family]


def get(name: str) -> UnitExecutor:
    if name not in _EXECUTORS:
        raise XlexpError(f"unknown unit executor '{name}'; available: {', '.join(sorted(_EXECUTORS))}")
    return _EXECUTORS[name]


def for_unit(settings: Settings, kind: TaskKind, regime: Regime) -> UnitExecutor:
    """The model family's executor, else the task kind's (unless the regime runs the kind itself),
    else the regime's ``run_unit``."""
    if settings.model.family in _FAMILIES:
        return get(_FAMILIES[settings.model.family])
    if kind.executor is not None and not regime.own_executor:
        return get(kind.executor)
    return regime.run_unit
