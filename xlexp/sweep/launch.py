"""Sweep workers as jobs of a Hydra launcher: ``xlexp sweep FILE --launcher slurm --workers N``.

This is a small Hydra app (``conf/sweep_worker.yaml``) whose job is one sweep worker;
``worker=range(0,N)`` under ``-m`` makes N jobs, and hydra-submitit-launcher
(``hydra/launcher=xlexp_slurm``, ``xlexp_local``) submits them as one SLURM array job or runs them
as local processes. :func:`xlexp.sweep.processes.launcher_argv` builds its arguments; the same
command can be typed directly::

    XLEXP_SWEEP_STORAGE=postgresql://user:pw@db/optuna python -m xlexp.sweep.launch -m \\
        hydra/launcher=xlexp_slurm sweep_file=$PWD/sweeps/xnli_xlmr_base.yaml study=xnli_xlmr_base \\
        n_trials=64 'worker=range(0,8)'
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from xlexp.config.compose import CONF_DIR, register_search_path
from xlexp.errors import XlexpError
from xlexp.sweep.job import build_job
from xlexp.sweep.worker import run_worker


@hydra.main(config_path=CONF_DIR, config_name="sweep_worker", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    job = build_job(
        str(cfg.sweep_file),
        [str(o) for o in cfg.trial_overrides],
        None,
        str(cfg.study),
        int(cfg.n_trials),
        int(cfg.heartbeat),
    )
    job.run_overrides = ["trainer.progress=false"]
    stats = run_worker(job, int(cfg.worker))
    return {"worker": int(cfg.worker), "trials": stats.ran, **stats.states}


if __name__ == "__main__":
    try:  # the user's XLEXP_CONFIG_PATH folders (e.g. their own hydra/launcher configs), as for `xlexp run`
        register_search_path(sys.argv[1:])
    except XlexpError as e:
        print(f"xlexp: error: {e}", file=sys.stderr)
        sys.exit(2)
    main()
