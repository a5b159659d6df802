"""``xlexp table``: a paper-ready Markdown or LaTeX table of a matrix, mean ± std and averages (the work
is in ``xlexp.views.tables``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xlexp.cli.registry import Verb, add_results_dir, register


def arguments(p: argparse.ArgumentParser) -> None:
    from xlexp.views.tables import FORMATS

    p.add_argument("--experiment", help="experiment name (default: the latest one)")
    p.add_argument("--metric", help="metric (default: the task's primary metric)")
    p.add_argument("--model", help="the model's cells, when the experiment holds several")
    p.add_argument("--task", help="the task's cells, when the experiment holds several")
    p.add_argument("--rows", choices=["source", "target"], default="source", help="what the rows are (default source)")
    p.add_argument("--format", choices=list(FORMATS), default="markdown")
    p.add_argument(
        "--selection",
        choices=["source_dev", "target_dev", "last"],
        help="checkpoint selection rule (default: source_dev when recorded)",
    )
    p.add_argument("--regime", help="regime, when the experiment has several")
    p.add_argument("--k", type=int, help="few-shot K (default: the cells without shots)")
    p.add_argument("--sources", help="comma-separated sources to show, in this order (default: all)")
    p.add_argument("--targets", help="comma-separated targets to show, in this order (default: all)")
    p.add_argument("--digits", type=int, default=1, help="decimals (default 1)")
    p.add_argument("--raw", action="store_true", help="values as recorded (0-1) instead of x100")
    p.add_argument("--names", action="store_true", help="label languages with their names")
    p.add_argument("--no-average", action="store_true", help="leave out the average row and column")
    p.add_argument("--out", help="also write the table to this file")
    add_results_dir(p)


def run(args: argparse.Namespace) -> int:
    from xlexp.views.tables import TableOptions, render_table

    opts = TableOptions(
        rows=args.rows,
        fmt=args.format,
        digits=args.digits,
        percent=not args.raw,
        names=args.names,
        average=not args.no_average,
        sources=_codes(args.sources),
        targets=_codes(args.targets),
    )
    text = render_table(
        args.results_dir,
        args.experiment,
        args.metric,
        opts,
        selection=args.selection,
        k=args.k,
        regime=args.regime,
        model=args.model,
        task=args.task,
    )
    sys.stdout.write(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"-> {out}", file=sys.stderr)
    return 0


def _codes(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


VERB = register(
    Verb(
        "table",
        "paper-ready table: mean ± std, averages (markdown or latex)",
        run=run,
        arguments=arguments,
        description="Paper-ready Markdown or LaTeX table of a matrix.",
        examples=("xlexp table --experiment quickstart --format latex",),
    )
)
