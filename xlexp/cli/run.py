"""Hydra entry point: compose the config, call the pipeline, return the objective.

``xlexp run ...`` and ``python -m xlexp.cli.run ...`` are the same command (the latter is what
torchrun and cluster launchers call). Both go through :func:`main`, which first puts the
``XLEXP_CONFIG_PATH`` folders on Hydra's search path (a bad entry: one line, exit code 2).
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig

from xlexp.config.compose import CONF_DIR, register_search_path
from xlexp.errors import XlexpError

log = logging.getLogger("xlexp")


def main() -> None:
    """``xlexp run``: the user's config folders first, then Hydra (which parses ``sys.argv``)."""
    try:
        register_search_path()
    except XlexpError as e:
        print(f"xlexp: error: {e}", file=sys.stderr)
        sys.exit(2)
    hydra_main()


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float:
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
