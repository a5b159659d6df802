"""``xlexp dashboard``: optuna-dashboard for a sweep storage, on 127.0.0.1 (the work is
:func:`xlexp.sweep.dashboard.run_dashboard`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from xlexp.cli.registry import Verb, add_results_dir, register
from xlexp.cli.sweep import STORAGE_ENV, check_storage_extra
from xlexp.errors import require_extra


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage",
        default=os.environ.get(STORAGE_ENV),
        help=f"Optuna storage URL (default: ${STORAGE_ENV}, else the one SQLite file under <results>/sweeps/)",
    )
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--host", default="127.0.0.1", help="bind address (default 127.0.0.1: the dashboard can change studies)"
    )
    add_results_dir(p, help=None)


def run(args: argparse.Namespace) -> int:
    check_storage_extra(args.storage)
    require_extra("optuna_dashboard")
    from xlexp.sweep.dashboard import run_dashboard

    return run_dashboard(args.storage, Path(args.results_dir), args.host, args.port)


VERB = register(
    Verb(
        "dashboard",
        "optuna-dashboard for a sweep storage, on 127.0.0.1",
        run=run,
        arguments=arguments,
        description="optuna-dashboard for a sweep storage (127.0.0.1 only).",
        examples=("xlexp dashboard --port 8080",),
    )
)
