"""``xlexp matrix``: print an experiment's source x target matrix; write its CSV and heatmap PNG next
to the records (:func:`xlexp.views.console.show`)."""

from __future__ import annotations

import argparse

from xlexp.cli.registry import Verb, add_results_dir, register


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", help="experiment name (default: the latest one)")
    p.add_argument("--metric", action="append", help="metric to show (repeatable; default: all of the experiment's)")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--selection",
        choices=["source_dev", "target_dev", "last"],
        help="checkpoint selection rule (default: source_dev)",
    )
    p.add_argument("--regime", help="only records of this regime, e.g. few_shot (shows mean ± std per K and K-curves)")
    p.add_argument("--model", help="the model's cells, when the experiment holds several (never averaged together)")
    p.add_argument("--task", help="the task's cells, when the experiment holds several")
    p.add_argument("--gap", action="store_true", help="also print the per-target gap between selection rules")
    add_results_dir(p)
    p.add_argument(
        "--predicted",
        action="store_true",
        help="also show the cells `xlexp predict` predicted (dim/hatched, never mixed with measured records)",
    )


def run(args: argparse.Namespace) -> int:
    from xlexp.views.console import show

    show(
        args.results_dir,
        args.experiment,
        args.metric,
        args.split,
        args.selection,
        args.regime,
        args.gap,
        predicted=args.predicted,
        model=args.model,
        task=args.task,
    )
    return 0


VERB = register(
    Verb(
        "matrix",
        "print an experiment's matrix; write CSV + heatmap PNG next to the records",
        run=run,
        arguments=arguments,
        description="Show a source x target matrix from the results store.",
        examples=("xlexp matrix --experiment quickstart --gap",),
    )
)
