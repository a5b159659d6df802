"""Synthetic records with known values, for report/table/W&B tests that need no training.

``value(source, target, seed, selection, k, shot_set, metric)`` is deterministic, so a test can
compute the mean ± std a matrix cell must show.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from xlexp.results.languages import normalize_tag
from xlexp.results.store import Record, write_records

LANG_INDEX = {"eng": 0, "ind": 1, "jav": 2, "sun": 3, "ace": 4}
SELECTION_BONUS = {"source_dev": 0.0, "target_dev": 0.04, "last": -0.02}


def value(
    source: str, target: str, seed: int, selection: str, k: int | None, shot_set: int | None, metric: str
) -> float:
    base = 0.5 + 0.05 * LANG_INDEX.get(target, 0) - 0.02 * LANG_INDEX.get(source.split("+")[0], 0)
    base += SELECTION_BONUS.get(selection, 0.0) + (0.03 * np.log2(1 + k) if k else 0.0)
    base += 0.01 * (seed % 3) + 0.005 * (shot_set or 0) - (0.05 if metric == "macro_f1" else 0.0)
    return round(float(min(base, 0.99)), 6)


def make_records(
    experiment: str,
    *,
    sources=("eng", "ind"),
    targets=("eng", "ind", "jav"),
    seeds=(1,),
    selections=("source_dev",),
    regime: str = "zero_shot",
    ks=(None,),
    shot_sets=(None,),
    metrics=("accuracy", "macro_f1"),
    model: str = "tiny_random",
    task: str = "nusax_senti",
    run_id: str | None = None,
    timestamp: str = "2026-01-01T00:00:00+00:00",
) -> list[Record]:
    out = []
    for source, target, seed, selection, k, shot_set, metric in itertools.product(
        sources, targets, seeds, selections, ks, shot_sets, metrics
    ):
        if k is None and shot_set is not None:
            continue
        out.append(
            Record(
                experiment=experiment,
                run_id=run_id or f"{experiment}-run-{seed}",
                model=model,
                task=task,
                regime=regime,
                source=source,
                target=target,
                target_tag=normalize_tag(target),
                split="test",
                metric=metric,
                value=value(source, target, seed, selection, k, shot_set, metric),
                n_examples=40,
                seed=seed,
                selection=selection,
                config_hash="0" * 12,
                git_commit="test",
                timestamp=timestamp,
                k=k,
                shot_set=shot_set,
            )
        )
    return out


def write(results_dir: Path, records: list[Record], name: str) -> None:
    write_records(records, results_dir, name)


def standard_store(results_dir: Path) -> Path:
    """A store with what reports must handle: zero-shot with 2 sources trained in separate runs,
    3 seeds and 3 selection rules; and a few-shot experiment with K-curves (K=0 from its own
    zero-shot cells), shot sets and seeds."""
    for source in ("eng", "ind"):
        for seed in (1, 2, 3):
            write(
                results_dir,
                make_records(
                    "zs",
                    sources=(source,),
                    seeds=(seed,),
                    selections=("source_dev", "target_dev", "last"),
                    run_id=f"zs-{source}-{seed}",
                ),
                f"zs-{source}-{seed}",
            )
    few = make_records(
        "fs",
        sources=("eng",),
        targets=("ind", "jav"),
        seeds=(1, 2),
        selections=("last",),
        regime="few_shot",
        ks=(1, 5, 10),
        shot_sets=(0, 1, 2),
        run_id="fs-1",
    )
    zero = make_records(
        "fs",
        sources=("eng",),
        targets=("ind", "jav"),
        seeds=(1, 2),
        selections=("source_dev",),
        regime="few_shot",
        run_id="fs-1",
    )
    write(results_dir, few + zero, "fs-1")
    return results_dir
