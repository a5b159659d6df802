"""``xlexp sweep``: Optuna searches over composed configs, with pruning, resume and many workers.

Each trial composes its config with Hydra's compose API (base overrides + the sweep's fixed values
+ command-line overrides + the sampled params), runs the normal pipeline, reports the running
objective at every dev evaluation (so the pruner can stop it) and writes ordinary records tagged
with the study and trial number, under the experiment name ``<study>-t<NNNN>``.

The study's total (``n_trials``) is exact across calls and workers: a worker locks the study,
counts its trials and only then asks for a new one (see :mod:`xlexp.sweep.storage`). Re-running the
same command resumes; trial numbers come from the storage, so they never restart at 0. A killed
worker's trial stops heart-beating, is failed by the next worker that asks, and re-queued.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from xlexp.errors import XlexpError
from xlexp.config.compose import compose_config as run_compose_config
from xlexp.tracking.masking import mask_url
from xlexp.sweep.objective import ObjectiveError, ObjectiveTracker
from xlexp.sweep.space import (
    SweepSpec, check_study_name, default_study_name, format_value, load_sweep, make_pruner, make_sampler,
    trial_overrides,
)
from xlexp.sweep.storage import (
    FAIL_REASON, MAX_RETRY, STORAGE_ENV, Heartbeat, budget_lock, budget_used, default_storage_url, fail_reason,
    open_storage,
)

log = logging.getLogger("xlexp.sweep.driver")

SPEC_ATTR = "xlexp_spec"
DEFAULT_HEARTBEAT_S = 10
LAUNCHERS = {"local": "xlexp_local", "slurm": "xlexp_slurm"}


class Interrupted(BaseException):
    """SIGTERM (SLURM preemption, ``kill``) in a worker: fail the running trial, re-queue it, stop."""


# ---- one sweep: what every worker of it needs -----------------------------------------------------

@dataclass
class SweepJob:
    spec: SweepSpec
    overrides: list[str]          # the command line's extra overrides (part of the study's identity)
    study_name: str
    storage_url: str
    n_trials: int
    heartbeat_s: int = DEFAULT_HEARTBEAT_S
    results_dir: Path = Path("results")
    run_overrides: list[str] = field(default_factory=list)  # worker-only settings (progress bars), not shown

    def config_overrides(self, params: dict) -> list[str]:
        """Everything that makes a trial's config, as one ``xlexp run`` would take it."""
        return [*self.spec.base, *self.spec.fixed, *self.overrides, *trial_overrides(params)]

    def run_line(self, params: dict) -> str:
        return "xlexp run " + " ".join(shlex.quote(o) for o in self.config_overrides(params))

    def experiment(self, number: int) -> str:
        return f"{self.study_name}-t{number:04d}"


def compose_config(overrides: list[str]):
    return run_compose_config(overrides, job_name="sweep", what="trial")


def _first_values(spec: SweepSpec) -> dict:
    out = {}
    for p in spec.params:
        d = p.distribution
        out[p.key] = d.choices[0] if isinstance(d, optuna.distributions.CategoricalDistribution) else d.low
    return out


def preflight(spec: SweepSpec, overrides: list[str]):
    """Compose and check one trial's config before any worker starts: a typo in a key, a bad base
    override or an objective the run cannot compute fails here, in one line."""
    from xlexp.config.schema import validate

    searched = {p.key for p in spec.params}
    clash = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in searched]
    if clash:
        raise XlexpError(f"{clash[0]!r} sets a parameter the sweep searches; drop it, or make it fixed in {spec.path.name}")
    cfg = compose_config([*spec.base, *spec.fixed, *overrides, *trial_overrides(_first_values(spec))])
    validate(cfg)
    if spec.objective.metric not in list(cfg.task.metrics):
        raise XlexpError(f"objective.metric={spec.objective.metric} is not a metric of task {cfg.task.name} "
                         f"({', '.join(cfg.task.metrics)})")
    dev_targets = cfg.regime.get("dev_targets", "all")
    if spec.objective.on == "targets_mean" and dev_targets in (None, "none", False):
        raise XlexpError("objective.on=targets_mean needs target dev evaluations, but regime.dev_targets=none; "
                         "set regime.dev_targets=all (or a list) in the sweep's base")
    return cfg


def build_job(sweep_file: str, overrides: list[str], storage: str | None, study: str | None,
              n_trials: int | None, heartbeat_s: int | None) -> SweepJob:
    spec = load_sweep(sweep_file)
    cfg = preflight(spec, overrides)
    results_dir = Path(cfg.paths.results_dir)
    url = storage or os.environ.get(STORAGE_ENV) or default_storage_url(results_dir, spec.name)
    return SweepJob(spec=spec, overrides=list(overrides), study_name=check_study_name(study or default_study_name(spec, overrides)),
                    storage_url=url, n_trials=n_trials or spec.n_trials, heartbeat_s=heartbeat_s or DEFAULT_HEARTBEAT_S,
                    results_dir=results_dir)


def create_or_check_study(job: SweepJob) -> optuna.Study:
    """Create the study, or check that an existing one searches the same space for the same objective."""
    storage = open_storage(job.storage_url, job.heartbeat_s)
    study = optuna.create_study(study_name=job.study_name, storage=storage, direction=job.spec.objective.direction,
                                load_if_exists=True)
    identity = {**job.spec.fingerprint(), "overrides": job.overrides}
    stored = study.user_attrs.get(SPEC_ATTR)
    if stored is None:
        study.set_user_attr(SPEC_ATTR, identity)
        study.set_user_attr("sweep_file", str(job.spec.path))
    elif stored != identity:
        changed = sorted(k for k in identity if identity[k] != stored.get(k))
        raise XlexpError(f"study '{job.study_name}' in {mask_url(job.storage_url)} was started with a different "
                         f"{', '.join(changed)}; resume it with the same sweep file and overrides, or pass --study NEW")
    study.set_user_attr("n_trials", job.n_trials)
    return study


# ---- a worker ----------------------------------------------------------------------------------

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


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run_trial(job: SweepJob, study: optuna.Study, trial: optuna.Trial, storage) -> TrialState:
    from xlexp.experiment.runner import RunHooks, run_experiment

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

    hooks = RunHooks(on_eval=on_eval, tags={"study": job.study_name, "trial": trial.number})
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


# ---- many workers on one machine ----------------------------------------------------------------

def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return []


def worker_env(job: SweepJob, index: int, n_workers: int, gpus: list[str]) -> dict[str, str]:
    env = {**os.environ, STORAGE_ENV: job.storage_url}  # the URL travels in the environment, not argv
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    elif "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n_workers))  # share the cores, don't fight
    return env


def worker_command(job: SweepJob, index: int) -> list[str]:
    """The same sweep, as worker ``index``; the storage URL is in the environment (see worker_env)."""
    return [sys.executable, "-m", "xlexp.cli.main", "sweep", str(job.spec.path), *job.overrides, "--study", job.study_name,
            "--n-trials", str(job.n_trials), "--heartbeat", str(job.heartbeat_s), "--worker-index", str(index)]


def spawn_workers(job: SweepJob, n_workers: int) -> list[int]:
    gpus = visible_gpus()
    if gpus and n_workers > len(gpus):
        log.warning("%d workers on %d GPU(s): several workers share a GPU", n_workers, len(gpus))
    procs = []
    for i in range(n_workers):
        procs.append(subprocess.Popen(worker_command(job, i), env=worker_env(job, i, n_workers, gpus)))
        log.info("started worker %d (pid %d)%s", i, procs[-1].pid,
                 f" on GPU {gpus[i % len(gpus)]}" if gpus else "")
    codes = []
    try:
        for p in procs:
            codes.append(p.wait())
    except KeyboardInterrupt:  # the terminal sent SIGINT to the workers too; let them re-queue their trials
        for p in procs:
            p.wait()
        raise
    return codes


def launch_workers(job: SweepJob, launcher: str, n_workers: int, launcher_args: list[str]) -> int:
    """N workers as jobs of a Hydra launcher (submitit: a SLURM array job, or local processes)."""
    from xlexp.sweep.launch import launcher_argv

    argv = launcher_argv(job, LAUNCHERS.get(launcher, launcher), n_workers, launcher_args)
    env = {**os.environ, STORAGE_ENV: job.storage_url}
    log.info("launching %d sweep worker(s) with hydra/launcher=%s", n_workers, LAUNCHERS.get(launcher, launcher))
    return subprocess.run([sys.executable, "-m", "xlexp.sweep.launch", *argv], env=env).returncode


# ---- status ------------------------------------------------------------------------------------

def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return format_value(v)


def _duration(t: FrozenTrial) -> str:
    if t.datetime_start is None:
        return "-"
    end = t.datetime_complete or __import__("datetime").datetime.now()
    secs = int((end - t.datetime_start).total_seconds())
    return f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"


def counts(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not done:
        return None
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(done, key=lambda t: t.value)


def status_lines(study: optuna.Study, storage_url: str) -> list[str]:
    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    spec = attrs.get(SPEC_ATTR, {})
    objective = spec.get("objective", {})
    n_total = attrs.get("n_trials", "?")
    c = counts(study)
    lines = [
        f"study {study.study_name}  ({mask_url(storage_url)})",
        f"objective: {objective.get('split', 'dev')} {objective.get('metric', '?')} on {objective.get('on', '?')} "
        f"({objective.get('selection', '?')}, {study.direction.name.lower()}); "
        f"trials {budget_used(trials)}/{n_total}: {c.get('COMPLETE', 0)} complete, {c.get('PRUNED', 0)} pruned, "
        f"{c.get('FAIL', 0)} failed, {c.get('RUNNING', 0)} running, {c.get('WAITING', 0)} waiting",
        f"{'#':>4}  {'state':<8}  {'value':>7}  {'time':>7}  {'evals':>5}  params",
    ]
    for t in trials:
        value = f"{t.value:.4f}" if t.value is not None else "-"
        params = " ".join(f"{k}={_fmt_value(v)}" for k, v in t.params.items())
        extra = []
        if "failed_trial" in t.system_attrs:
            extra.append(f"retry of #{t.system_attrs['retry_history'][-1]}")
        reason = fail_reason(study, t)
        if reason:
            extra.append(f"reason: {reason}")
        lines.append(f"{t.number:>4}  {t.state.name:<8}  {value:>7}  {_duration(t):>7}  {len(t.intermediate_values):>5}  "
                     f"{params}{'  [' + '; '.join(extra) + ']' if extra else ''}")
    best = best_trial(study)
    if best is None:
        lines.append("best: no complete trial yet")
        return lines
    base = [*spec.get("base", []), *spec.get("fixed", []), *spec.get("overrides", [])]
    run = "xlexp run " + " ".join(shlex.quote(o) for o in [*base, *trial_overrides(best.params)])
    lines += [f"best: trial {best.number}, {objective.get('metric', 'value')} = {best.value:.4f} "
              f"(experiment {best.user_attrs.get('experiment', '?')}, run {best.user_attrs.get('run_id', '?')})",
              f"  {run}",
              f"  xlexp matrix --experiment {best.user_attrs.get('experiment', '?')}"]
    return lines


def _storage_for_status(url: str) -> optuna.storages.RDBStorage:
    return open_storage(url, DEFAULT_HEARTBEAT_S)


def show_status(urls: list[str], study_name: str | None) -> int:
    shown = 0
    for url in urls:
        storage = _storage_for_status(url)
        names = [s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)]
        for name in names:
            if study_name and name != study_name:
                continue
            if shown:
                print()
            print("\n".join(status_lines(optuna.load_study(study_name=name, storage=storage), url)))
            shown += 1
    if not shown:
        where = ", ".join(mask_url(u) for u in urls) or "no storage"
        raise XlexpError(f"no sweep study{f' named {study_name!r}' if study_name else ''} in {where}; "
                         f"start one with `xlexp sweep sweeps/NAME.yaml`")
    return 0


def status_urls(args, results_dir: Path) -> list[str]:
    if args.storage or os.environ.get(STORAGE_ENV):
        return [args.storage or os.environ[STORAGE_ENV]]
    folder = results_dir / "sweeps"
    return [f"sqlite:///{p.resolve()}" for p in sorted(folder.glob("*.db"))]


# ---- the command -------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="xlexp sweep", description=(
        "Optuna search over xlexp configs: sweeps/NAME.yaml names the base experiment, the objective "
        "and the space (Hydra sweep syntax). Re-run the same command to resume."))
    p.add_argument("sweep", nargs="?", help="sweep file, e.g. sweeps/quickstart.yaml")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every trial (they make another study)")
    p.add_argument("--storage", help=f"Optuna RDB URL (default: ${STORAGE_ENV}, else sqlite under <results>/sweeps/); "
                                     "postgresql://user:pw@host/db for many nodes")
    p.add_argument("--study", help="study name (default: the sweep file's name, plus a hash of extra overrides)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (one per GPU when there are GPUs)")
    p.add_argument("--n-trials", type=int, help="total trials of the study (default: the sweep file's n_trials)")
    p.add_argument("--heartbeat", type=int, help=f"seconds between trial heartbeats (default {DEFAULT_HEARTBEAT_S}); "
                                                  "a trial silent for 3x this is failed and re-queued")
    p.add_argument("--status", action="store_true", help="print the study's trials and the best config, run nothing")
    p.add_argument("--launcher", help="run the workers as jobs of a Hydra launcher: slurm (submitit_slurm array job), "
                                      "local (submitit_local), or a conf/hydra/launcher option")
    p.add_argument("--launcher-arg", action="append", default=[], metavar="OVERRIDE",
                   help="override for the launcher, e.g. hydra.launcher.partition=gpu (repeatable)")
    p.add_argument("--results-dir", default=os.environ.get("XLEXP_RESULTS_DIR", "results"),
                   help="where --status looks for SQLite studies without a sweep file")
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    return p.parse_intermixed_args(argv)


def setup_logging(index: int | None) -> None:
    root = logging.getLogger()
    if root.handlers:  # inside a Hydra app: its job logging is already set up
        return
    tag = f" [w{index}]" if index is not None else ""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s{tag} %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what each trial did


def main(argv: list[str]) -> int:
    try:
        return _main(argv)
    except (KeyboardInterrupt, Interrupted):
        print("xlexp sweep: interrupted; the running trial was re-queued: run the same command to resume",
              file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    setup_logging(args.worker_index)
    if args.status and not args.sweep:
        return show_status(status_urls(args, Path(args.results_dir)), args.study)
    if not args.sweep:
        raise XlexpError("give a sweep file: xlexp sweep sweeps/NAME.yaml [overrides] (or --status)")
    if args.workers < 1:
        raise XlexpError("--workers must be at least 1")
    job = build_job(args.sweep, args.overrides, args.storage, args.study, args.n_trials, args.heartbeat)
    if args.status:
        return show_status([job.storage_url], job.study_name)
    if args.worker_index is not None:  # one of --workers N: the parent created the study
        job.run_overrides = ["trainer.progress=false"]  # N progress bars on one terminal help nobody
        run_worker(job, args.worker_index)
        return 0
    study = create_or_check_study(job)
    trials = study.get_trials(deepcopy=False)
    todo = job.n_trials - budget_used(trials)
    pending = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    print(f"study {job.study_name} ({mask_url(job.storage_url)}): {budget_used(trials)}/{job.n_trials} trials so far")
    if todo <= 0 and not pending:
        print("nothing to run: the study has all its trials")
    elif args.launcher:
        code = launch_workers(job, args.launcher, args.workers, args.launcher_arg)
        if code:
            raise XlexpError(f"the launcher exited with code {code}")
    elif args.workers == 1:
        run_worker(job, 0)
    else:
        codes = spawn_workers(job, args.workers)
        if any(codes):
            print("\n".join(status_lines(optuna.load_study(study_name=job.study_name, storage=open_storage(job.storage_url, job.heartbeat_s)), job.storage_url)))
            raise XlexpError(f"worker exit codes {codes}: see the lines above")
    print("\n".join(status_lines(optuna.load_study(study_name=job.study_name, storage=open_storage(job.storage_url, job.heartbeat_s)),
                                 job.storage_url)))
    return 0
