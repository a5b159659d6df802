"""The reporting verbs of ``xlexp``: ``report``, ``compare`` and ``table`` (argument parsing only;
the work is in ``xlexp.views.html``, ``xlexp.tracking.wandb_tracker``, ``xlexp.views.compare`` and
``xlexp.views.tables``, which read the store through ``xlexp.results.query``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _results_dir_default() -> str:
    return os.environ.get("XLEXP_RESULTS_DIR", "results")


def _add_results_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results-dir", default=_results_dir_default(),
                   help="results store (default: $XLEXP_RESULTS_DIR or ./results)")


def report_main(argv: list[str]) -> int:
    from xlexp.views.html import write_report
    from xlexp.tracking.wandb_tracker import MODES, WandbOptions, log_experiment

    p = argparse.ArgumentParser(prog="xlexp report", description=(
        "Write a self-contained HTML report of the results store (heatmaps, sortable tables, K-curves, "
        "selection-rule gaps); optionally log an experiment's full matrix as one W&B run."))
    p.add_argument("--experiment", action="append", help="experiment to include (repeatable; default: all)")
    p.add_argument("--metric", action="append", help="metric to show (repeatable; default: all)")
    p.add_argument("--out", help="output folder (default: <results dir>/report); the page is <out>/index.html")
    p.add_argument("--plotlyjs", choices=["inline", "alongside"], default="inline",
                   help="inline: one self-contained file (default); alongside: plotly.min.js next to the page")
    p.add_argument("--colour-scale", choices=["metric", "heatmap"], default="metric", help=(
        "heatmap colours: one range per metric across every heatmap (default: the same value, the same colour) "
        "or fitted to each heatmap"))
    p.add_argument("--wandb", metavar="NAME", help="also log experiment NAME's full S x T matrix as one W&B run")
    p.add_argument("--wandb-mode", choices=list(MODES), default="auto",
                   help="auto: online with an API key, else offline (default)")
    p.add_argument("--wandb-project", default="xlexp")
    p.add_argument("--wandb-entity")
    p.add_argument("--wandb-dir", help="folder for W&B run folders (default: the results dir)")
    p.add_argument("--wandb-template", metavar="DIR",
                   help="write a W&B workspace template for transfer matrices to DIR (a heatmap custom chart over "
                        "matrix/long with metric/rule/experiment selectors, runs grouped by experiment) and stop")
    _add_results_dir(p)
    args = p.parse_args(argv)
    if args.wandb_template:
        from xlexp.tracking.wandb_template import write_template

        t = write_template(args.wandb_template, args.results_dir, args.wandb_project, args.wandb_entity)
        print(f"W&B workspace template: {', '.join(str(f) for f in t.files)} (see README.md there)")
        return 0
    result = write_report(args.results_dir, args.out, args.experiment, args.metric, args.plotlyjs, args.colour_scale)
    print(f"report: {result.path.resolve()} ({len(result.experiments)} experiment(s), {result.figures} figures)")
    if args.wandb:
        opts = WandbOptions(mode=args.wandb_mode, project=args.wandb_project, entity=args.wandb_entity,
                            dir=args.wandb_dir or args.results_dir)
        where = log_experiment(args.results_dir, args.wandb, opts)
        print(f"W&B run for '{args.wandb}': {where}")
    return 0


def compare_main(argv: list[str]) -> int:
    from xlexp.views.compare import compare, legend, render, write_outputs
    from xlexp.views.console import console

    p = argparse.ArgumentParser(prog="xlexp compare", description=(
        "Delta matrix B - A of two experiments (or run ids), with a paired bootstrap over test examples "
        "(or over seeds when there are no per-example predictions) marking significant cells."))
    p.add_argument("a", help="experiment name or run id (the baseline)")
    p.add_argument("b", help="experiment name or run id")
    p.add_argument("--metric", help="any test metric of A (default: the task's primary metric, as in every view); "
                        "accuracy, macro_f1: paired bootstrap over test examples; exact_match / f1 (extractive QA): "
                        "over per-question scores; any other (span_f1, chrf_*, ...): bootstrap over seeds")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap RNG seed (default 0)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level for '*' (default 0.05)")
    p.add_argument("--selection", choices=["source_dev", "target_dev", "last"],
                   help="checkpoint selection rule (default: source_dev when recorded)")
    p.add_argument("--k", type=int, help="few-shot K to compare (default: the cells without shots)")
    p.add_argument("--k-b", type=int, help="K of B only (e.g. regime=icl demonstrations against a fine-tuned A)")
    _add_results_dir(p)
    args = p.parse_args(argv)
    c = compare(args.results_dir, args.a, args.b, args.metric, args.n_boot, args.seed, args.alpha, args.selection,
                args.k, args.k_b)
    console.print(render(c))
    console.print(legend(c), highlight=False)
    csv_path, png_path = write_outputs(c, args.results_dir)
    n_sig = int(c.cells["significant"].sum())
    console.print(f"{n_sig} of {len(c.cells)} cell(s) differ significantly", highlight=False)
    console.print(f"CSV -> {csv_path}", highlight=False, soft_wrap=True)
    console.print(f"heatmap -> {png_path}", highlight=False, soft_wrap=True)
    return 0


def table_main(argv: list[str]) -> int:
    from xlexp.views.tables import FORMATS, TableOptions, render_table

    p = argparse.ArgumentParser(prog="xlexp table", description="Paper-ready Markdown or LaTeX table of a matrix.")
    p.add_argument("--experiment", help="experiment name (default: the latest one)")
    p.add_argument("--metric", help="metric (default: the task's primary metric)")
    p.add_argument("--model", help="the model's cells, when the experiment holds several")
    p.add_argument("--task", help="the task's cells, when the experiment holds several")
    p.add_argument("--rows", choices=["source", "target"], default="source", help="what the rows are (default source)")
    p.add_argument("--format", choices=list(FORMATS), default="markdown")
    p.add_argument("--selection", choices=["source_dev", "target_dev", "last"],
                   help="checkpoint selection rule (default: source_dev when recorded)")
    p.add_argument("--regime", help="regime, when the experiment has several")
    p.add_argument("--k", type=int, help="few-shot K (default: the cells without shots)")
    p.add_argument("--sources", help="comma-separated sources to show, in this order (default: all)")
    p.add_argument("--targets", help="comma-separated targets to show, in this order (default: all)")
    p.add_argument("--digits", type=int, default=1, help="decimals (default 1)")
    p.add_argument("--raw", action="store_true", help="values as recorded (0-1) instead of x100")
    p.add_argument("--names", action="store_true", help="label languages with their names")
    p.add_argument("--no-average", action="store_true", help="leave out the average row and column")
    p.add_argument("--out", help="also write the table to this file")
    _add_results_dir(p)
    args = p.parse_args(argv)
    opts = TableOptions(rows=args.rows, fmt=args.format, digits=args.digits, percent=not args.raw, names=args.names,
                        average=not args.no_average, sources=_codes(args.sources), targets=_codes(args.targets))
    text = render_table(args.results_dir, args.experiment, args.metric, opts, selection=args.selection, k=args.k,
                        regime=args.regime, model=args.model, task=args.task)
    sys.stdout.write(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"-> {out}", file=sys.stderr)
    return 0


def _codes(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


VERBS = {"report": report_main, "compare": compare_main, "table": table_main}
