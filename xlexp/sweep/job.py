"""One sweep, as every worker of it sees it: the :class:`SweepJob`, its preflight and its study.

A job is the sweep file plus the command line's overrides, the study name, the storage URL and
the trial budget. :func:`build_job` composes one trial's config before anything runs (a typo
fails here, in one line) and :func:`create_or_check_study` makes sure a resumed study searches the
same space for the same objective.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from omegaconf import DictConfig

from xlexp.config.compose import compose_config as run_compose_config
from xlexp.config.schema import Settings
from xlexp.errors import XlexpError
from xlexp.results.store import check_writable
from xlexp.sweep.commit import ensure_study_uid, experiment_name, study_tag
from xlexp.sweep.space import SweepSpec, check_study_name, default_study_name, load_sweep, trial_overrides
from xlexp.sweep.storage import STORAGE_ENV, default_storage_url, open_storage
from xlexp.tracking.masking import mask_url

SPEC_ATTR = "xlexp_spec"  # study user attr: the sweep's identity (space, objective, overrides)
DEFAULT_HEARTBEAT_S = 10


@dataclass
class SweepJob:
    spec: SweepSpec
    overrides: list[str]  # the command line's extra overrides (part of the study's identity)
    study_name: str
    storage_url: str
    n_trials: int
    heartbeat_s: int = DEFAULT_HEARTBEAT_S
    results_dir: Path = Path("results")
    run_overrides: list[str] = field(default_factory=list)  # worker-only settings (progress bars), not shown
    study_uid: str | None = None  # the study's storage-unique id (xlexp.sweep.commit), once the study is open

    def config_overrides(self, params: dict) -> list[str]:
        """Everything that makes a trial's config, as one ``xlexp run`` would take it."""
        return [*self.spec.base, *self.spec.fixed, *self.overrides, *trial_overrides(params)]

    def run_line(self, params: dict) -> str:
        return "xlexp run " + " ".join(shlex.quote(o) for o in self.config_overrides(params))

    def experiment(self, number: int) -> str:
        """``<study>-<uid>-t<NNNN>``: unique across storages (see :mod:`xlexp.sweep.commit`)."""
        return experiment_name(self.study_name, self.study_uid, number)

    @property
    def study_tag(self) -> str:
        """The ``study`` column of the trials' records: ``<study>@<uid>``."""
        return study_tag(self.study_name, self.study_uid)


def compose_config(overrides: list[str]) -> DictConfig:
    return run_compose_config(overrides, job_name="sweep", what="trial")


def _first_values(spec: SweepSpec) -> dict:
    out = {}
    for p in spec.params:
        d = p.distribution
        out[p.key] = d.choices[0] if isinstance(d, optuna.distributions.CategoricalDistribution) else d.low
    return out


def preflight(spec: SweepSpec, overrides: list[str]) -> Settings:
    """Compose and check one trial's config before any worker starts: a typo in a key, a bad base
    override or an objective the run cannot compute fails here, in one line. Returns its settings."""
    from xlexp.experiment.runner import resolve_settings  # torch & co.: not for `xlexp sweep --status`

    searched = {p.key for p in spec.params}
    clash = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in searched]
    if clash:
        raise XlexpError(
            f"{clash[0]!r} sets a parameter the sweep searches; drop it, or make it fixed in {spec.path.name}"
        )
    settings = resolve_settings(
        compose_config([*spec.base, *spec.fixed, *overrides, *trial_overrides(_first_values(spec))])
    )
    metrics = list(settings.task.metrics)
    if spec.objective.metric not in metrics:
        raise XlexpError(
            f"objective.metric={spec.objective.metric} is not a metric of task {settings.task.name} "
            f"({', '.join(metrics)})"
        )
    if spec.objective.on == "targets_mean" and settings.regime.dev_targets in (None, "none", False):
        raise XlexpError(
            "objective.on=targets_mean needs target dev evaluations, but regime.dev_targets=none; "
            "set regime.dev_targets=all (or a list) in the sweep's base"
        )
    return settings


def build_job(
    sweep_file: str,
    overrides: list[str],
    storage: str | None,
    study: str | None,
    n_trials: int | None,
    heartbeat_s: int | None,
) -> SweepJob:
    spec = load_sweep(sweep_file)
    results_dir = Path(preflight(spec, overrides).paths.results_dir)
    check_writable(results_dir)  # an unwritable results folder fails here, in one line, not after the first trial
    url = storage or os.environ.get(STORAGE_ENV) or default_storage_url(results_dir, spec.name)
    return SweepJob(
        spec=spec,
        overrides=list(overrides),
        study_name=check_study_name(study or default_study_name(spec, overrides)),
        storage_url=url,
        n_trials=n_trials or spec.n_trials,
        heartbeat_s=heartbeat_s or DEFAULT_HEARTBEAT_S,
        results_dir=results_dir,
    )


def create_or_check_study(job: SweepJob) -> optuna.Study:
    """Create the study, or check that an existing one searches the same space for the same objective."""
    storage = open_storage(job.storage_url, job.heartbeat_s)
    study = optuna.create_study(
        study_name=job.study_name, storage=storage, direction=job.spec.objective.direction, load_if_exists=True
    )
    identity = {**job.spec.fingerprint(), "overrides": job.overrides}
    stored = study.user_attrs.get(SPEC_ATTR)
    if stored is None:
        study.set_user_attr(SPEC_ATTR, identity)
        study.set_user_attr("sweep_file", str(job.spec.path))
    elif stored != identity:
        changed = sorted(k for k in identity if identity[k] != stored.get(k))
        raise XlexpError(
            f"study '{job.study_name}' in {mask_url(job.storage_url)} was started with a different "
            f"{', '.join(changed)}; resume it with the same sweep file and overrides, or pass --study NEW"
        )
    if study.metric_names != [job.spec.objective.metric]:  # optuna-dashboard's axis: "macro_f1", not "Objective 0"
        study.set_metric_names([job.spec.objective.metric])
    study.set_user_attr("n_trials", job.n_trials)
    study.set_user_attr("heartbeat_s", job.heartbeat_s)  # --status tells stale RUNNING trials with it
    job.study_uid = ensure_study_uid(study, job.storage_url)
    return study
