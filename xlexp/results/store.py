"""The results store: long-format records, one immutable Parquet file per training unit.

Files go to ``<results_dir>/runs/`` under a dot-prefixed temp name and are then renamed, so a
reader (``pd.read_parquet``, which skips dot files) never sees a half-written file and parallel
workers never write the same file. Reading for views goes through ``xlexp.results.query``.

Imports: ``xlexp.errors`` only.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from xlexp.errors import XlexpError


@dataclass(frozen=True)
class Record:
    experiment: str
    run_id: str
    model: str
    task: str
    regime: str
    source: str          # source language, or a '+'-joined source set
    target: str
    target_tag: str      # normalised BCP-47 tag of the target (langcodes)
    split: str
    metric: str
    value: float
    n_examples: int
    seed: int
    selection: str       # checkpoint selection rule: source_dev | target_dev | last
    config_hash: str
    git_commit: str
    timestamp: str
    # room for later regimes and sweeps; None where they do not apply
    k: int | None = None
    shot_set: int | None = None
    trial: int | None = None
    study: str | None = None
    step: int | None = None   # training step of the selected checkpoint
    finetune: str | None = None        # full | lora-r8 | freeze-emb+4l ... (xlexp.models.finetune.describe)
    precision: str | None = None       # fp32 | bf16
    params: int | None = None          # parameters of the model (after vocabulary trimming)
    trainable_params: int | None = None
    peak_memory_mb: float | None = None  # peak of the run so far when the unit ended (GPU allocated / process RSS)


RECORD_COLUMNS = [f.name for f in fields(Record)]


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def config_hash(config: Any) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def without_run_noise(resolved: dict) -> dict:
    """A resolved run config without the settings that cannot change results (progress bars, CPU threads)."""
    trainer = {k: v for k, v in resolved.get("trainer", {}).items() if k not in ("progress", "num_threads")}
    return {**resolved, "trainer": trainer}


def run_config_hash(resolved: dict) -> str:
    """The hash every record of a run carries: the resolved config without paths and run noise, so
    the same experiment on another machine or folder hashes the same."""
    return config_hash({k: v for k, v in without_run_noise(resolved).items() if k != "paths"})


@lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def runs_dir(results_dir: Path | str) -> Path:
    return Path(results_dir) / "runs"


PREDICTION_COLUMNS = ["experiment", "run_id", "source", "target", "split", "selection", "seed", "k", "shot_set",
                      "example", "label", "pred"]


def predictions_dir(results_dir: Path | str) -> Path:
    return Path(results_dir) / "predictions"


def _write_new_parquet(frame: pd.DataFrame, out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{name}.parquet"
    if final.exists():
        raise FileExistsError(f"{final} exists: results files are immutable")
    tmp = out_dir / f".{name}.{os.getpid()}.tmp"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, final)  # atomic on POSIX: readers see the whole file or none
    return final


def write_records(records: Sequence[Record], results_dir: Path | str, name: str) -> Path:
    """Write records as one new Parquet file; returns its path. Never overwrites."""
    if not records:
        raise ValueError("write_records: no records")
    frame = pd.DataFrame([asdict(r) for r in records], columns=RECORD_COLUMNS)
    return _write_new_parquet(frame, runs_dir(results_dir), name)


def write_predictions(frame: pd.DataFrame, results_dir: Path | str, name: str) -> Path:
    """Per-example test predictions of one unit (for paired bootstrap comparisons); same naming."""
    return _write_new_parquet(frame[PREDICTION_COLUMNS], predictions_dir(results_dir), name)


def load_predictions(results_dir: Path | str, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
    folder = predictions_dir(results_dir)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if run_ids is not None:
        files = [f for f in files if any(f.name.startswith(r) for r in run_ids)]
    if not files:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def load_records(results_dir: Path | str) -> pd.DataFrame:
    """Every record of every run, as one DataFrame (empty with the right columns if none)."""
    folder = runs_dir(results_dir)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return pd.DataFrame(columns=RECORD_COLUMNS)
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def require_records(results_dir: Path | str) -> pd.DataFrame:
    df = load_records(results_dir)
    if df.empty:
        raise XlexpError(f"no records under {runs_dir(results_dir)}: run `xlexp run ...` first (or set XLEXP_RESULTS_DIR)")
    return df
