"""``xlexp recommend``: the best sources for a target, measured or predicted (with an interval and the
features that drove it), and the sources to train next (the work is in ``xlexp.predict``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from xlexp.cli.predict import common_arguments, print_note, split_list
from xlexp.cli.registry import Verb, register
from xlexp.errors import XlexpError


def arguments(p: argparse.ArgumentParser) -> None:
    common_arguments(p)
    p.add_argument("--target", action="append", help="target language (repeatable)")
    p.add_argument("--k", type=int, default=5, help="how many sources to list")
    p.add_argument(
        "--next", type=int, metavar="N", help="print the N sources whose training helps the predicted matrix most"
    )
    p.add_argument(
        "--hide-target",
        action="store_true",
        help="ignore the targets' measured cells (what xlexp would recommend before testing them) and "
        "show the measured values beside the predictions",
    )


def run(args: argparse.Namespace) -> int:
    if not args.target and not args.next:
        raise XlexpError("xlexp recommend: give --target LANG (repeatable) or --next N")
    import numpy as np

    from xlexp.predict.active import choose_sources
    from xlexp.predict.predictor import predict_matrix
    from xlexp.predict.rank import recommend

    targets = split_list(args.targets) or []
    targets = list(dict.fromkeys([*targets, *(args.target or [])]))
    pred = predict_matrix(
        args.results_dir,
        args.experiment,
        args.task,
        args.model,
        args.metric,
        args.selection,
        split_list(args.sources),
        targets or None,
        Path(args.data_dir),
        Path(args.cache_dir),
        not args.no_model_features,
        write=False,
        hide_targets=(args.target or []) if args.hide_target else None,
    )
    print_note(pred.features.missing_note())
    truth = pred.measured.matrix
    for t in args.target or []:
        table = recommend(
            pred.completion, pred.y, pred.sources, pred.targets, t, pred.features.values, pred.features.names, args.k
        )
        hidden = " (its measured cells hidden)" if args.hide_target else ""
        print(
            f"\n{pred.measured.experiment}: best sources for {t}{hidden} ({pred.measured.metric}; "
            f"* = predicted, [90% interval])"
        )
        if t in pred.targets and not pred.completion.observed[:, pred.targets.index(t)].any():
            print(
                f"  no measured cell for {t}: its own difficulty is unknown, so the scores are those of an average "
                f"target and the intervals leave that out; read the ranking, not the level"
            )
        best = None
        if args.hide_target and t in truth.columns:
            col = truth[t].drop(index=[s for s in truth.index if s not in set(table["source"]) | set(pred.sources)])
            from xlexp.predict.rank import transfer_candidates

            cands = [pred.sources[i] for i in transfer_candidates(pred.sources, t)]
            col = col.reindex(cands).dropna()
            best = str(col.idxmax()) if not col.empty else None
        for r in table.itertuples():
            value = f"{r.score:.3f}" if r.measured else f"{r.score:.3f}* [{r.low:.3f}, {r.high:.3f}]"
            what = "measured" if r.measured else "predicted: " + (r.drivers or "-")
            if (
                args.hide_target
                and t in truth.columns
                and r.source in truth.index
                and np.isfinite(truth.at[r.source, t])
            ):
                what += f" | measured {truth.at[r.source, t]:.3f}" + (" (measured best)" if r.source == best else "")
            print(f"  {r.rank}. {r.source:<14} {value:<28} {what}")
        if best is not None and best not in set(table["source"].head(3)):
            print(f"  measured best source {best} ({truth.at[best, t]:.3f}) is not in the top 3")
    if args.next:
        measured_rows = [i for i in range(len(pred.sources)) if pred.completion.observed[i].any()]
        width = np.nanmean(pred.completion.high - pred.completion.low, axis=1)
        width = np.where(
            np.isfinite(width), width, np.nanmax(width[np.isfinite(width)]) if np.isfinite(width).any() else 1.0
        )
        similarity = pred.completion.row_sim if pred.completion.row_sim is not None else pred.features.source_similarity
        picks = choose_sources(similarity, args.next, measured_rows, width)
        names = [pred.sources[i] for i in picks]
        if not names:
            print("\nevery source is measured: nothing to train next")
        else:
            print(f"\nnext sources to train ({len(names)}): {', '.join(names)}")
            print(
                f"  xlexp run task={pred.measured.task} model={pred.measured.model} "
                f"'langpair.sources=[{','.join(names)}]' name={pred.measured.experiment}"
            )
    return 0


VERB = register(
    Verb(
        "recommend",
        "top sources for a target (measured or predicted, interval, drivers); --next N: what to train",
        run=run,
        arguments=arguments,
        description=(
            "The best source languages for a target: measured where the store has the cell, predicted (with an "
            "interval and the features that drove it) elsewhere. --next N: the N sources to train next."
        ),
        examples=("xlexp recommend --task nusax_senti --model tiny_random --target jav --k 5",),
    )
)
