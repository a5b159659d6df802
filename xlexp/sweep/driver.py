"""``xlexp sweep``: Optuna searches over composed configs, with pruning, resume and many workers.

This module is the command's work (its arguments are parsed by :mod:`xlexp.cli.sweep`): it picks the mode: ``--status`` (print,
run nothing), one worker in this process, ``--workers N`` local processes, or ``--launcher`` jobs.
The pieces live beside it: :mod:`.job` (the sweep, its preflight and study), :mod:`.worker`
(ask/run/tell), :mod:`.processes` (many workers), :mod:`.launch` (the Hydra launcher app),
:mod:`.status` (the study table), :mod:`.space`, :mod:`.objective`, :mod:`.storage`.

Re-running the same command resumes; trial numbers come from the storage, so they never restart
at 0, and the study's ``n_trials`` is an exact total across calls and workers.

Exit codes: 0 when the call ran (or had nothing to run); 1 when this call's trials all failed and
none completed (one line: how many, the first reason); 2 for bad input or a storage that cannot be
opened or stays away (one line, ``xlexp: error: ...``; the traceback only under ``XLEXP_DEBUG=1``);
130 when interrupted (the running trial is re-queued).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from xlexp.errors import XlexpError
from xlexp.sweep.commit import recover_now
from xlexp.sweep.job import build_job, create_or_check_study
from xlexp.sweep.outage import debug, first_line, is_outage
from xlexp.sweep.processes import launch_workers, spawn_workers
from xlexp.sweep.status import print_status, show_status, status_urls
from xlexp.sweep.storage import budget_used, fail_reason, grace_period_s
from xlexp.sweep.worker import Interrupted, run_worker
from xlexp.tracking.masking import mask_url


@dataclass(frozen=True)
class SweepRequest:
    """What ``xlexp sweep`` was asked (parsed by :mod:`xlexp.cli.sweep`): the sweep file and extra
    overrides, the storage and study, how many workers where, or ``status`` only."""

    sweep: str | None = None
    overrides: tuple[str, ...] = ()
    storage: str | None = None
    study: str | None = None
    workers: int = 1
    n_trials: int | None = None
    heartbeat: int | None = None
    status: bool = False
    launcher: str | None = None
    launcher_args: tuple[str, ...] = ()
    results_dir: str = "results"
    worker_index: int | None = None  # one of --workers N (a subprocess the driver started)


def setup_logging(index: int | None) -> None:
    root = logging.getLogger()
    if root.handlers:  # inside a Hydra app: its job logging is already set up
        return
    from xlexp.views.progress import setup_console_logging  # the same format as `xlexp run`

    setup_console_logging(f"w{index}" if index is not None else None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what each trial did


def run_sweep(args: SweepRequest) -> int:
    """The sweep (or its ``status``); the exit code."""
    try:
        return _main(args)
    except (KeyboardInterrupt, Interrupted):
        print(
            "xlexp sweep: interrupted; the running trial was re-queued: run the same command to resume", file=sys.stderr
        )
        return 130
    except XlexpError:
        raise
    except Exception as e:  # the storage went away outside a worker's retries (study creation, the final status)
        if not is_outage(e) or debug():
            raise
        raise XlexpError(
            f"sweep storage unreachable ({first_line(e)}); re-run the same command when it is back "
            f"(XLEXP_DEBUG=1 shows the traceback)"
        ) from None


def failed_without_result(study: optuna.Study, first_number: int) -> str | None:
    """When this call's trials (numbers from ``first_number``) failed and none completed: the one
    line that says so (how many, the first reason), else None."""
    mine = [t for t in study.get_trials(deepcopy=False) if t.number >= first_number]
    failed = [t for t in mine if t.state == TrialState.FAIL]
    if not failed or any(t.state == TrialState.COMPLETE for t in mine):
        return None
    first = failed[0]
    return (
        f"{len(failed)} trial(s) failed and none completed; first: trial {first.number}: "
        f"{fail_reason(study, first)} (`xlexp sweep --status` lists them; XLEXP_DEBUG=1 logs tracebacks)"
    )


def _main(args: SweepRequest) -> int:
    setup_logging(args.worker_index)
    if args.status and not args.sweep:
        return show_status(status_urls(args.storage, Path(args.results_dir)), args.study)
    if not args.sweep:
        raise XlexpError("give a sweep file: xlexp sweep sweeps/NAME.yaml [overrides] (or --status)")
    if args.workers < 1:
        raise XlexpError("--workers must be at least 1")
    most = 4 * (os.cpu_count() or 1)
    if args.workers > most and not args.launcher:
        raise XlexpError(
            f"--workers {args.workers}: at most {most} local worker processes on this machine (4 per core); "
            f"for more, use --launcher slurm"
        )
    if args.n_trials is not None and args.n_trials < 1:
        raise XlexpError(f"--n-trials must be a positive total of trials, got {args.n_trials}")
    if args.heartbeat is not None and args.heartbeat < 1:
        raise XlexpError(f"--heartbeat must be at least 1 second, got {args.heartbeat}")
    job = build_job(args.sweep, list(args.overrides), args.storage, args.study, args.n_trials, args.heartbeat)
    if args.status:
        return show_status([job.storage_url], job.study_name)
    if args.worker_index is not None:  # one of --workers N: the parent created the study
        job.run_overrides = ["trainer.progress=false"]  # N progress bars on one terminal help nobody
        run_worker(job, args.worker_index)
        return 0
    study = create_or_check_study(job)
    if job.study_uid:  # finish what killed workers left pending, even when there is nothing left to run
        recover_now(study, job.storage_url, job.study_uid, job.results_dir, grace_period_s(job.heartbeat_s))
    trials = study.get_trials(deepcopy=False)
    first_number = len(trials)  # this call's trials are numbered from here
    todo = job.n_trials - budget_used(trials)
    pending = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    print(f"study {job.study_name} ({mask_url(job.storage_url)}): {budget_used(trials)}/{job.n_trials} trials so far")
    if todo <= 0 and not pending:
        print("nothing to run: the study has all its trials")
    elif args.launcher:
        code = launch_workers(job, args.launcher, args.workers, list(args.launcher_args))
        if code:
            raise XlexpError(f"the launcher exited with code {code}")
    elif args.workers == 1:
        run_worker(job, 0)
    else:
        codes = spawn_workers(job, args.workers)
        if any(codes):
            print_status(job.storage_url, job.study_name, job.heartbeat_s)
            raise XlexpError(f"worker exit codes {codes}: see the lines above")
    print_status(job.storage_url, job.study_name, job.heartbeat_s)
    failed = failed_without_result(study, first_number)
    if failed:
        print(f"xlexp sweep: error: {failed}", file=sys.stderr)
        return 1
    return 0
