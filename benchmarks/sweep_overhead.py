"""Sweep overhead (issue #13, item 7): what a 20-trial tiny sweep costs per trial beyond training, and
whether that cost grows with the trial index.

Each trial of ``benchmarks/sweeps/tiny_overhead.yaml`` does the same work (tiny random model, one
epoch on 64 English NusaX examples, test on the 12 NusaX languages, lr in a narrow band, no pruning),
so a trial that gets slower with its index pays for the harness, e.g. for re-reading the whole results
store after every trial. The sweep runs through the command line, one worker, against the code in
``--code DIR`` (put first on PYTHONPATH; several ``--code`` run one after the other), each in a fresh
scratch folder: its own SQLite storage, results store and cache.

Per trial, from the Optuna storage (ask -> tell times) and the worker's log (the ``unit ... done in
X s`` line: model set-up, training, evaluation and the records of the one training unit):

- wall / trial: the whole command's wall time over the number of trials;
- outside training / trial: (wall - the units' time) / trials: start-up, composing, the end-of-run
  summary, the storage, everything that is not the unit;
- in-trial overhead: a trial's span minus its unit, for trials 1-5 and the last 5 (trial 0 is left
  out: it fills the cold caches: tokenizer and tokenized data);
- read whole store: reading every record file at the end (one per trial), what a run that re-reads
  the store pays at the last trial.

    python benchmarks/sweep_overhead.py --code /path/to/old/checkout --code .   # before, then after
    python benchmarks/sweep_overhead.py --trials 4                              # smoke run
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

SWEEP_FILE = bc.BENCH_DIR / "sweeps" / "tiny_overhead.yaml"
STUDY = "overhead"
UNIT_LINE = re.compile(r"unit \d+/\d+ \(source [^)]*\) done in ([\d.]+)s")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--code",
        action="append",
        type=Path,
        help="checkout whose xlexp runs the sweep (repeatable; default: this repository)",
    )
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--sweep", type=Path, default=SWEEP_FILE)
    p.add_argument(
        "--threads", type=int, default=1, help="OMP_NUM_THREADS of the sweep (default 1: steadier on a shared machine)"
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch folders (logs, storage, records)")
    return p.parse_args(argv)


def cli_module(code: Path) -> str:
    """``xlexp.cli.main`` (the subpackage layout) or ``xlexp.cli`` (the flat one before it)."""
    return "xlexp.cli.main" if (code / "xlexp" / "cli" / "main.py").is_file() else "xlexp.cli"


def code_version(code: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--no-optional-locks", "-C", str(code), *args], capture_output=True, text=True, timeout=30
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    return f"{head}{'+dirty' if git('status', '--porcelain', '--untracked-files=no') else ''}"


def sweep_env(code: Path, scratch: Path, threads: int) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(code),
        "XLEXP_RESULTS_DIR": str(scratch / "results"),
        "XLEXP_CACHE_DIR": str(scratch / "cache"),
        "XLEXP_DATA_DIR": str(bc.data_dir()),
        "OMP_NUM_THREADS": str(threads),
    }


def check_code(env: dict[str, str], code: Path, scratch: Path) -> None:
    found = subprocess.run(
        [sys.executable, "-c", "import xlexp; print(xlexp.__file__)"],
        env=env,
        cwd=scratch,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(code.resolve()):
        raise SystemExit(f"xlexp imports from {found}, not from {code}: is another xlexp first on the path?")


def store_read_s(results: Path, repeats: int = 3) -> tuple[int, float]:
    """(record files, best-of-``repeats`` seconds) to read every record file of the store into one
    DataFrame, as the flat layout's end-of-run summary did after every run (so trial k paid for k files)."""
    import pandas as pd

    files = sorted((results / "runs").glob("*.parquet"))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        best = min(best, time.perf_counter() - t0)
    return len(files), best


def avg(xs: list[float]) -> float | None:
    return round(mean(xs), 3) if xs else None


def run_one(code: Path, args: argparse.Namespace) -> dict:
    import optuna

    code = code.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="sweep_overhead."))
    env = sweep_env(code, scratch, args.threads)
    check_code(env, code, scratch)
    storage = f"sqlite:///{scratch / 'study.db'}"
    cmd = [
        sys.executable,
        "-m",
        cli_module(code),
        "sweep",
        str(args.sweep.resolve()),
        "--storage",
        storage,
        "--study",
        STUDY,
        "--n-trials",
        str(args.trials),
    ]
    print(f"$ (cd {scratch} && PYTHONPATH={code} {' '.join(cmd[1:])})", flush=True)
    launched, load_before = datetime.now(), os.getloadavg()[0]
    t0 = time.perf_counter()
    with (scratch / "stdout.log").open("w") as out, (scratch / "stderr.log").open("w") as err:
        code_ = subprocess.run(cmd, cwd=scratch, env=env, stdout=out, stderr=err).returncode
    wall = time.perf_counter() - t0
    if code_ != 0:
        tail = "\n".join((scratch / "stderr.log").read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"sweep failed ({code_}) with --code {code}; scratch {scratch}\n{tail}")

    study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    spans = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    units = [float(m) for m in UNIT_LINE.findall((scratch / "stderr.log").read_text(errors="replace"))]
    if len(units) != len(trials):  # one unit per trial, in order (one worker); otherwise don't guess
        print(f"warning: {len(units)} unit lines for {len(trials)} trials: no per-unit split", file=sys.stderr)
        units = []
    n = len(trials)
    n_files, read_s = store_read_s(scratch / "results")
    in_trial = [s - u for s, u in zip(spans, units)]
    first, last = slice(1, 6), slice(max(1, n - 5), n)
    row = {
        "code": str(code),
        "version": code_version(code),
        "trials": n,
        "states": sorted({t.state.name for t in trials}),
        "wall_s": round(wall, 2),
        "wall_per_trial_s": round(wall / n, 3),
        "unit_per_trial_s": avg(units),
        "outside_training_per_trial_s": round((wall - sum(units)) / n, 3) if units else None,
        "in_trial_overhead_first5_s": avg(in_trial[first]),
        "in_trial_overhead_last5_s": avg(in_trial[last]),
        "span_first5_s": avg(spans[first]),
        "span_last5_s": avg(spans[last]),
        "trial0_span_s": round(spans[0], 3),
        "startup_s": round((trials[0].datetime_start - launched).total_seconds(), 3),
        "record_files": n_files,
        "store_read_s": round(read_s, 4),
        "stdout_lines": len((scratch / "stdout.log").read_text(errors="replace").splitlines()),
        "spans_s": [round(s, 3) for s in spans],
        "units_s": units,
        "values": [t.value for t in trials],
        "loadavg_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "command": f"cd SCRATCH && PYTHONPATH={code} python " + " ".join(cmd[1:]).replace(str(scratch), "SCRATCH"),
    }
    if args.keep:
        print(f"scratch kept: {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    codes = args.code or [bc.REPO]
    busy = bc.warn_if_busy(threshold=float(os.cpu_count() or 1) / 2)
    rows = [run_one(code, args) for code in codes]
    columns = [
        "code",
        "trials",
        "sweep wall s",
        "wall/trial s",
        "unit/trial s",
        "outside training/trial s",
        "in-trial overhead, trials 1-5 s",
        "same, last 5 s",
        "span 1-5 s",
        "span last 5 s",
        "read whole store s",
        "stdout lines",
    ]
    table = [
        [
            f"{Path(r['code']).name or r['code']} @ {r['version']}",
            r["trials"],
            r["wall_s"],
            r["wall_per_trial_s"],
            r["unit_per_trial_s"],
            r["outside_training_per_trial_s"],
            r["in_trial_overhead_first5_s"],
            r["in_trial_overhead_last5_s"],
            r["span_first5_s"],
            r["span_last5_s"],
            r["store_read_s"],
            r["stdout_lines"],
        ]
        for r in rows
    ]
    md = bc.print_table(
        f"{args.trials}-trial tiny sweep ({args.sweep.name}), one worker, OMP_NUM_THREADS={args.threads}",
        columns,
        table,
    )
    for r in rows:
        md = bc.add_line(md, f"- {r['version']}: `{r['command']}`; load average {r['loadavg_before_after']}", False)
    if busy:
        md = bc.add_line(md, "", True)
    bc.write_result("sweep_overhead", {"machine": bc.machine_info(), "rows": rows}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
