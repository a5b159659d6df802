"""``xlexp predict``: predict the matrix before paying for it (``xlexp recommend``: :mod:`xlexp.cli.recommend`).

Argument parsing and printing only; the work is in ``xlexp.predict`` (features, completion,
ranking, evaluation, the active chooser) and the display of predicted cells in ``xlexp.views``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from xlexp.cli.registry import Verb, register
from xlexp.config.paths import default_data_dir
from xlexp.errors import XlexpError


def common_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments ``predict`` and ``recommend`` share."""
    p.add_argument("--experiment", help="experiment whose matrix to complete (default: the latest, or --task/--model)")
    p.add_argument("--task", help="all zero-shot records of this task (with --model) instead of one experiment")
    p.add_argument(
        "--model", help="the model whose records to use (with --task; or with --experiment when it holds several)"
    )
    p.add_argument("--metric", help="metric (default: the experiment's default)")
    p.add_argument(
        "--selection", choices=["source_dev", "target_dev", "last"], help="checkpoint rule (default: source_dev)"
    )
    p.add_argument(
        "--sources", help="comma-separated sources to predict too, or 'all' (task languages with a train split)"
    )
    p.add_argument("--targets", help="comma-separated targets to predict too, or 'all'")
    p.add_argument(
        "--no-model-features",
        action="store_true",
        help="skip the model's view of each language (model similarity, sub-word overlap)",
    )
    p.add_argument("--results-dir", default=os.environ.get("XLEXP_RESULTS_DIR", "results"))
    p.add_argument(
        "--data-dir", default=default_data_dir()
    )  # $XLEXP_DATA_DIR, ../shared/data or ./data, as `xlexp run`
    p.add_argument("--cache-dir", default=os.environ.get("XLEXP_CACHE_DIR", str(Path.home() / ".cache" / "xlexp")))


def split_list(v: str | None) -> list[str] | None:
    return [x.strip() for x in v.split(",") if x.strip()] if v else None


def print_note(note: str) -> None:
    if note:
        print(note)


def _md(df, floatfmt: str = ".3f") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(format(v, floatfmt) if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def _evaluate(args) -> int:
    import logging

    import numpy as np

    from xlexp.predict.evaluate import active_evaluation, loto_ranking, mask_evaluation
    from xlexp.predict.predictor import build_features, matrix_from_csv, measured_matrix
    from xlexp.views.progress import PhaseLog, progress_bar, progress_enabled, setup_console_logging

    on_terminal = progress_enabled("auto")
    if not on_terminal:  # a log file or a cluster job: progress as log lines on stderr (model features, stages)
        setup_console_logging()

    if args.matrix_csv:
        wide = matrix_from_csv(args.matrix_csv)
        task = model = None
        name = Path(args.matrix_csv).name
    else:
        m = measured_matrix(args.results_dir, args.experiment, args.task, args.model, args.metric, args.selection)
        wide, task, model, name = m.matrix, m.task, m.model, f"{m.experiment} ({m.metric})"
    sources, targets = [str(s) for s in wide.index], [str(t) for t in wide.columns]
    y = wide.to_numpy(dtype=float)
    budget = _budget(args.budget) if args.budget else None  # checked before minutes of evaluation, not after
    if args.jobs == 0:
        raise XlexpError("--jobs must be a number of processes (1: this process) or -1 for every core; got 0")
    print(f"matrix {name}: {len(sources)} sources x {len(targets)} targets, {int(np.isfinite(y).sum())} measured cells")
    if args.text_task and not (args.text_model or model):
        raise XlexpError("--text-task needs --text-model (a --matrix-csv matrix has no model)")
    feats = build_features(
        task,
        model,
        sources,
        targets,
        Path(args.data_dir),
        Path(args.cache_dir),
        not args.no_model_features,
        args.text_sentences,
        args.text_task,
        args.text_model,
    )
    print_note(feats.missing_note())
    print(f"features: {', '.join(feats.names)}")
    out = []
    fractions = [float(f) for f in args.observed.split(",")]
    with progress_bar(on_terminal) as bars:  # each table prints above the bars when ready

        def stage(description: str):
            if on_terminal:
                task = bars.add_task(description, total=None, info="")
                return lambda done, total: bars.update(task, completed=done, total=total)
            phase: list[PhaseLog] = []

            def step(done: int, total: int) -> None:  # a 205 x 205 matrix evaluates for an hour
                if not phase:
                    phase.append(PhaseLog(logging.getLogger("xlexp.predict"), description, total, "step(s)"))
                phase[0].advance(done - phase[0].done)

            return step

        masks = mask_evaluation(y, feats, fractions, args.masks, on_step=stage("random masks"), jobs=args.jobs)
        print(
            f"\nhidden-cell error, {args.masks} random masks per observed fraction (coverage: share of hidden cells in the 90% interval)"
        )
        print(_md(masks))
        out.append(("masks", masks))
        if not args.skip_loto:
            loto = loto_ranking(y, feats, on_step=stage("leave one target out"), jobs=args.jobs)
            print(
                "\nleave-one-target-out source ranking (NDCG@3; best_in_top: the measured best source is in the top 3)"
            )
            print(_md(loto))
            out.append(("loto", loto))
        if budget is not None:
            n = budget.budget_of(len(sources))
            act = active_evaluation(y, feats, n, on_step=stage("active filling vs random"), jobs=args.jobs)
            print(f"\nactive filling: train {n} of {len(sources)} sources, predict the rest (MAE on the rest)")
            print(_md(act))
            out.append(("active", act))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n\n".join(f"## {k}\n\n{_md(v)}" for k, v in out) + "\n", encoding="utf-8")
        print(f"\ntables -> {args.out}")
    return 0


def _budget(text: str):
    """``--budget N`` or ``N%`` as the run's own setting (``langpair.budget``): one parser, one error."""
    from xlexp.config.schema import LangPairSettings

    value = int(text) if text.strip().isdigit() else text.strip()
    try:
        return LangPairSettings(budget=value)
    except XlexpError:
        raise XlexpError(f"--budget must be a positive number of sources or a share like 30%; got {text!r}") from None


def _fill(args, overrides: list[str]) -> int:
    """``xlexp predict --fill N``: the same as ``xlexp run task=T model=M name=E langpair.sources=[...]
    langpair.budget=N`` (``xlexp.fill``): N sources trained one by one as normal runs, each
    chosen by what it adds to the prediction, then the rest predicted. Resumable like every run."""
    import subprocess

    if not (args.task and args.model and args.experiment and args.sources):
        raise XlexpError("xlexp predict --fill needs --task, --model, --experiment and --sources (the candidates)")
    if args.no_model_features:
        raise XlexpError(
            "--no-model-features does not apply to --fill (the run uses the features it can build); drop it"
        )
    paths = [
        f"paths.{k}={v}"
        for k, v in (("results_dir", args.results_dir), ("data_dir", args.data_dir), ("cache_dir", args.cache_dir))
        if not any(o.startswith(f"paths.{k}=") for o in overrides)
    ]
    command = [
        sys.executable,
        "-m",
        "xlexp.cli.run",
        f"task={args.task}",
        f"model={args.model}",
        f"langpair.sources=[{','.join(split_list(args.sources))}]",
        f"langpair.budget={args.fill}",
        f"name={args.experiment}",
        *paths,
        *overrides,
    ]
    print(f"xlexp run {' '.join(shlex.quote(c) for c in command[3:])}", flush=True)
    return subprocess.run(command).returncode


def arguments(p: argparse.ArgumentParser) -> None:
    common_arguments(p)
    p.add_argument("--evaluate", action="store_true", help="hide cells of a complete matrix and score the predictor")
    p.add_argument("--matrix-csv", help="with --evaluate: a complete matrix from a CSV instead of the store")
    p.add_argument("--observed", default="0.05,0.1,0.2", help="observed fractions for --evaluate")
    p.add_argument("--masks", type=int, default=10, help="random masks per fraction for --evaluate")
    p.add_argument("--budget", help="with --evaluate: also score active filling with N (or N%%) sources vs random")
    p.add_argument("--skip-loto", action="store_true", help="with --evaluate: no leave-one-target-out ranking")
    p.add_argument(
        "--jobs",
        type=int,
        default=-1,
        help=(
            "with --evaluate: processes for the masks, targets and random sets (-1: every core, 1: this process; "
            "the numbers do not depend on it)"
        ),
    )
    p.add_argument("--out", help="with --evaluate: write the tables as markdown here")
    p.add_argument(
        "--text-task",
        metavar="TASK",
        help=(
            "with --evaluate: the model features (model_similarity, vocab_overlap) from this task's text, each "
            "language matched to the task's by language code (en -> eng_Latn; the usual script where the task has "
            "several), e.g. sib200 (parallel Flores-200 sentences) for a --matrix-csv matrix, which has no task text; "
            "a language the task lacks goes without them"
        ),
    )
    p.add_argument(
        "--text-model",
        metavar="MODEL",
        help=(
            "with --text-task: the encoder whose mean-pooled hidden states are compared (a model config name, e.g. "
            "me5_small_offline; default: the matrix's model)"
        ),
    )
    p.add_argument(
        "--text-sentences",
        type=int,
        default=200,
        metavar="N",
        help="sentences per language for the model features (default 200; cached per model and text)",
    )
    p.add_argument(
        "--fill",
        type=int,
        metavar="N",
        help=(
            "active filling: the same as `xlexp run task=T model=M name=E langpair.sources=[...] langpair.budget=N`: "
            "N of the --sources trained (normal runs, each chosen by what it adds to the prediction), the rest "
            "predicted; needs --task, --model, --experiment, --sources; other key=value arguments go to `xlexp run`; "
            "re-running resumes"
        ),
    )


def run(args: argparse.Namespace) -> int:
    extra = args.extra  # key=value arguments: overrides of `xlexp run` for --fill
    bad = [a for a in extra if "=" not in a or a.startswith("-")]
    if bad or (extra and not args.fill):
        VERB.parser().error(f"unrecognized arguments: {' '.join(bad or extra)}")
    if args.evaluate:
        return _evaluate(args)
    if args.fill:
        return _fill(args, extra)
    from xlexp.predict.predictor import predict_matrix
    from xlexp.views.console import show_predicted
    from xlexp.views.progress import setup_console_logging

    setup_console_logging()  # on stderr: what is computed and how long, before it is (the table goes to stdout)
    pred = predict_matrix(
        args.results_dir,
        args.experiment,
        args.task,
        args.model,
        args.metric,
        args.selection,
        split_list(args.sources),
        split_list(args.targets),
        Path(args.data_dir),
        Path(args.cache_dir),
        not args.no_model_features,
    )
    show_predicted(pred.frame(), pred.measured.experiment, pred.measured.metric)
    n_pred = int((~pred.completion.observed).sum())
    chosen = pred.completion.settings
    print(
        f"{n_pred} predicted cell(s) ({chosen.describe() if chosen else '?'}; out-of-fold MAE on measured cells "
        f"{pred.completion.oob_mae:.3f}) -> {pred.path}"
    )
    print_note(pred.features.missing_note())
    print(
        f"`xlexp matrix --experiment {shlex.quote(pred.measured.experiment)} --predicted` shows them with the measured cells"
    )
    return 0


VERB = register(
    Verb(
        "predict",
        "complete the matrix: predicted cells with intervals (kept apart from the records); --evaluate hides "
        "cells of a complete matrix and scores the predictor vs baselines; --fill N: active filling",
        run=run,
        arguments=arguments,
        parse="known",
        description=(
            "Complete a partially measured source x target matrix: every missing cell gets a predicted score and "
            "an interval, from the measured cells plus language features (URIEL, script, sizes, the model's view). "
            "Predicted cells go to <results>/predicted/, never to the records. --evaluate scores the predictor "
            "on a complete matrix by hiding cells."
        ),
        examples=("xlexp predict --experiment quickstart --sources all",),
    )
)
