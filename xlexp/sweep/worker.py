"""A sweep worker: ask the study for a trial, run it as an ordinary experiment, tell the result.

Each trial composes its config with Hydra's compose API (base overrides + the sweep's fixed values
+ command-line overrides + the sampled params), runs the normal experiment runner, reports the
running objective at every dev evaluation (so the pruner can stop it) and writes ordinary records
tagged with the study (``<study>@<uid>``) and trial number, under the experiment name
``<study>-<uid>-t<NNNN>``. The records wait in a pending folder until the study has the trial
COMPLETE, and only then enter the store; a pruned or failed trial's are deleted (see
:mod:`xlexp.sweep.commit`). A trial prints only its trial line, not the run's matrix.

Every storage call goes through :class:`xlexp.sweep.outage.StorageHealth`: a database that is away
for a while (up to ``XLEXP_SWEEP_STORAGE_RETRY_S``, default 60 s) makes the trial wait, with one
warning line, instead of killing the worker.

The study's total (``n_trials``) is exact across calls and workers: a worker locks the study,
counts its trials and only then asks for a new one (see :mod:`xlexp.sweep.storage`). A killed
worker's trial stops heart-beating, is failed by the next worker that asks, and re-queued; SIGTERM
(SLURM preemption) fails the running trial and re-queues it at once.
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

from xlexp.results.liveness import HeldLock
from xlexp.results.pending import discard, pending_lock, promote, remove_if_empty
from xlexp.sweep.commit import ensure_study_uid, recover, trial_pending_dir
from xlexp.sweep.job import SweepJob, compose_config
from xlexp.sweep.objective import ObjectiveError, ObjectiveTracker
from xlexp.sweep.outage import StorageHealth, StorageUnavailable, debug, first_line
from xlexp.sweep.space import make_pruner, make_sampler, trial_overrides
from xlexp.sweep.storage import (
    FAIL_REASON,
    MAX_RETRY,
    Heartbeat,
    budget_lock,
    budget_used,
    grace_period_s,
    open_storage,
    start_orphan_clocks,
)
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
    health = StorageHealth(job.storage_url)
    storage = open_storage(job.storage_url, job.heartbeat_s)
    n_existing = health.call(
        lambda: len(optuna.load_study(study_name=job.study_name, storage=storage).get_trials(deepcopy=False)),
        "loading the study",
    )
    study = health.call(
        lambda: optuna.load_study(
            study_name=job.study_name,
            storage=storage,
            sampler=make_sampler(job.spec.sampler, _sampler_seed(job.spec.sampler.get("seed"), index, n_existing)),
            pruner=make_pruner(job.spec.pruner),
        ),
        "loading the study",
    )
    if job.study_uid is None:  # a worker process of --workers N or of a launcher: read it from the study
        job.study_uid = health.call(lambda: ensure_study_uid(study, job.storage_url), "reading the study id")
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading_main() else None
    try:
        return _worker_loop(job, study, storage, index, health)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _next_trial(job: SweepJob, study: optuna.Study, storage, me: str) -> tuple[optuna.Trial | None, bool]:
    """Under the study's lock: fail stale trials, finish killed workers' commits, ask for a trial
    unless the study has its total. Returns (the new trial or None, whether any trial still runs)."""
    with budget_lock(job.storage_url, job.study_name):
        start_orphan_clocks(study, storage)
        optuna.storages.fail_stale_trials(study)
        recover(study, job.study_uid, job.results_dir, min_age_s=grace_period_s(job.heartbeat_s))
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        trial = study.ask(job.spec.distributions) if waiting or budget_used(trials) < job.n_trials else None
        if trial is not None:
            storage.record_heartbeat(trial._trial_id)  # stale-detectable even if killed right now
            trial.set_user_attr("worker", me)
        running = any(t.state == TrialState.RUNNING for t in trials)
    return trial, running


def _worker_loop(job: SweepJob, study: optuna.Study, storage, index: int, health: StorageHealth) -> WorkerStats:
    me, stats = worker_id(index), WorkerStats()
    log.info(
        "worker %s on study %s (%s): up to %d trials in total",
        me,
        job.study_name,
        mask_url(job.storage_url),
        job.n_trials,
    )
    while True:
        trial, running = health.call(lambda: _next_trial(job, study, storage, me), "asking for a trial")
        if trial is None:
            if not running:
                return stats
            time.sleep(job.heartbeat_s)  # others' trials may still go stale and come back as retries
            continue
        state = run_trial(job, study, trial, storage, health)
        stats.ran += 1
        stats.states[state.name] = stats.states.get(state.name, 0) + 1


def run_trial(
    job: SweepJob, study: optuna.Study, trial: optuna.Trial, storage, health: StorageHealth | None = None
) -> TrialState:
    """Run one trial while holding its pending folder's lock: until its files are promoted or
    discarded, no other worker touches them; once this process is gone (killed anywhere, even during
    the promotion), the next worker or `xlexp sweep` call finishes the job at once."""
    folder = trial_pending_dir(job.results_dir, job.study_name, job.study_uid, trial.number)
    claim = HeldLock(pending_lock(folder))
    claim.acquire()
    try:
        return _run_trial(job, study, trial, storage, health)
    finally:
        claim.release()
        remove_if_empty(folder.parent)


def _run_trial(
    job: SweepJob, study: optuna.Study, trial: optuna.Trial, storage, health: StorageHealth | None = None
) -> TrialState:
    from xlexp.experiment.runner import RunHooks, run_experiment  # torch & co.: not for `xlexp sweep --status`

    health = health or StorageHealth(job.storage_url)
    params = dict(trial.params)
    name = job.experiment(trial.number)
    # the run writes here; only a COMPLETE trial's files are promoted into the store (xlexp.sweep.commit)
    folder = trial_pending_dir(job.results_dir, job.study_name, job.study_uid, trial.number)
    overrides = [*job.config_overrides(params), f"name={name}", f"+study={job.study_tag}", *job.run_overrides]
    what = f"running trial {trial.number}"
    health.call(lambda: _set_attrs(trial, experiment=name, overrides=trial_overrides(params)), what)
    retry_of = health.call(lambda: storage.get_trial(trial._trial_id).system_attrs.get("failed_trial"), what)
    log.info(
        "trial %d%s: %s",
        trial.number,
        f" (retry of {retry_of})" if retry_of is not None else "",
        " ".join(trial_overrides(params)),
    )
    started = time.perf_counter()
    tracker: ObjectiveTracker | None = None

    def on_eval(unit, step: int, metrics: dict[str, dict[str, float]]) -> None:
        index, value = tracker.observe(unit, unit.select_languages, unit.dev_targets, step, metrics)
        health.call(lambda: trial.report(value, index), what)
        if health.call(trial.should_prune, what):
            raise optuna.TrialPruned(f"pruned at evaluation {index} (step {step}): running objective {value:.4f}")

    # a trial prints its trial line only: the run's matrix stays off the terminal (it is in the records)
    hooks = RunHooks(
        on_eval=on_eval, tags={"study": job.study_tag, "trial": trial.number}, show_matrix=False, records_dir=folder
    )
    with Heartbeat(storage, trial._trial_id, job.heartbeat_s, health):
        try:
            cfg = compose_config(overrides)
            tracker = ObjectiveTracker(job.spec.objective, str(cfg.task.primary_metric))
            test_value = run_experiment(cfg, hooks)
            value = tracker.value()
            health.call(
                lambda: _set_attrs(
                    trial,
                    run_id=hooks.run_id,
                    test_objective=test_value,
                    best_step=tracker.best_step(),
                    duration_s=round(time.perf_counter() - started, 1),
                ),
                what,
            )
            frozen = health.call(lambda: study.tell(trial, value, skip_if_finished=True), what)
            if frozen.state != TrialState.COMPLETE:  # failed as stale by another worker while this one was away
                return _lost(trial, frozen.state, folder)
            files = promote(folder, job.results_dir)  # after the tell: a killed worker's records never count
            log.info(
                "trial %d: %s = %.4f (%s; %d records file(s))",
                trial.number,
                job.spec.objective.metric,
                value,
                name,
                len(files),
            )
            return TrialState.COMPLETE
        except optuna.TrialPruned as e:
            reason = str(e)
            health.call(
                lambda: _set_attrs(
                    trial, run_id=hooks.run_id, pruned=reason, duration_s=round(time.perf_counter() - started, 1)
                ),
                what,
            )
            frozen = health.call(lambda: study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True), what)
            discard(folder)  # a pruned trial's units are not results
            if frozen.state != TrialState.PRUNED:
                return _lost(trial, frozen.state, folder)
            log.info("trial %d: %s", trial.number, e)
            return TrialState.PRUNED
        except (KeyboardInterrupt, Interrupted) as e:
            discard(folder)
            try:
                _fail(study, trial, f"interrupted ({type(e).__name__}{': ' + str(e) if str(e) else ''}); re-queued")
                frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
                optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, frozen)
            except Exception as err:  # storage away: the trial goes stale and is re-queued by the next worker
                log.warning(
                    "trial %d: could not re-queue it now (%s); the next worker will", trial.number, first_line(err)
                )
            raise
        except StorageUnavailable:
            raise  # the trial stays RUNNING, its files pending: the next worker fails, re-queues and discards them
        except optuna.exceptions.UpdateFinishedTrialError:
            frozen = health.call(lambda: storage.get_trial(trial._trial_id), what)
            return _lost(trial, frozen.state, folder)
        except ObjectiveError as e:  # the sweep file asks for what no trial can give: stop, don't burn the budget
            discard(folder)
            _fail(study, trial, f"{type(e).__name__}: {e}", health)
            raise
        except Exception as e:
            discard(folder)  # a failed trial writes no records, even of the units it finished
            if debug():
                log.warning("trial %d failed:\n%s", trial.number, mask_url(traceback.format_exc()))
            _fail(study, trial, f"{type(e).__name__}: {mask_url(str(e)).splitlines()[0] if str(e) else ''}", health)
            return TrialState.FAIL


def _lost(trial: optuna.Trial, state: TrialState, folder) -> TrialState:
    """Another worker finished this trial (stale: no heartbeat reached the storage) while it ran."""
    n = discard(folder)
    log.warning(
        "trial %d: finished as %s by another worker while this one could not reach the storage; "
        "its %d records file(s) were discarded (its retry runs the same params)",
        trial.number,
        state.name,
        n,
    )
    return state


def _set_attrs(trial: optuna.Trial, **attrs) -> None:
    for key, value in attrs.items():
        if value is not None:
            trial.set_user_attr(key, value)


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str, health: StorageHealth | None = None) -> None:
    def tell() -> None:
        try:
            trial.set_user_attr(FAIL_REASON, reason)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # already failed as stale by another worker: its reason stands
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    health.call(tell, f"failing trial {trial.number}") if health is not None else tell()
    log.warning("trial %d FAIL: %s%s", trial.number, reason, "" if debug() else " (XLEXP_DEBUG=1 logs the traceback)")
