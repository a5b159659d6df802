"""Completion variants on a complete matrix (BENCHMARKS.md §10): hidden-cell MAE and Spearman at
5/10/20 % observed, the same 10 random masks per fraction as ``xlexp predict --evaluate`` (seeds
0-9), every variant without the cross-validated choice (one setting each), so the table shows what
each ingredient of ``xlexp.predict.complete`` buys.

    python benchmarks/predict_variants.py [--matrix-csv ../shared/reference/xpos_udpos_xlmr_base_ft10000.csv]
    python benchmarks/predict_variants.py --seed 100 --masks 3 --text-task sib200 --text-model me5_small_offline

Development was done on other masks (seeds 100-102: ``--seed 100 --masks 3``); this script only reports.
``--text-task``/``--text-model``: with the model features from another task's text, matched by
language (``xlexp predict --evaluate --text-task``; the embeddings are cached after the first run).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from xlexp.config.paths import default_data_dir
from xlexp.predict.complete import CompletionSettings, complete
from xlexp.predict.predictor import build_features, matrix_from_csv

CACHE = os.environ.get("XLEXP_CACHE_DIR", str(Path.home() / ".cache" / "xlexp"))
XPOS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "xpos_udpos_xlmr_base_ft10000.csv"

VARIANTS = {
    "rank 1, independent ridge (about the previous default at 10-20 %)": CompletionSettings(
        rank=1, lam=0.44, prior=0.0, profiles=0.0
    ),
    "rank 1 + language prior": CompletionSettings(rank=1, profiles=0.0),
    "rank 2 + language prior": CompletionSettings(rank=2, profiles=0.0),
    "ensemble ranks 1/2/3 x 5, independent ridge": CompletionSettings(prior=0.0, profiles=0.0),
    "ensemble ranks 1/2/3 x 5 + language prior, one pass": CompletionSettings(profiles=0.0),
    "ensemble ranks 1/2/3/4 x 5 + language prior, one pass": CompletionSettings(ranks=(1, 2, 3, 4), profiles=0.0),
    "ensemble ranks 1/2/3 x 5 + language prior + profile pass (xlexp)": CompletionSettings(),
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--matrix-csv", default=str(XPOS))
    p.add_argument("--masks", type=int, default=10)
    p.add_argument("--observed", default="0.05,0.1,0.2")
    p.add_argument("--seed", type=int, default=0, help="first mask seed (0: the evaluation masks; 100: development)")
    p.add_argument("--text-task", help="model features from this task's text, by language (e.g. sib200)")
    p.add_argument("--text-model", help="with --text-task: the encoder (e.g. me5_small_offline)")
    args = p.parse_args()
    wide = matrix_from_csv(args.matrix_csv)
    y = wide.to_numpy(dtype=float)
    text = bool(args.text_task)
    feats = build_features(
        None,
        None,
        [str(s) for s in wide.index],
        [str(t) for t in wide.columns],
        Path(default_data_dir()) if text else None,
        Path(CACHE) if text else None,
        text,
        text_task=args.text_task,
        text_model=args.text_model,
    )
    if text:
        print(f"features: {', '.join(feats.names)}; {feats.missing_note()}")
    print("| observed | variant | MAE | ± sd | Spearman | s per completion |\n|---|---|---|---|---|---|")
    for frac in [float(f) for f in args.observed.split(",")]:
        for name, cfg in VARIANTS.items():
            maes, rhos, t0 = [], [], time.perf_counter()
            for m in range(args.masks):
                mask = np.random.default_rng(args.seed + m).random(y.shape) < frac
                hidden = ~mask & np.isfinite(y)
                res = complete(
                    y,
                    mask,
                    feats.values,
                    CompletionSettings(**{**cfg.__dict__, "folds": 1}),
                    feats.names,
                    feats.source_similarity,
                    feats.target_similarity,
                )
                maes.append(float(np.abs(res.mean[hidden] - y[hidden]).mean()))
                rhos.append(float(spearmanr(res.mean[hidden], y[hidden])[0]))
            print(
                f"| {frac:.0%} | {name} | {np.mean(maes):.2f} | {np.std(maes, ddof=1):.2f} | {np.mean(rhos):.3f} | "
                f"{(time.perf_counter() - t0) / args.masks:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
