"""Are two results stores' records the same, value for value? (the check behind a restructuring)

    python benchmarks/same_records.py RESULTS_A RESULTS_B

Records are matched on (source, target, split, metric, selection, step, k, shot_set, seed); their
``value`` and ``n_examples`` must be equal to the last digit (exact float equality), and every record
must have a partner. Run noise (run id, timestamps, git commit, peak memory) is not compared; other
descriptive columns that differ are listed. Exit 0 when identical, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

KEY = ["source", "target", "split", "metric", "selection", "step", "k", "shot_set", "seed"]
EXACT = ["value", "n_examples"]
DESCRIPTIVE = [
    "target_tag",
    "experiment",
    "model",
    "task",
    "regime",
    "config_hash",
    "finetune",
    "precision",
    "params",
    "trainable_params",
]


def load(results_dir: str) -> pd.DataFrame:
    files = sorted(Path(results_dir, "runs").glob("*.parquet"))
    if not files:
        sys.exit(f"no records under {results_dir}/runs")
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    for c in ("step", "k", "shot_set"):
        df[c] = pd.to_numeric(df[c], errors="coerce").fillna(-1).astype(int)
    return df


def differs(x: pd.Series, y: pd.Series) -> pd.Series:
    both_null = x.isna() & y.isna()
    if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
        return ~((x.astype(float) == y.astype(float)) | both_null)
    return ~((x.astype(str) == y.astype(str)) | both_null)


def main(a_dir: str, b_dir: str) -> int:
    a, b = load(a_dir), load(b_dir)
    m = a.merge(b, on=KEY, how="outer", suffixes=("_a", "_b"), indicator=True)
    both = m[m["_merge"] == "both"]
    print(f"records: {len(a)} vs {len(b)}; matched {len(both)}")
    same = len(both) == len(a) == len(b)
    if not same:
        print(m[m["_merge"] != "both"][[*KEY, "_merge"]].head(10).to_string())
    for col in EXACT + [c for c in DESCRIPTIVE if f"{c}_a" in m and f"{c}_b" in m]:
        bad = both[differs(both[f"{col}_a"], both[f"{col}_b"])]
        if len(bad):
            same = same and col not in EXACT
            print(f"{col}: {len(bad)} differ, e.g.\n{bad[[*KEY[:5], f'{col}_a', f'{col}_b']].head(3).to_string()}")
    print("IDENTICAL" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
