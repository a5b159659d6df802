"""``xlexp reproduce NAME``: run (or reuse) the experiments behind a published table and compare ours
with the paper's, cell by cell (the work is :func:`xlexp.reproduce.runner.reproduce`)."""

from __future__ import annotations

import argparse
import logging

from xlexp.cli.registry import Verb, add_results_dir, register


def arguments(p: argparse.ArgumentParser) -> None:
    from xlexp.reproduce.spec import available

    p.add_argument("name", nargs="?", help=f"reproduction: {', '.join(available())}")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run (e.g. trainer.device=cuda:1)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the planned runs, the paper's hyperparameters and cost"
    )
    p.add_argument("--subset", help="comma-separated languages to keep, e.g. eng_Latn,hin_Deva,zho_Hans")
    p.add_argument("--variant", action="append", help="variant to run (repeatable; default: the default variants)")
    p.add_argument("--reference", help="another reference CSV with the same columns (default: the shipped one)")
    p.add_argument("--out", help="output folder (default: <results dir>/reproduce/<name>)")
    p.add_argument("--force", action="store_true", help="run GPU configs even without a GPU")
    p.add_argument("--list", action="store_true", help="list the reproductions")
    add_results_dir(p)


def run(args: argparse.Namespace) -> int:
    from xlexp.reproduce.spec import available, load_reproduction

    if args.list or not args.name:
        for n in available():
            r = load_reproduction(n)
            print(f"{n:14s} {r.runs_on:4s} {r.title}")
        return 0
    from xlexp.reproduce.runner import reproduce

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    subset = [c.strip() for c in args.subset.split(",") if c.strip()] if args.subset else None
    reproduce(
        args.name,
        results_dir=args.results_dir,
        dry_run=args.dry_run,
        subset=subset,
        variants=args.variant,
        overrides=args.overrides,
        reference=args.reference,
        out_dir=args.out,
        force=args.force,
    )
    return 0


VERB = register(
    Verb(
        "reproduce",
        "run (or reuse) the experiments behind a published table; print ours, the paper's and Δ per cell, "
        "mean |Δ|, Spearman; write table.md/.tex, Δ heatmap (--list: the reproductions)",
        run=run,
        arguments=arguments,
        parse="intermixed",  # `reproduce NAME --out DIR key=value`: overrides after options too
        description=(
            "Run (or reuse from the results store) the experiments behind a published table, then print ours, the "
            "paper's and Δ per cell with summary statistics, and write cells.csv, table.md/.tex and a Δ heatmap."
        ),
        examples=("xlexp reproduce sib200-mlp --dry-run", "xlexp reproduce --list"),
    )
)
