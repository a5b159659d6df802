"""Many workers of one sweep: local processes (``--workers N``) or jobs of a Hydra launcher
(``--launcher slurm|local``).

Local workers are ``xlexp sweep FILE ... --worker-index i`` subprocesses, one GPU each when there
are GPUs (``CUDA_VISIBLE_DEVICES``), the CPU cores shared out otherwise. Launcher workers are the
Hydra app of :mod:`xlexp.sweep.launch`, started with the arguments :func:`launcher_argv` builds. The
storage URL always travels in the environment (``XLEXP_SWEEP_STORAGE``), never on a command line
that ``ps`` would show.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from xlexp.sweep.job import SweepJob
from xlexp.sweep.storage import STORAGE_ENV

log = logging.getLogger("xlexp.sweep.processes")

LAUNCHERS = {"local": "xlexp_local", "slurm": "xlexp_slurm"}


# ---- N processes on this machine -----------------------------------------------------------------


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
    return [
        sys.executable,
        "-m",
        "xlexp.cli.main",
        "sweep",
        str(job.spec.path),
        *job.overrides,
        "--study",
        job.study_name,
        "--n-trials",
        str(job.n_trials),
        "--heartbeat",
        str(job.heartbeat_s),
        "--worker-index",
        str(index),
    ]


def spawn_workers(job: SweepJob, n_workers: int) -> list[int]:
    gpus = visible_gpus()
    if gpus and n_workers > len(gpus):
        log.warning("%d workers on %d GPU(s): several workers share a GPU", n_workers, len(gpus))
    procs = []
    for i in range(n_workers):
        procs.append(subprocess.Popen(worker_command(job, i), env=worker_env(job, i, n_workers, gpus)))
        log.info("started worker %d (pid %d)%s", i, procs[-1].pid, f" on GPU {gpus[i % len(gpus)]}" if gpus else "")
    codes = []
    try:
        for p in procs:
            codes.append(p.wait())
    except KeyboardInterrupt:  # the terminal sent SIGINT to the workers too; let them re-queue their trials
        for p in procs:
            p.wait()
        raise
    return codes


# ---- N jobs of a Hydra launcher (submitit) -------------------------------------------------------


def quote(text: str) -> str:
    """A string as a quoted Hydra override value (brackets, commas and '=' stay literal)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def launcher_argv(job: SweepJob, launcher: str, n_workers: int, extra: list[str]) -> list[str]:
    return [
        "-m",
        f"hydra/launcher={launcher}",
        f"sweep_file={quote(str(job.spec.path))}",
        f"study={job.study_name}",
        f"n_trials={job.n_trials}",
        f"heartbeat={job.heartbeat_s}",
        f"results_dir={quote(str(Path(job.results_dir).resolve()))}",
        "trial_overrides=[" + ",".join(quote(o) for o in job.overrides) + "]",
        f"worker=range(0,{n_workers})",
        *extra,
    ]


def launch_workers(job: SweepJob, launcher: str, n_workers: int, launcher_args: list[str]) -> int:
    """N workers as jobs of a Hydra launcher (submitit: a SLURM array job, or local processes)."""
    argv = launcher_argv(job, LAUNCHERS.get(launcher, launcher), n_workers, launcher_args)
    env = {**os.environ, STORAGE_ENV: job.storage_url}
    log.info("launching %d sweep worker(s) with hydra/launcher=%s", n_workers, LAUNCHERS.get(launcher, launcher))
    return subprocess.run([sys.executable, "-m", "xlexp.sweep.launch", *argv], env=env).returncode
