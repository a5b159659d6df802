"""``xlexp store check [--repair]``: find the results files no reader can use, and move them aside.

Views and runs already skip a bad file with a warning naming it; this command lists every one in
one pass and, with ``--repair``, moves them to ``<results>/quarantine/`` (kept, never deleted) and
removes temp files left by writers that died mid-write. Exit code 1 when bad files remain.
"""

from __future__ import annotations

import argparse

from xlexp.cli.registry import Verb, add_results_dir, register


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["check"], help="check: read every record and prediction file")
    p.add_argument("--repair", action="store_true", help="move bad files to <results>/quarantine/ (kept, not deleted)")
    add_results_dir(p)


def run(args: argparse.Namespace) -> int:
    from xlexp.results.store_check import check_store, quarantine_dir

    good, bad = check_store(args.results_dir, repair=args.repair)
    for path, why in bad:
        print(f"bad: {path} ({why})" + (f" -> moved to {quarantine_dir(args.results_dir)}/" if args.repair else ""))
    print(
        f"{good} good file(s), {len(bad)} bad"
        + ("" if args.repair or not bad else "; run `xlexp store check --repair` to move them aside")
    )
    return 1 if bad and not args.repair else 0


VERB = register(
    Verb(
        "store",
        "check [--repair]: list unreadable record/prediction files; --repair moves them to results/quarantine/",
        run=run,
        arguments=arguments,
        description="Check the results store for unreadable files.",
    )
)
