"""A sweep worker: ask the study for a trial, run it as an ordinary experiment, tell the result.

Each trial composes its config with Hydra's compose API (base overrides + the sweep's fixed values
+ command-line overrides + the sampled params), runs the normal experiment runner, reports the
running objective at every dev evaluation (so the pruner can stop it) and writes ordinary records
tagged with the study and trial number, under the experiment name ``<study>-t<NNNN>``. A trial
prints only its trial line, not the run's matrix.

The study's total (``n_trials``) is exact across calls and workers: a worker locks the study,
counts its trials and only then asks for a new one (see :mod:`xlexp.sweep.storage`). A killed
worker's trial stops heart-beating, is failed by the next worker that asks, and re-queued; SIGTERM
(SLURM preemption) fails the running trial and re-queues it at once.

May import: :mod:`xlexp.sweep.job`, ``.objective``, ``.space``, ``.storage``,
:mod:`xlexp.experiment` (the runner), :mod:`xlexp.tracking.masking`, Optuna.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from xlexp.sweep.job import SweepJob, compose_config
from xlexp.sweep.objective import ObjectiveError, ObjectiveTracker
from xlexp.sweep.space import make_pruner, make_sampler, trial_overrides
from xlexp.sweep.storage import FAIL_REASON, MAX_RETRY, Heartbeat, budget_lock, budget_used, open_storage
from xlexp.tracking.masking import mask_url

log = logging.getLogger("xlexp.sweep.worker")


class Interrupted(BaseException):
    """SIGTERM (SLURM preemption, ``kill``) in a worker: fail the running trial, re-queue it, stop."""


@dataclass
class WorkerStats:
    ran: int = 0
    states: dict[str, int] = field(default_factory=dict)


def worker_id(index: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}/w{index}"


def _sampler_seed(seed, index: int, n_existing: int) -> int | None:
    """Workers and resumed calls must not replay the same random proposals: mix both into the seed."""
    return None if seed is None else int(seed) + 1000 * index + n_existing


def _on_sigterm(signum, frame) -> None:
    raise Interrupted(f"signal {signum}")


def threading_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_worker(job: SweepJob, index: int = 0) -> WorkerStats:
    """Ask, run, tell until the study has n_trials (and nothing is left running or queued)."""
    storage = open_storage(job.storage_url, job.heartbeat_s)
    n_existing = len(optuna.load_study(study_name=job.study_name, storage=storage).get_trials(deepcopy=False))
    study = optuna.load_study(study_name=job.study_name, storage=storage,
                              sampler=make_sampler(job.spec.sampler, _sampler_seed(job.spec.sampler.get("seed"), index, n_existing)),
                              pruner=make_pruner(job.spec.pruner))
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading_main() else None
    try:
        return _worker_loop(job, study, storage, index)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _worker_loop(job: SweepJob, study: optuna.Study, storage, index: int) -> WorkerStats:
    me, stats = worker_id(index), WorkerStats()
    log.info("worker %s on study %s (%s): up to %d trials in total", me, job.study_name, mask_url(job.storage_url), job.n_trials)
    while True:
        with budget_lock(job.storage_url, job.study_name):
            optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            trial = study.ask(job.spec.distributions) if waiting or budget_used(trials) < job.n_trials else None
            if trial is not None:
                storage.record_heartbeat(trial._trial_id)  # stale-detectable even if killed right now
                trial.set_user_attr("worker", me)
            running = any(t.state == TrialState.RUNNING for t in trials)
        if trial is None:
            if not running:
                return stats
            time.sleep(job.heartbeat_s)  # others' trials may still go stale and come back as retries
            continue
        state = run_trial(job, study, trial, storage)
        stats.ran += 1
        stats.states[state.name] = stats.states.get(state.name, 0) + 1


def run_trial(job: SweepJob, study: optuna.Study, trial: optuna.Trial, storage) -> TrialState:
    from xlexp.experiment.runner import RunHooks, run_experiment  # torch & co.: not for `xlexp sweep --status`

    params = dict(trial.params)
    name = job.experiment(trial.number)
    overrides = [*job.config_overrides(params), f"name={name}", f"+study={job.study_name}", *job.run_overrides]
    trial.set_user_attr("experiment", name)
    trial.set_user_attr("overrides", trial_overrides(params))
    retry_of = storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
    log.info("trial %d%s: %s", trial.number, f" (retry of {retry_of})" if retry_of is not None else "",
             " ".join(trial_overrides(params)))
    started = time.perf_counter()
    tracker: ObjectiveTracker | None = None

    def on_eval(unit, step: int, metrics: dict[str, dict[str, float]]) -> None:
        index, value = tracker.observe(unit, unit.select_languages, unit.dev_targets, step, metrics)
        trial.report(value, index)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at evaluation {index} (step {step}): running objective {value:.4f}")

    # a trial prints its trial line only: the run's matrix stays off the terminal (it is in the records)
    hooks = RunHooks(on_eval=on_eval, tags={"study": job.study_name, "trial": trial.number}, show_matrix=False)
    with Heartbeat(storage, trial._trial_id, job.heartbeat_s):
        try:
            cfg = compose_config(overrides)
            tracker = ObjectiveTracker(job.spec.objective, str(cfg.task.primary_metric))
            test_value = run_experiment(cfg, hooks)
            value = tracker.value()
            _set_attrs(trial, run_id=hooks.run_id, test_objective=test_value, best_step=tracker.best_step(),
                       duration_s=round(time.perf_counter() - started, 1))
            study.tell(trial, value)
            log.info("trial %d: %s = %.4f (%s)", trial.number, job.spec.objective.metric, value, name)
            return TrialState.COMPLETE
        except optuna.TrialPruned as e:
            _set_attrs(trial, run_id=hooks.run_id, pruned=str(e), duration_s=round(time.perf_counter() - started, 1))
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d: %s", trial.number, e)
            return TrialState.PRUNED
        except (KeyboardInterrupt, Interrupted) as e:
            _fail(study, trial, f"interrupted ({type(e).__name__}{': ' + str(e) if str(e) else ''}); re-queued")
            frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, frozen)
            raise
        except ObjectiveError as e:  # the sweep file asks for what no trial can give: stop, don't burn the budget
            _fail(study, trial, f"{type(e).__name__}: {e}")
            raise
        except Exception as e:
            log.warning("trial %d failed:\n%s", trial.number, mask_url(traceback.format_exc()))
            _fail(study, trial, f"{type(e).__name__}: {mask_url(str(e)).splitlines()[0] if str(e) else ''}")
            return TrialState.FAIL


def _set_attrs(trial: optuna.Trial, **attrs) -> None:
    for key, value in attrs.items():
        if value is not None:
            trial.set_user_attr(key, value)


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr(FAIL_REASON, reason)
    study.tell(trial, state=TrialState.FAIL)
    log.warning("trial %d FAIL: %s", trial.number, reason)
