"""``xlexp compare A B``: the delta matrix B - A with bootstrap significance marks (the work is in
``xlexp.views.compare``)."""

from __future__ import annotations

import argparse

from xlexp.cli.registry import Verb, add_results_dir, register


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="experiment name or run id (the baseline)")
    p.add_argument("b", help="experiment name or run id")
    p.add_argument(
        "--metric",
        help="any test metric of A (default: the task's primary metric, as in every view); "
        "accuracy, macro_f1: paired bootstrap over test examples; exact_match / f1 (extractive QA): "
        "over per-question scores; any other (span_f1, chrf_*, ...): bootstrap over seeds",
    )
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap RNG seed (default 0)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level for '*' (default 0.05)")
    p.add_argument(
        "--selection",
        choices=["source_dev", "target_dev", "last"],
        help="checkpoint selection rule (default: source_dev when recorded)",
    )
    p.add_argument("--k", type=int, help="few-shot K to compare (default: the cells without shots)")
    p.add_argument("--k-b", type=int, help="K of B only (e.g. regime=icl demonstrations against a fine-tuned A)")
    add_results_dir(p)


def run(args: argparse.Namespace) -> int:
    from xlexp.views.compare import compare, legend, render, write_outputs
    from xlexp.views.console_tables import console

    c = compare(
        args.results_dir,
        args.a,
        args.b,
        args.metric,
        args.n_boot,
        args.seed,
        args.alpha,
        args.selection,
        args.k,
        args.k_b,
    )
    console.print(render(c))
    console.print(legend(c), highlight=False)
    csv_path, png_path = write_outputs(c, args.results_dir)
    n_sig = int(c.cells["significant"].sum())
    console.print(f"{n_sig} of {len(c.cells)} cell(s) differ significantly", highlight=False)
    console.print(f"CSV -> {csv_path}", highlight=False, soft_wrap=True)
    console.print(f"heatmap -> {png_path}", highlight=False, soft_wrap=True)
    return 0


VERB = register(
    Verb(
        "compare",
        "delta matrix B - A (experiments or run ids) with bootstrap significance marks",
        run=run,
        arguments=arguments,
        description=(
            "Delta matrix B - A of two experiments (or run ids), with a paired bootstrap over test examples "
            "(or over seeds when there are no per-example predictions) marking significant cells."
        ),
        examples=("xlexp compare weak strong --metric accuracy",),
    )
)
