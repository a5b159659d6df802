"""Sweep workers as jobs of a Hydra launcher: ``xlexp sweep FILE --launcher slurm --workers N``.

This is a small Hydra app (``conf/sweep_worker.yaml``) whose job is one sweep worker;
``worker=range(0,N)`` under ``-m`` makes N jobs, and hydra-submitit-launcher
(``hydra/launcher=xlexp_slurm``, ``xlexp_local``) submits them as one SLURM array job or runs them
as local processes. The same command can be typed directly::

    XLEXP_SWEEP_STORAGE=postgresql://user:pw@db/optuna python -m xlexp.sweep.launch -m \\
        hydra/launcher=xlexp_slurm sweep_file=$PWD/sweeps/xnli_xlmr_base.yaml study=xnli_xlmr_base \\
        n_trials=64 'worker=range(0,8)'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from xlexp.config.compose import CONF_DIR

if TYPE_CHECKING:
    from xlexp.sweep.driver import SweepJob


def quote(text: str) -> str:
    """A string as a quoted Hydra override value (brackets, commas and '=' stay literal)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def launcher_argv(job: "SweepJob", launcher: str, n_workers: int, extra: list[str]) -> list[str]:
    return ["-m", f"hydra/launcher={launcher}", f"sweep_file={quote(str(job.spec.path))}", f"study={job.study_name}",
            f"n_trials={job.n_trials}", f"heartbeat={job.heartbeat_s}", f"results_dir={quote(str(Path(job.results_dir).resolve()))}",
            "trial_overrides=[" + ",".join(quote(o) for o in job.overrides) + "]", f"worker=range(0,{n_workers})", *extra]


@hydra.main(config_path=CONF_DIR, config_name="sweep_worker", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    from xlexp.sweep.driver import build_job, run_worker

    job = build_job(str(cfg.sweep_file), [str(o) for o in cfg.trial_overrides], None, str(cfg.study),
                    int(cfg.n_trials), int(cfg.heartbeat))
    job.run_overrides = ["trainer.progress=false"]
    stats = run_worker(job, int(cfg.worker))
    return {"worker": int(cfg.worker), "trials": stats.ran, **stats.states}


if __name__ == "__main__":
    main()
