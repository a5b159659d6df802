"""Hydra entry point: compose the config, call the pipeline, return the objective.

``xlexp run ...`` and ``python -m xlexp.cli.run ...`` are the same command (the latter is what
torchrun and cluster launchers call).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from xlexp.config.compose import CONF_DIR
from xlexp.errors import XlexpError

log = logging.getLogger("xlexp")


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from xlexp.experiment.runner import run_experiment  # after Hydra parsed args: `--help` stays fast

    try:
        return run_experiment(cfg)
    except XlexpError as e:
        log.error("%s", e)
        print(f"xlexp: error: {e}", file=sys.stderr)
        sys.exit(2)


def rank_overrides(env: dict[str, str] = os.environ) -> list[str]:
    """Under torchrun only rank 0 keeps Hydra's log file and saved config; the other ranks log
    nothing below WARNING (to stderr) and write no .hydra folder."""
    if env.get("RANK", "0") in ("", "0"):
        return []
    return ["hydra/job_logging=none", "hydra.output_subdir=null"]


if __name__ == "__main__":
    sys.argv += rank_overrides()
    main()
