"""The quickstart numbers the docs quote, produced by the run itself (issues #14.12 and #20.1).

    python benchmarks/quickstart_numbers.py              # run, print the block
    python benchmarks/quickstart_numbers.py --write      # run, replace the block in docs/models.md
    python benchmarks/quickstart_numbers.py --check      # run, exit 1 if docs/models.md differs
    python benchmarks/quickstart_numbers.py --records R  # no run: the block from an existing store

The run is ``xlexp run +experiment=quickstart trainer.precision=fp32`` (the shipped quickstart with
fp32 arithmetic, so a CPU with bf16 units and one without give the same numbers) in a fresh
results folder and, unless ``--cache`` is given, a fresh cache folder: the numbers must not depend
on what a machine has cached. ``make docs-numbers`` runs ``--write``; ``make docs-numbers-check`` runs
``tests/test_quickstart_numbers.py``, which runs ``--check`` (~10 min on 2 idle cores: kept out of ``make test``).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "models.md"
START, END = "<!-- quickstart-numbers:start -->", "<!-- quickstart-numbers:end -->"
OVERRIDES = ["+experiment=quickstart", "trainer.precision=fp32", "name=quickstart-fp32", "trainer.progress=false"]
COMMAND = "xlexp run " + " ".join(o for o in OVERRIDES if not o.startswith("trainer.progress"))


def run(results: Path, cache: Path) -> pd.DataFrame:
    from xlexp.config.compose import compose_config
    from xlexp.experiment.context import RunHooks
    from xlexp.experiment.runner import run_experiment
    from xlexp.results.store import load_records

    run_experiment(compose_config([*OVERRIDES, f"paths.results_dir={results}", f"paths.cache_dir={cache}"]),
                   RunHooks(show_matrix=False))
    return load_records(results)


def block(df: pd.DataFrame) -> str:
    """The markdown the docs carry: per selection rule, the chosen step, English dev and test, and the
    12-target mean with and without the in-language cell (macro-F1)."""
    f1 = df[df.metric == "macro_f1"]
    test = f1[f1.split == "test"]
    dev = f1[(f1.split == "dev") & (f1.target == "eng")].set_index("step")["value"]
    lines = [START, "",
             f"Measured by `python benchmarks/quickstart_numbers.py --write` (runs `{COMMAND}` with a fresh cache; "
             f"`make docs-numbers-check` re-runs it and fails if this block changes). Test macro-F1:", "",
             "| selection rule | step (of " + str(int(dev.index.max())) + ") | English dev | English test | "
             "mean of 12 targets | mean of the 11 others |", "|---|---|---|---|---|---|"]
    for rule in ("source_dev", "target_dev", "last"):
        cells = test[test.selection == rule]
        if cells.empty:
            continue
        eng = cells[cells.target == "eng"]
        if rule == "target_dev":  # each target's own best step
            step_s, dev_s = "per target", "–"
        else:
            step = int(eng["step"].iloc[0])
            step_s, dev_s = str(step), f"{dev.loc[step]:.3f}"
        others = cells[cells.target != "eng"]["value"].mean()
        lines.append(f"| `{rule}` | {step_s} | {dev_s} | {eng['value'].iloc[0]:.3f} | {cells['value'].mean():.3f} | "
                     f"{others:.3f} |")
    lines += ["", END]
    return "\n".join(lines)


def replace_block(text: str, new: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no {START} ... {END} block")
    return pattern.sub(lambda _: new, text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"replace the block in {DOC.relative_to(ROOT)}")
    p.add_argument("--check", action="store_true", help="exit 1 if the docs' block differs from this run's")
    p.add_argument("--records", help="use this results store instead of running")
    p.add_argument("--cache", help="cache folder (default: a fresh temporary one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.records:
            from xlexp.results.store import load_records

            df = load_records(args.records)
            df = df[df.experiment == "quickstart-fp32"]
        else:
            df = run(Path(tmp) / "results", Path(args.cache) if args.cache else Path(tmp) / "cache")
    new = block(df)
    print(new)
    text = DOC.read_text(encoding="utf-8")
    if args.write:
        DOC.write_text(replace_block(text, new), encoding="utf-8")
    if args.check and replace_block(text, new) != text:
        print(f"{DOC} differs from this run: re-run with --write (or find what changed the numbers)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
