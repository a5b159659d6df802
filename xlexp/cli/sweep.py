"""``xlexp sweep``: Optuna search over composed configs (pruning, resume by re-running, exact n_trials
across workers). The arguments are parsed here; the work is :func:`xlexp.sweep.driver.run_sweep`.
Extra Hydra overrides after the sweep file go to every trial, as they are."""

from __future__ import annotations

import argparse
import os

from xlexp.cli.registry import Verb, add_results_dir, register
from xlexp.errors import require_extra

STORAGE_ENV = "XLEXP_SWEEP_STORAGE"  # xlexp.sweep.storage.STORAGE_ENV (not imported: optuna is slow to import)


def arguments(p: argparse.ArgumentParser) -> None:
    from xlexp.sweep.job import DEFAULT_HEARTBEAT_S

    p.add_argument("sweep", nargs="?", help="sweep file, e.g. sweeps/quickstart.yaml")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every trial (they make another study)")
    p.add_argument(
        "--storage",
        help=f"Optuna RDB URL (default: ${STORAGE_ENV}, else sqlite under <results>/sweeps/); "
        "postgresql://user:pw@host/db for many nodes",
    )
    p.add_argument(
        "--study",
        "--study-name",
        dest="study",  # --study-name: what Optuna's own CLI calls it
        help="study name (default: the sweep file's name, plus a hash of extra overrides)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes on this machine (one per GPU when there are GPUs)"
    )
    p.add_argument("--n-trials", type=int, help="total trials of the study (default: the sweep file's n_trials)")
    p.add_argument(
        "--heartbeat",
        type=int,
        help=f"seconds between trial heartbeats (default {DEFAULT_HEARTBEAT_S}); "
        "a trial silent for 3x this is failed and re-queued",
    )
    p.add_argument("--status", action="store_true", help="print the study's trials and the best config, run nothing")
    p.add_argument(
        "--launcher",
        help="run the workers as jobs of a Hydra launcher: slurm (submitit_slurm array job), "
        "local (submitit_local), or a conf/hydra/launcher option",
    )
    p.add_argument(
        "--launcher-arg",
        action="append",
        default=[],
        metavar="OVERRIDE",
        help="override for the launcher, e.g. hydra.launcher.partition=gpu (repeatable)",
    )
    add_results_dir(p, help="where --status looks for SQLite studies without a sweep file")
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)


def check_storage_extra(storage: str | None) -> None:
    """A PostgreSQL storage needs psycopg: one line naming the extra (Optuna would say only "Failed to
    import DB access module"). ``storage`` None: ``$XLEXP_SWEEP_STORAGE``."""
    if (storage or os.environ.get(STORAGE_ENV, "")).startswith("postgresql"):
        require_extra("psycopg")


def run(args: argparse.Namespace) -> int:
    check_storage_extra(args.storage)
    if args.launcher:
        require_extra("hydra_plugins.hydra_submitit_launcher")
    from xlexp.sweep.driver import SweepRequest, run_sweep

    return run_sweep(
        SweepRequest(
            sweep=args.sweep,
            overrides=tuple(args.overrides),
            storage=args.storage,
            study=args.study,
            workers=args.workers,
            n_trials=args.n_trials,
            heartbeat=args.heartbeat,
            status=args.status,
            launcher=args.launcher,
            launcher_args=tuple(args.launcher_arg),
            results_dir=args.results_dir,
            worker_index=args.worker_index,
        )
    )


VERB = register(
    Verb(
        "sweep",
        "Optuna search (pruning, resume by re-running, exact n_trials across workers); --status: trials "
        "(state, params, value, time) and the best config as an `xlexp run` line",
        run=run,
        arguments=arguments,
        parse="intermixed",
        description=(
            "Optuna search over xlexp configs: sweeps/NAME.yaml names the base experiment, the objective "
            "and the space (Hydra sweep syntax). Re-run the same command to resume."
        ),
        examples=("xlexp sweep sweeps/quickstart.yaml --workers 2", "xlexp sweep --status sweeps/quickstart.yaml"),
    )
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    return VERB.parser().parse_intermixed_args(argv)


def main(argv: list[str]) -> int:
    """``xlexp sweep ARGS`` without the one-line error handling of :mod:`xlexp.cli.main` (an XlexpError
    propagates): what tests and worker scripts call."""
    return VERB.main(argv)
