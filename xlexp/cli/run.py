"""Hydra entry point: compose the config, run its stage (active filling or one experiment), return the objective.

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
from typing import TYPE_CHECKING

from xlexp.cli.registry import Verb, register, version
from xlexp.config.compose import CONF_DIR, normalize_overrides, register_search_path
from xlexp.errors import XlexpError, debug, missing_extra, require_extra

if TYPE_CHECKING:
    from omegaconf import DictConfig

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


def hydra_main() -> None:
    """Hydra's app around :func:`run_config`; decorated here, not at import, so that importing this
    module (``xlexp --help`` imports every verb) does not import Hydra."""
    import hydra

    hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")(run_config)()


def run_config(cfg: DictConfig) -> float:
    """The composed config's stage (:func:`dispatch`), with SIGTERM and errors turned into one line."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return dispatch(cfg)
    except Terminated as e:  # unwinds through the finally blocks: checkpoints are removed, nothing half-written
        _log_to_files(f"stopped by {e}")
        print(
            f"xlexp: stopped by {e}: units finished before it kept their records; the unit in progress wrote "
            f"none (re-run the same command to redo it)",
            file=sys.stderr,
        )
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


def dispatch(cfg: DictConfig) -> float:
    """The stage a composed config asks for: active filling (``langpair.budget``, :mod:`xlexp.fill`)
    above the experiment, else one experiment; both from the settings resolved once here."""
    from xlexp.experiment.runner import resolve_settings, run_settings  # after Hydra parsed args: `--help` stays fast

    s = resolve_settings(cfg)
    if s.langpair.budget is not None:
        from xlexp import fill

        return fill.run(s)
    return run_settings(s)


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


def passthrough(rest: list[str]) -> int:
    """``xlexp run``: Hydra, except for what Hydra gets wrong for a verb of another command: its
    ``--version`` (Hydra's only) and its shell completion (see :mod:`xlexp.cli.completion`)."""
    from xlexp.cli import completion

    if "--version" in rest:
        import hydra

        print(f"xlexp {version()} (Hydra {hydra.__version__})")
        return 0
    if any(a.startswith("hydra/launcher=xlexp_") or a.startswith("hydra/launcher=submitit") for a in rest):
        require_extra("hydra_plugins.hydra_submitit_launcher")  # one job per source: one line, not Hydra's error
    request = completion.completion_request(rest)
    if request is not None and request[0] in ("install", "uninstall"):
        return completion.print_script(request[1], uninstall=request[0] == "uninstall")
    sys.argv = ["xlexp run", *rest]
    if request is not None and request[0] == "query" and "COMP_LINE" in os.environ:
        import contextlib
        import io

        os.environ["COMP_LINE"] = completion.hydra_query_line(os.environ["COMP_LINE"])
        os.environ["COMP_POINT"] = str(len(os.environ["COMP_LINE"]))
        answer = io.StringIO()
        with contextlib.redirect_stdout(answer):
            main()
        print(" ".join(completion.fix_candidates(answer.getvalue().split())))
        return 0
    main()
    return 0


VERB = register(
    Verb(
        "run",
        "train and evaluate a source x target matrix (Hydra overrides; `xlexp run --help`: groups and options); "
        "finished units are skipped (resume by content), rerun=true trains them again; langpair.budget=N: active "
        "filling",
        passthrough=passthrough,
        examples=(
            "xlexp run +experiment=quickstart",
            "xlexp run model=tiny_random langpair=nusax_all_all",
            "xlexp run -m langpair.sources=[eng],[ind]                    (Hydra multirun)",
            "xlexp run -m hydra/launcher=xlexp_slurm langpair.sources=eng,ind   (one job per source)",
        ),
    )
)


if __name__ == "__main__":
    sys.argv += rank_overrides()
    main()
