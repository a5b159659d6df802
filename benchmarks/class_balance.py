"""Class balance on a small imbalanced set (issue #20.6): NusaX English train subsampled to 210
positive / 60 negative / 30 neutral, ``regime=full`` (in-language), offline e5, 2 seeds x {uniform,
``optimizer.class_weights=balanced``, ``data.sampling=balanced``}; test macro-F1 on the full
(unchanged) English test split.

    python benchmarks/class_balance.py            # ~25 min on 2 idle cores
    python benchmarks/class_balance.py --variants uniform,class_weights
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

WANT = {"positive": 210, "negative": 60, "neutral": 30}
VARIANTS = {
    "uniform": [],
    "class_weights": ["optimizer.class_weights=balanced"],
    "sampling": ["data.sampling=balanced"],
}


def imbalanced_copy(src: Path, root: Path, seed: int = 0) -> None:
    """NusaX English with the train split subsampled to WANT; dev and test copied unchanged."""
    root.mkdir(parents=True, exist_ok=True)
    with open(src / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(seed)
    keep = []
    for label, n in WANT.items():
        pool = [r for r in rows if r["label"] == label]
        keep += rng.sample(pool, min(n, len(pool)))
    rng.shuffle(keep)
    with open(root / "train.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text", "label"])
        w.writeheader()
        w.writerows(keep)
    for split in ("valid", "test"):
        shutil.copy(src / f"{split}.csv", root / f"{split}.csv")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS))
    a = p.parse_args(argv)
    from xlexp import RunHooks, compose, load_records, run_experiment

    scratch = Path(tempfile.mkdtemp(prefix="class_balance-"))
    imbalanced_copy(bc.data_dir() / "nusax_senti" / "english", scratch / "data" / "nusax_senti" / "english")
    res = scratch / "results"
    for name in a.variants.split(","):
        cfg = compose(
            [
                "model=me5_small_offline",
                "model.trim_vocab=true",
                "regime=full",
                "langpair.targets=[eng]",
                "task=nusax_senti",
                "regime.seeds=[1,2]",
                "trainer.precision=fp32",
                "trainer.progress=false",
                f"name=imb-{name}",
                f"paths.data_dir={scratch / 'data'}",
                f"paths.results_dir={res}",
                *VARIANTS[name],
            ]
        )
        run_experiment(cfg, RunHooks(show_matrix=False))
    df = load_records(res)
    t = df[(df.split == "test") & (df.metric == "macro_f1") & (df.selection == "source_dev")]
    print(t.groupby("experiment")["value"].agg(["mean", "std", "count"]).round(3).to_string())
    print(t.pivot_table(index="seed", columns="experiment", values="value").round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
