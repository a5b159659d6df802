"""The quickstart numbers the docs quote, produced by the run itself (issues #14.12, #20.1, #33).

    python benchmarks/quickstart_numbers.py              # run, print the blocks
    python benchmarks/quickstart_numbers.py --write      # run, replace the blocks in docs/models.md and README.md
    python benchmarks/quickstart_numbers.py --check      # run, exit 1 if either file differs
    python benchmarks/quickstart_numbers.py --records R  # no run: the blocks from an existing store
                                                         # (--experiment NAME, default quickstart-fp32)

The run is ``xlexp run +experiment=quickstart trainer.precision=fp32`` (the shipped quickstart, whose preset
is fp32 too, so a CPU with bf16 units and one without give the same numbers) in a fresh results folder
and, unless ``--cache`` is given, a fresh cache folder: the numbers must not depend on what a machine
has cached. Two generated blocks carry them: the table of ``docs/models.md`` and the summary in
``README.md`` (English test and the target means per selection rule). ``tests/docs/test_readme_numbers.py``
(fast) fails when the README's block is not what the models.md block gives; ``make docs-numbers-check``
runs ``tests/docs/test_quickstart_numbers.py``, which runs ``--check`` (~10 min on 2 idle cores: kept out of
``make test``): a fresh run must give both blocks as they stand.
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
README = ROOT / "README.md"
START, END = "<!-- quickstart-numbers:start -->", "<!-- quickstart-numbers:end -->"
R_START, R_END = "<!-- quickstart-summary:start -->", "<!-- quickstart-summary:end -->"
RULES = ("source_dev", "target_dev", "last")
OVERRIDES = ["+experiment=quickstart", "trainer.precision=fp32", "name=quickstart-fp32", "trainer.progress=false"]
COMMAND = "xlexp run " + " ".join(o for o in OVERRIDES if not o.startswith("trainer.progress"))


def run(results: Path, cache: Path) -> pd.DataFrame:
    from xlexp import RunHooks, compose, load_records, run_experiment

    run_experiment(
        compose([*OVERRIDES, f"paths.results_dir={results}", f"paths.cache_dir={cache}"]), RunHooks(show_matrix=False)
    )
    return load_records(results)


def summary(df: pd.DataFrame) -> dict[str, dict]:
    """Per selection rule (macro-F1): the chosen step, English dev there, English test, and the test mean
    over the 12 targets and over the 11 others."""
    f1 = df[df.metric == "macro_f1"]
    test = f1[f1.split == "test"]
    dev = f1[(f1.split == "dev") & (f1.target == "eng")].set_index("step")["value"]
    out = {}
    for rule in RULES:
        cells = test[test.selection == rule]
        if cells.empty:
            continue
        eng = cells[cells.target == "eng"]
        step = None if rule == "target_dev" else int(eng["step"].iloc[0])  # target_dev: each target's own step
        out[rule] = {
            "step": step,
            "dev": None if step is None else float(dev.loc[step]),
            "eng": float(eng["value"].iloc[0]),
            "mean12": float(cells["value"].mean()),
            "mean11": float(cells[cells.target != "eng"]["value"].mean()),
            "last_step": int(dev.index.max()),
        }
    return out


def block(df: pd.DataFrame) -> str:
    """The markdown docs/models.md carries: per selection rule, the chosen step, English dev and test, and
    the 12-target mean with and without the in-language cell (macro-F1)."""
    rows = summary(df)
    lines = [
        START,
        "",
        f"Measured by `python benchmarks/quickstart_numbers.py --write` (runs `{COMMAND}` with a fresh cache; "
        f"`make docs-numbers-check` re-runs it and fails if this block changes). Test macro-F1:",
        "",
        "| selection rule | step (of "
        + str(next(iter(rows.values()))["last_step"])
        + ") | English dev | English test | "
        "mean of 12 targets | mean of the 11 others |",
        "|---|---|---|---|---|---|",
    ]
    for rule, r in rows.items():
        step_s, dev_s = ("per target", "–") if r["step"] is None else (str(r["step"]), f"{r['dev']:.3f}")
        lines.append(f"| `{rule}` | {step_s} | {dev_s} | {r['eng']:.3f} | {r['mean12']:.3f} | {r['mean11']:.3f} |")
    lines += ["", END]
    return "\n".join(lines)


def summary_from_block(text: str) -> dict[str, dict]:
    """The rows of docs/models.md's block back as numbers (what the README's summary is made of)."""
    inner = text.split(START, 1)[1].split(END, 1)[0]
    out = {}
    for m in re.finditer(r"^\| `(\w+)` \| [^|]+ \| [^|]+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", inner, re.M):
        out[m.group(1)] = {"eng": float(m.group(2)), "mean12": float(m.group(3)), "mean11": float(m.group(4))}
    return out


def readme_block(rows: dict[str, dict]) -> str:
    """The README's summary of the quickstart: per selection rule, English test and the target means."""
    # the columns xlexp matrix prints: the in-language cell apart, then the one matrix mean (docs/metrics.md)
    lines = [R_START, "```text", "selection rule   in-language (eng)   mean without in-language cells (11 targets)"]
    for rule, r in rows.items():
        lines.append(f"{rule:<17}{r['eng']:<20.3f}{r['mean11']:.3f}")
    gap = round(100 * (round(rows["target_dev"]["mean11"], 3) - round(rows["source_dev"]["mean11"], 3)))
    lines += [
        "```",
        f"The {gap}-point gap between `source_dev` (the XTREME protocol, shown by default) and the "
        f"`target_dev` oracle is the kind of thing xlexp makes visible (steps and English dev: "
        f"[models.md](docs/models.md)).",
        R_END,
    ]
    return "\n".join(lines)


def replace_block(text: str, new: str, start: str = START, end: str = END, where: Path = DOC) -> str:
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{where} has no {start} ... {end} block")
    return pattern.sub(lambda _: new, text)


def documents(df: pd.DataFrame) -> dict[Path, str]:
    """docs/models.md and README.md as they read with the numbers of records ``df``."""
    doc, readme = DOC.read_text(encoding="utf-8"), README.read_text(encoding="utf-8")
    return {
        DOC: replace_block(doc, block(df)),
        README: replace_block(readme, readme_block(summary(df)), R_START, R_END, README),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="replace the blocks in docs/models.md and README.md")
    p.add_argument("--check", action="store_true", help="exit 1 if either file's block differs from this run's")
    p.add_argument("--records", help="use this results store instead of running")
    p.add_argument("--experiment", default="quickstart-fp32", help="with --records: the experiment to read")
    p.add_argument("--cache", help="cache folder (default: a fresh temporary one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.records:
            from xlexp import load_records

            df = load_records(args.records)
            df = df[df.experiment == args.experiment]
            if df.empty:
                raise SystemExit(f"no records of experiment {args.experiment!r} under {args.records}")
        else:
            df = run(Path(tmp) / "results", Path(args.cache) if args.cache else Path(tmp) / "cache")
    print(block(df))
    print(readme_block(summary(df)))
    new = documents(df)
    if args.write:
        for path, text in new.items():
            path.write_text(text, encoding="utf-8")
    if args.check:
        stale = [str(path.relative_to(ROOT)) for path, text in new.items() if text != path.read_text(encoding="utf-8")]
        if stale:
            print(
                f"{', '.join(stale)} differ from this run: re-run with --write (or find what changed the numbers)",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
