# python benchmarks/class_balance.py  (XLEXP_DATA_DIR=../shared/data; ~25 min on 2 idle cores)
"""Class balance on a small imbalanced set (#20.6): NusaX English train subsampled to 210 positive /
60 negative / 30 neutral, regime=full (in-language), e5 offline, 2 seeds x {uniform, class_weights,
balanced sampling}; test macro-F1 on the full (unchanged) English test split."""
import csv, random, shutil, sys
from pathlib import Path
import pandas as pd
src = Path("/work/shared/data/nusax_senti/english")
root = Path("/tmp/imb/data/nusax_senti/english"); root.mkdir(parents=True, exist_ok=True)
rows = list(csv.DictReader(open(src / "train.csv")))
rng = random.Random(0)
want = {"positive": 210, "negative": 60, "neutral": 30}
keep = []
for label, n in want.items():
    pool = [r for r in rows if r["label"] == label]
    keep += rng.sample(pool, min(n, len(pool)))
rng.shuffle(keep)
with open(root / "train.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["id", "text", "label"]); w.writeheader(); w.writerows(keep)
for s in ("valid", "test"):
    shutil.copy(src / f"{s}.csv", root / f"{s}.csv")
from xlexp.config.compose import compose_config
from xlexp.experiment.context import RunHooks
from xlexp.experiment.runner import run_experiment
from xlexp.results.store import load_records
variants = {"uniform": [], "class_weights": ["optimizer.class_weights=balanced"], "sampling": ["data.sampling=balanced"]}
res = "/tmp/imb/results"
for name, extra in variants.items():
    cfg = compose_config(["model=me5_small_offline", "model.trim_vocab=true", "regime=full", "langpair.targets=[eng]",
                          "task=nusax_senti", "regime.seeds=[1,2]", "trainer.precision=fp32", "trainer.progress=false",
                          f"name=imb-{name}", "paths.data_dir=/tmp/imb/data", f"paths.results_dir={res}", *extra])
    run_experiment(cfg, RunHooks(show_matrix=False))
df = load_records(res)
t = df[(df.split == "test") & (df.metric == "macro_f1") & (df.selection == "source_dev")]
print(t.groupby("experiment")["value"].agg(["mean", "std", "count"]).round(3).to_string())
print(t.pivot_table(index="seed", columns="experiment", values="value").round(3).to_string())
