"""Hydra callbacks of ``xlexp run`` (``hydra.callbacks`` in ``xlexp/conf/config.yaml``).

``PlanMultirun``: before a multirun submits its jobs (``xlexp run hydra/launcher=xlexp_slurm -m
langpair.sources=eng,ind,...``: one SLURM array task per source), list every job's training units
in the unit ledger as *planned*. A job writes its own units when it starts, but on a cluster most
jobs wait in the queue for hours; listed up front, ``xlexp status`` counts them as pending (with an
ETA) and ``xlexp matrix`` marks their cells pending from the first minute. A job already finished
in the store is skipped by the job itself (resume by content), so re-submitting a multirun after a
crash lists and trains only what is missing.

Only Hydra's basic sweeper is expanded (the one ``-m a=1,2`` uses); with another sweeper the jobs
still list their own units when they start. Listing never stops the multirun: a problem is one
warning line, and the jobs report it themselves when they run.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("xlexp")


class PlanMultirun(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            n_jobs, n_units = plan_multirun(config)
        except Exception as e:  # never stop the submission: each job still lists its own units
            log.warning(
                "xlexp: could not list the multirun's units ahead (%s); each job lists its own when it starts",
                str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__,
            )
            return
        if n_jobs:
            log.info(
                "multirun: %d job(s), %d training unit(s) listed as planned (`xlexp status` shows them)",
                n_jobs,
                n_units,
            )


def job_overrides(config: DictConfig) -> list[list[str]]:
    """Each job's task overrides, as Hydra's basic sweeper will expand them ([] for another sweeper)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return []
    parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def plan_multirun(config: DictConfig) -> tuple[int, int]:
    """Compose every job's config as the job will, make its plan and write its units as planned."""
    from xlexp.config.compose import compose_config
    from xlexp.experiment import regimes
    from xlexp.experiment.plan import make_plan
    from xlexp.experiment.resume import unit_keys
    from xlexp.experiment.runner import resolve_settings
    from xlexp.results import units as ledger

    jobs = job_overrides(config)
    n_units = 0
    for job_num, overrides in enumerate(jobs):  # job k is array task k of the SLURM launcher's array job
        s = resolve_settings(compose_config(overrides))
        spec = s.task
        plan = make_plan(
            regimes.get(s.regime.name),
            s.regime,
            s.langpair.sources,
            s.langpair.targets,
            spec,
            s.paths.data_dir,
            s.data.source,
            s.seeds,
        )
        entries = [
            ledger.UnitEntry(s.experiment, k, u.source, u.seed, list(u.targets), job_num=job_num)
            for k, u in zip(unit_keys(s, plan), plan.units)
        ]
        ledger.plan_units(s.paths.results_dir, entries)
        n_units += len(entries)
    return len(jobs), n_units
