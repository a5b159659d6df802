"""The results store: long-format records, one immutable Parquet file per training unit.

Files go to ``<results_dir>/runs/`` under a dot-prefixed temp name and are then renamed, so a
reader (``pd.read_parquet``, which skips dot files) never sees a half-written file and parallel
workers never write the same file. Reading for views goes through ``xlexp.results.query``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from xlexp.errors import XlexpError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    experiment: str
    run_id: str
    model: str
    task: str
    regime: str
    source: str  # source language, or a '+'-joined source set
    target: str
    target_tag: str  # normalised BCP-47 tag of the target (langcodes)
    split: str
    metric: str
    value: float
    n_examples: int
    seed: int
    selection: str  # checkpoint selection rule: source_dev | target_dev | last
    config_hash: str
    git_commit: str
    timestamp: str
    # room for later regimes and sweeps; None where they do not apply
    k: int | None = None
    shot_set: int | None = None
    trial: int | None = None
    study: str | None = None
    step: int | None = None  # training step of the selected checkpoint
    finetune: str | None = None  # full | lora-r8 | freeze-emb+4l ... (xlexp.models.finetune.describe)
    precision: str | None = None  # fp32 | bf16
    params: int | None = None  # parameters of the model (after vocabulary trimming)
    trainable_params: int | None = None
    peak_memory_mb: float | None = None  # peak of the run so far when the unit ended (GPU allocated / process RSS)
    family: str | None = None  # model family: encoder | decoder | seq2seq | classical
    metric_signature: str | None = None  # generation metrics: sacrebleu's signature (version, tokenisation...)
    unit_key: str | None = None  # the training unit's resume key (unit_config_hash): same key, same unit
    n_labels: int | None = None  # macro-F1 cells: the labels it averages over (present in gold or predictions)
    primary_metric: str | None = None  # the task's primary metric: what every view shows when no --metric is given
    log_dir: str | None = None  # the run's Hydra output folder (run.log, .hydra/config.yaml); set on write


RECORD_COLUMNS = [f.name for f in fields(Record)]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def config_hash(config: Any) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def without_run_noise(resolved: dict) -> dict:
    """A resolved run config without the settings that cannot change results (progress bars, CPU
    threads, ``trainer.sources_together``: how many units train in one stack, ``rerun``: whether
    finished units are trained again)."""
    noise = ("progress", "num_threads", "sources_together")
    trainer = {k: v for k, v in resolved.get("trainer", {}).items() if k not in noise}
    return {**{k: v for k, v in resolved.items() if k != "rerun"}, "trainer": trainer}


def run_config_hash(resolved: dict) -> str:
    """The hash every record of a run carries: the resolved config without paths and run noise, so
    the same experiment on another machine or folder hashes the same."""
    return config_hash({k: v for k, v in without_run_noise(resolved).items() if k != "paths"})


def unit_config_hash(resolved: dict, unit: dict) -> str:
    """The resume key of one training unit: the run's resolved config without what only says which
    units a run has (``langpair``, ``regime.seeds``), plus the unit itself (its source set, train,
    selection, target and watched dev languages, seed). One source of a 5-source run and the same
    source run alone (a job of a multirun) get the same key; a change of anything that changes the
    unit's training or tests (lr, epochs, targets, the dev budget, the experiment name) a new one."""
    base = {k: v for k, v in without_run_noise(resolved).items() if k not in ("paths", "langpair")}
    regime = {k: v for k, v in (base.get("regime") or {}).items() if k != "seeds"}
    return config_hash({**base, "regime": regime, "unit": unit})


@lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def runs_dir(results_dir: Path | str) -> Path:
    return Path(results_dir) / "runs"


PREDICTION_COLUMNS = [
    "experiment",
    "run_id",
    "source",
    "target",
    "split",
    "selection",
    "seed",
    "k",
    "shot_set",
    "example",
    "label",
    "pred",
]
# extractive QA rows add the answer and its per-question scores (label and pred are -1 there); the
# paired bootstrap of ``xlexp compare --metric f1|exact_match`` resamples these scores
QA_PREDICTION_COLUMNS = ["pred_text", "exact_match", "f1"]


def predictions_dir(results_dir: Path | str) -> Path:
    return Path(results_dir) / "predictions"


def _write_new_parquet(frame: pd.DataFrame, out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{name}.parquet"
    if final.exists():
        raise FileExistsError(f"{final} exists: results files are immutable")
    tmp = out_dir / f".{name}.{os.getpid()}.tmp"
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, final)  # atomic on POSIX: readers see the whole file or none
    except OSError as e:  # disk full, quota, read-only remount: no partial file may stay behind
        tmp.unlink(missing_ok=True)
        raise XlexpError(
            f"could not write {final}: {e.strerror or e} (nothing of this unit was written; free space "
            f"or set paths.results_dir=... and re-run)"
        ) from None
    return final


def write_records(records: Sequence[Record], results_dir: Path | str, name: str) -> Path:
    """Write records as one new Parquet file; returns its path. Never overwrites."""
    if not records:
        raise ValueError("write_records: no records")
    frame = pd.DataFrame([asdict(r) for r in records], columns=RECORD_COLUMNS)
    here = current_log_dir()
    if here is not None:
        frame["log_dir"] = frame["log_dir"].fillna(here)
    return _write_new_parquet(frame, runs_dir(results_dir), name)


def current_log_dir() -> str | None:
    """This run's Hydra output folder (its ``run.log`` and saved config), when it runs as a Hydra app
    (``xlexp run``, a launcher's sweep worker); None otherwise (the compose API, tests). Every record
    carries it, so a number in a table, the report or W&B can be traced back to its log."""
    try:
        from hydra.core.hydra_config import HydraConfig  # lazy: the store itself needs no Hydra
    except ImportError:
        return None
    if not HydraConfig.initialized():
        return None
    try:
        return str(Path(HydraConfig.get().runtime.output_dir).resolve())
    except Exception:  # a Hydra config without a runtime folder: nothing to point to
        return None


def write_predictions(frame: pd.DataFrame, results_dir: Path | str, name: str) -> Path:
    """Per-example test predictions of one unit (for paired bootstrap comparisons); same naming."""
    extra = [c for c in QA_PREDICTION_COLUMNS if c in frame.columns]
    return _write_new_parquet(frame[PREDICTION_COLUMNS + extra], predictions_dir(results_dir), name)


# the columns without which a file's rows cannot be placed in any matrix: a file lacking one is bad
REQUIRED_RECORD_COLUMNS = ("experiment", "run_id", "source", "target", "split", "metric", "value", "selection")
REQUIRED_PREDICTION_COLUMNS = ("run_id", "source", "target", "example", "label", "pred")
_warned: set[str] = set()


def read_store_file(path: Path, required: Sequence[str]) -> tuple[pd.DataFrame | None, str | None]:
    """One Parquet file of the store, or (None, why) when it cannot be used: unreadable (truncated,
    not Parquet, unreadable permissions) or missing a required column."""
    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types (ArrowInvalid, OSError, ...) for a bad file
        return None, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else 'unreadable'}"
    missing = [c for c in required if c not in frame.columns]
    if missing:
        return None, f"missing column(s) {missing}"
    wrong = _wrong_dtypes(frame)
    if wrong:
        return None, f"wrong column type(s): {'; '.join(wrong)}"
    return frame, None


# what each column must hold, where a file has it: a file with string ``value``s passed the column
# check and then broke every view ("agg function failed"); such a file is bad like a corrupt one
STRING_COLUMNS = ("experiment", "run_id", "source", "target", "split", "metric", "selection")
NUMBER_COLUMNS = (
    "value",
    "n_examples",
    "seed",
    "k",
    "shot_set",
    "trial",
    "step",
    "example",
    "label",
    "pred",
    "exact_match",
    "f1",
)


def _wrong_dtypes(frame: pd.DataFrame) -> list[str]:
    """The columns of a store file whose values are not of their type (strings where numbers belong,
    numbers or missing values where names belong); empty for a good file. Vectorised: cheap on a
    store of thousands of files."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype, is_string_dtype

    out = []
    if not len(frame):
        return out
    for col in STRING_COLUMNS:
        if col in frame.columns and not is_string_dtype(frame[col]):
            out.append(f"'{col}' must hold names, has {frame[col].dtype} values like {frame[col].iloc[0]!r}")
    for col in NUMBER_COLUMNS:
        if col not in frame.columns:
            continue
        values = frame[col]
        if values.isna().all():  # optional columns (k, trial, ...) are empty where they do not apply
            continue
        if is_bool_dtype(values) or not is_numeric_dtype(values):
            sample = values.dropna().iloc[0]
            out.append(f"'{col}' must hold numbers, has {values.dtype} values like {sample!r}")
    return out


def _read_all(files: Sequence[Path], required: Sequence[str]) -> list[pd.DataFrame]:
    """The usable files' frames; each bad file is skipped with one warning naming it (once per process),
    so one corrupt file never stops the views, a new run or a sweep from using all the others."""
    frames = []
    for f in files:
        frame, why = read_store_file(f, required)
        if frame is None:
            if str(f) not in _warned:
                _warned.add(str(f))
                log.warning(
                    "xlexp: warning: skipping unreadable results file %s (%s); move bad files aside with "
                    "`xlexp store check --repair`",
                    f,
                    why,
                )
            continue
        if len(frame):
            frames.append(frame)
    return frames


def load_predictions(results_dir: Path | str, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
    folder = predictions_dir(results_dir)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if run_ids is not None:
        files = [f for f in files if any(f.name.startswith(r) for r in run_ids)]
    # a unit's predictions count once its records file (written after them, same name) is there: a
    # process killed between the two writes leaves predictions that a re-run of the unit would double
    committed = {f.stem for f in runs_dir(results_dir).glob("*.parquet")}
    files = [f for f in files if f.stem in committed]
    frames = _read_all(files, REQUIRED_PREDICTION_COLUMNS)
    if not frames:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def load_records(results_dir: Path | str) -> pd.DataFrame:
    """Every record of every run, as one DataFrame (empty with the right columns if none). A file
    that cannot be read is skipped with a warning naming it (see ``xlexp.results.store_check``)."""
    folder = runs_dir(results_dir)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    frames = _read_all(files, REQUIRED_RECORD_COLUMNS)
    if not frames:
        return pd.DataFrame(columns=RECORD_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def check_writable(results_dir: Path | str, *more: Path | str) -> None:
    """Fail before any work when records could not be written (an unwritable or read-only folder,
    a file where the folder should be): found after training, all the work would be lost. Every
    folder a run writes its results into is checked (``runs/``, ``predictions/``, ``claims/``), and
    ``more`` folders too (the run's checkpoint folder)."""
    for folder in (runs_dir(results_dir), predictions_dir(results_dir), Path(results_dir) / "claims"):
        check_folder(folder, "results", "set paths.results_dir=... or XLEXP_RESULTS_DIR to a writable folder")
    for folder in more:
        check_folder(Path(folder), "cache files", "set paths.cache_dir=... or XLEXP_CACHE_DIR to a writable folder")


def check_folder(folder: Path, what: str, fix: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-check.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise XlexpError(f"cannot write {what} to {folder}: {e.strerror or type(e).__name__} ({fix})") from None


def require_records(results_dir: Path | str) -> pd.DataFrame:
    df = load_records(results_dir)
    if df.empty:
        raise XlexpError(
            f"no records under {runs_dir(results_dir)}: run `xlexp run ...` first (or set XLEXP_RESULTS_DIR)"
        )
    return df
