"""``xlexp report``: a self-contained HTML report of the results store (the work is in
``xlexp.views.html``; ``--wandb`` in ``xlexp.tracking.wandb_tracker``, ``--wandb-template`` in
``xlexp.tracking.wandb_template``)."""

from __future__ import annotations

import argparse

from xlexp.cli.registry import Verb, add_results_dir, register


def arguments(p: argparse.ArgumentParser) -> None:
    from xlexp.tracking.wandb_tracker import MODES

    p.add_argument("--experiment", action="append", help="experiment to include (repeatable; default: all)")
    p.add_argument("--metric", action="append", help="metric to show (repeatable; default: all)")
    p.add_argument("--out", help="output folder (default: <results dir>/report); the page is <out>/index.html")
    p.add_argument(
        "--plotlyjs",
        choices=["inline", "alongside"],
        default="inline",
        help="inline: one self-contained file (default); alongside: plotly.min.js next to the page",
    )
    p.add_argument(
        "--colour-scale",
        choices=["metric", "heatmap"],
        default="metric",
        help=(
            "heatmap colours: one range per metric across every heatmap (default: the same value, the same colour) "
            "or fitted to each heatmap"
        ),
    )
    p.add_argument("--wandb", metavar="NAME", help="also log experiment NAME's full S x T matrix as one W&B run")
    p.add_argument(
        "--wandb-mode", choices=list(MODES), default="auto", help="auto: online with an API key, else offline (default)"
    )
    p.add_argument("--wandb-project", default="xlexp")
    p.add_argument("--wandb-entity")
    p.add_argument("--wandb-dir", help="folder for W&B run folders (default: the results dir)")
    p.add_argument(
        "--wandb-template",
        metavar="DIR",
        help="write a W&B workspace template for transfer matrices to DIR (a heatmap custom chart over "
        "matrix/long with metric/rule/experiment selectors, runs grouped by experiment) and stop",
    )
    add_results_dir(p)


def run(args: argparse.Namespace) -> int:
    from xlexp.tracking.wandb_tracker import WandbOptions, log_experiment
    from xlexp.views.html import write_report

    if args.wandb_template:
        from xlexp.tracking.wandb_template import write_template

        t = write_template(args.wandb_template, args.results_dir, args.wandb_project, args.wandb_entity)
        print(f"W&B workspace template: {', '.join(str(f) for f in t.files)} (see README.md there)")
        return 0
    result = write_report(args.results_dir, args.out, args.experiment, args.metric, args.plotlyjs, args.colour_scale)
    print(f"report: {result.path.resolve()} ({len(result.experiments)} experiment(s), {result.figures} figures)")
    if args.wandb:
        opts = WandbOptions(
            mode=args.wandb_mode,
            project=args.wandb_project,
            entity=args.wandb_entity,
            dir=args.wandb_dir or args.results_dir,
        )
        where = log_experiment(args.results_dir, args.wandb, opts)
        print(f"W&B run for '{args.wandb}': {where}")
    return 0


VERB = register(
    Verb(
        "report",
        "self-contained HTML report (heatmaps, tables, K-curves, selection gaps); --wandb NAME also logs "
        "that experiment's full matrix as one W&B run; --wandb-template DIR writes a W&B workspace template",
        run=run,
        arguments=arguments,
        description=(
            "Write a self-contained HTML report of the results store (heatmaps, sortable tables, K-curves, "
            "selection-rule gaps); optionally log an experiment's full matrix as one W&B run."
        ),
        examples=("xlexp report --experiment quickstart --out report/",),
    )
)
