"""Hydra entry point: compose the config, call the experiment runner, return the objective.

``xlexp run ...`` and ``python -m xlexp.cli.run ...`` are the same command (the latter is what
torchrun and cluster launchers call). Both go through :func:`main`, which first puts the
``XLEXP_CONFIG_PATH`` folders on Hydra's search path (a bad entry: one line, exit code 2).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import hydra
from omegaconf import DictConfig

from xlexp.config.compose import CONF_DIR, normalize_overrides, register_search_path
from xlexp.errors import XlexpError, debug, missing_extra

log = logging.getLogger("xlexp")


def main() -> None:
    """``xlexp run``: the user's config folders first, then Hydra (which parses ``sys.argv``)."""
    try:
        register_search_path(sys.argv[1:])
    except XlexpError as e:
        print(f"xlexp: error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = normalize_overrides(sys.argv[1:])  # `+experiment=X` and `experiment=X` both work
    hydra_main()


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float:
    from xlexp.experiment.runner import run_experiment  # after Hydra parsed args: `--help` stays fast

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return run_experiment(cfg)
    except Terminated as e:  # unwinds through the finally blocks: checkpoints are removed, nothing half-written
        _log_to_files(f"stopped by {e}")
        print(f"xlexp: stopped by {e}: units finished before it kept their records; the unit in progress wrote "
              f"none (re-run the same command to redo it)", file=sys.stderr)
        sys.exit(143)
    except (XlexpError, ImportError) as e:
        if isinstance(e, ImportError):  # an optional extra that is not installed: one line naming it
            if missing_extra(e) is None or debug():
                raise
            e = missing_extra(e)
        _log_to_files(f"error: {e}")  # the run's log file keeps it; the terminal gets it once
        if debug():
            raise
        print(f"xlexp: error: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(BaseException):
    """SIGTERM (``kill``, a cluster's time limit or preemption) during a run."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated(f"signal {signum} (SIGTERM)")


def _log_to_files(message: str) -> None:
    """Write to the log files only (Hydra's run.log), not to the console handler: the error line is
    printed once, by the caller."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def rank_overrides(env: dict[str, str] = os.environ) -> list[str]:
    """Under torchrun only rank 0 keeps Hydra's log file and saved config; the other ranks log
    nothing below WARNING (to stderr) and write no .hydra folder."""
    if env.get("RANK", "0") in ("", "0"):
        return []
    return ["hydra/job_logging=none", "hydra.output_subdir=null"]


if __name__ == "__main__":
    sys.argv += rank_overrides()
    main()
