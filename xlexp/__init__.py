"""xlexp: an experiment harness for cross-lingual transfer learning.

The public API, for notebooks, scripts, benchmarks and tests (docs/api.md)::

    import xlexp
    records = xlexp.run(["+experiment=quickstart"])      # train and evaluate; the experiment's records
    m = xlexp.matrix(xlexp.load_records("results"))       # sources x targets: m.mean, m.std, m.n

Everything else lives in the stage packages (``xlexp.experiment``, ``xlexp.results``, ...), whose
names may change between versions. The names below are imported on first use (PEP 562), so
``import xlexp`` stays cheap: no torch, pandas or Hydra until a name is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute): one name per concept, re-exported from where it lives
_LAZY = {
    "XlexpError": ("xlexp.errors", "XlexpError"),
    "compose": ("xlexp.config.compose", "compose_config"),
    "run_experiment": ("xlexp.experiment.runner", "run_experiment"),
    "RunHooks": ("xlexp.experiment.context", "RunHooks"),
    "load_records": ("xlexp.results.store", "load_records"),
    "load_predictions": ("xlexp.results.store", "load_predictions"),
    "Matrix": ("xlexp.results.query", "Matrix"),
    "matrix": ("xlexp.results.query", "pivot"),
    "load_task": ("xlexp.tasks.spec", "load_task"),
    "TaskSpec": ("xlexp.tasks.spec", "TaskSpec"),
}

__all__ = [
    "__version__",
    "run",
    "XlexpError",
    "compose",
    "run_experiment",
    "RunHooks",
    "load_records",
    "load_predictions",
    "Matrix",
    "matrix",
    "load_task",
    "TaskSpec",
]  # = "run" + _LAZY (tested)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on first use
    import pandas as pd
    from omegaconf import DictConfig

    from xlexp.config.compose import compose_config as compose
    from xlexp.errors import XlexpError
    from xlexp.experiment.context import RunHooks
    from xlexp.experiment.runner import run_experiment
    from xlexp.results.query import Matrix
    from xlexp.results.query import pivot as matrix
    from xlexp.results.store import load_predictions, load_records
    from xlexp.tasks.spec import TaskSpec, load_task


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'xlexp' has no attribute '{name}'") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # once: later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def run(overrides: list[str] | tuple[str, ...] | DictConfig, hooks: RunHooks | None = None) -> pd.DataFrame:
    """Compose a config from Hydra ``overrides`` (as typed after ``xlexp run``; or take a composed
    config), run the experiment, and return its records as the views see them: the newest record of
    each replicate of that experiment in the results folder, so units resumed from an earlier run are
    in it too. For the run's objective (the number a sweep optimises) call ``run_experiment``."""
    from omegaconf import DictConfig

    from xlexp.config.compose import compose_config
    from xlexp.experiment.runner import resolve_settings, run_experiment
    from xlexp.results.query import experiment_records, latest
    from xlexp.results.store import load_records

    cfg = overrides if isinstance(overrides, DictConfig) else compose_config(list(overrides))
    settings = resolve_settings(cfg)  # the experiment's recorded name (``name``, plus e.g. ``+lora-r8``)
    run_experiment(cfg, hooks)
    records = load_records(hooks.records_dir if hooks is not None and hooks.records_dir else settings.paths.results_dir)
    return latest(experiment_records(records, settings.experiment)).reset_index(drop=True)
