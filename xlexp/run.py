"""Hydra entry point: compose the config, call the pipeline, return the objective.

``xlexp run ...`` and ``python -m xlexp.run ...`` are the same command (the latter is what
torchrun and cluster launchers call).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from xlexp.errors import XlexpError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("xlexp")


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from xlexp.pipeline import run_experiment  # after Hydra parsed args: `--help` stays fast

    try:
        return run_experiment(cfg)
    except XlexpError as e:
        log.error("%s", e)
        print(f"xlexp: error: {e}", file=sys.stderr)
        sys.exit(2)


def compose_config(overrides: list[str], job_name: str = "xlexp", what: str = "run"):
    """The config ``xlexp run <overrides>`` would get, via Hydra's compose API; works inside a
    running Hydra app too (the submitit launcher's jobs), whose global state is put back afterwards."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf.errors import OmegaConfBaseException

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name=job_name):
            return compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise XlexpError(f"cannot compose the {what} config {overrides}: {str(e).strip().splitlines()[0]}") from None
    finally:
        restore_gh_from_backup(backup)


def rank_overrides(env: dict[str, str] = os.environ) -> list[str]:
    """Under torchrun only rank 0 keeps Hydra's log file and saved config; the other ranks log
    nothing below WARNING (to stderr) and write no .hydra folder."""
    if env.get("RANK", "0") in ("", "0"):
        return []
    return ["hydra/job_logging=none", "hydra.output_subdir=null"]


if __name__ == "__main__":
    sys.argv += rank_overrides()
    main()
