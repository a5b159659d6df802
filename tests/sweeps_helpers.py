"""Sweep files and CLI calls for the sweep tests (tiny random model, data the tests build)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna

TINY_BASE = [
    "model=tiny_random",
    "trainer.epochs=2",
    "data.batch_size=8",
    "trainer.progress=false",
    "trainer.num_threads=1",
    "langpair.sources=[eng]",
    "langpair.targets=[eng,ind]",
]


def write_sweep(
    path: Path,
    params: dict[str, str],
    n_trials: int,
    *,
    base: list[str] | None = None,
    sampler: str = "{name: random, seed: 0}",
    pruner: str = "{name: median, n_startup_trials: 1, n_warmup_steps: 0}",
    objective: str = "{metric: macro_f1, split: dev, on: source, selection: source_dev}",
) -> Path:
    lines = [
        "base:",
        *[f"  - {json.dumps(b)}" for b in (base or TINY_BASE)],
        f"objective: {objective}",
        "params:",
        *[f"  {k}: {v}" for k, v in params.items()],
        f"sampler: {sampler}",
        f"pruner: {pruner}",
        f"n_trials: {n_trials}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def env_for(dirs: dict[str, Path]) -> dict[str, str]:
    return {
        **os.environ,
        "XLEXP_DATA_DIR": str(dirs["data"]),
        "XLEXP_RESULTS_DIR": str(dirs["results"]),
        "XLEXP_CACHE_DIR": str(dirs["cache"]),
        "OMP_NUM_THREADS": "1",
    }


def cli(dirs: dict[str, Path], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xlexp.cli.main", *args],
        capture_output=True,
        text=True,
        env=env_for(dirs),
        cwd=dirs["results"].parent,
        timeout=timeout,
    )


def sqlite_url(dirs: dict[str, Path], family: str) -> str:
    return f"sqlite:///{(dirs['results'] / 'sweeps' / f'{family}.db').resolve()}"


def load(url: str, study: str) -> optuna.Study:
    return optuna.load_study(study_name=study, storage=url)
