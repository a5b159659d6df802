"""The unit ledger: what every training unit of an experiment is doing, for resume, partial matrices
and ``xlexp status``.

A matrix at cluster scale is many processes (one SLURM array task per source) writing one store.
The records say which units are *done* (a records file is written last and atomically, so a unit's
records are all there or none are; its ``unit_key`` column names the unit). What the records cannot
say is which units are still to come, running, or dead: that is this ledger, one small JSON file per
unit under ``<results_dir>/units/<experiment>/<unit_key>.json``, rewritten atomically (temp file +
``os.replace``) at each change of state:

- ``planned``: a run (or the multirun launcher, before it submits the jobs) planned the unit;
- ``running``: a process started it (host, pid, run id, start time);
- ``done``: its records file is in the store (with the unit's measured wall time, for the ETA);
- ``failed``: it raised (the one-line error), or was stopped by a signal.

A process killed with SIGKILL cannot write anything: its units stay ``running``. Whether it still
runs is asked of the unit's **claim**, ``<results_dir>/claims/<unit_key>.lock``, an flock the
training process holds (``xlexp.results.liveness``): held = running (on any host that sees the lock,
in any PID namespace), free = the process is gone, and :func:`unit_states` reports the unit
``failed``. The claim is also what keeps two concurrent runs of one config (a retried SLURM array
task, a run typed twice) from both training a unit: the second one trains the other units first and
then waits for the claim, and reads the unit's records instead of training it. (Ledger files of
older versions, without a claim, fall back to the pid on this host.)
The records stay the authority on *done*: a unit whose key is in the store is done whatever its
ledger file says, so a lost or stale ledger file never makes a run redo or skip work.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from xlexp.config.names import safe_folder_name, temp_path
from xlexp.results.liveness import lock_owner, lock_state
from xlexp.results.store import load_records, runs_dir

UNITS = "units"
STATES = ("done", "running", "failed", "pending")


def safe_name(name: str) -> str:
    return safe_folder_name(name)


def ledger_dir(results_dir: Path | str, experiment: str) -> Path:
    return Path(results_dir) / UNITS / safe_name(experiment)


@dataclass
class UnitEntry:
    experiment: str
    unit_key: str
    source: str
    seed: int
    targets: list[str] = field(default_factory=list)
    state: str = "planned"  # planned | running | done | failed
    host: str | None = None
    pid: int | None = None
    run_id: str | None = None
    started: float | None = None  # time.time() when the unit started
    elapsed_s: float | None = None  # wall time of the finished unit (done) or until it failed
    error: str | None = None
    records_file: str | None = None
    updated: float | None = None
    slurm_job: str | None = None  # the SLURM job running it ("<array job>_<task>"), set when it starts
    job_num: int | None = None  # its multirun job number (the SLURM array task id), set when planned


def _path(results_dir: Path | str, experiment: str, key: str) -> Path:
    return ledger_dir(results_dir, experiment) / f"{key}.json"


def write_entry(results_dir: Path | str, entry: UnitEntry) -> None:
    """Atomically (re)write one unit's ledger file; a failure to write it never stops a run."""
    path = _path(results_dir, entry.experiment, entry.unit_key)
    entry.updated = time.time()
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(asdict(entry), sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def read_entry(path: Path) -> UnitEntry | None:
    try:
        raw = json.loads(path.read_text())
        return UnitEntry(**{k: v for k, v in raw.items() if k in UnitEntry.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def plan_units(results_dir: Path | str, entries: list[UnitEntry]) -> None:
    """Record planned units that have no ledger file yet (another process's running or failed unit
    keeps its state: planning never overwrites it)."""
    for e in entries:
        if not _path(results_dir, e.experiment, e.unit_key).exists():
            write_entry(results_dir, e)


def slurm_job_id() -> str | None:
    """This process's SLURM job as ``squeue``/``sacct`` name it: ``<array job>_<task>`` for an array
    task, else the job id; None outside SLURM. ``xlexp status`` joins the ledger to SLURM's view by it."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


def mark(results_dir: Path | str, entry: UnitEntry, state: str, **changes) -> UnitEntry:
    entry.state = state
    if state == "running":
        entry.slurm_job = slurm_job_id()
    for k, v in changes.items():
        setattr(entry, k, v)
    write_entry(results_dir, entry)
    return entry


def read_ledger(results_dir: Path | str, experiment: str) -> list[UnitEntry]:
    folder = ledger_dir(results_dir, experiment)
    if not folder.is_dir():
        return []
    return [e for p in sorted(folder.glob("*.json")) if (e := read_entry(p)) is not None]


def completed_units(
    results_dir: Path | str, experiment: str | None = None, records: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """The records of every unit that is complete in the store, by unit key (records files are
    written whole or not at all, so any record of a unit means all of them are there). With several
    complete copies of one unit (``rerun=true``), the newest run's records."""
    df = load_records(results_dir) if records is None else records
    if df.empty or "unit_key" not in df.columns:
        return {}
    df = df[df["unit_key"].notna()]
    if experiment is not None:
        df = df[df["experiment"] == experiment]
    out = {}
    for key, group in df.groupby("unit_key", sort=False):
        newest = group.sort_values("timestamp")["run_id"].iloc[-1]
        out[str(key)] = group[group["run_id"] == newest]
    return out


CLAIMS = "claims"


def claim_path(results_dir: Path | str, key: str) -> Path:
    """``<results>/claims/<unit key>.lock``: held (``xlexp.results.liveness``) by the process that
    trains the unit. Keyed like the records (the unit key, not the experiment), so any two runs that
    would write the same unit's records share one claim."""
    return Path(results_dir) / CLAIMS / f"{key}.lock"


def claim_holder(results_dir: Path | str, key: str) -> tuple[str, str | None, int | None]:
    """(lock state, host, pid) of a unit's claim: ``held`` (a live process trains it), ``free`` (its
    process is gone) or ``none`` (no claim file)."""
    path = claim_path(results_dir, key)
    state = lock_state(path)
    host, pid = lock_owner(path) if state != "none" else (None, None)
    return state, host, pid


def _pid_alive(pid: int | None) -> bool:
    """Only for ledger files of older versions (no claim): a pid that is not a positive integer (a
    hand-edited or corrupt file: ``"abc"``, ``-1``, which would signal every process) is not alive."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_host() -> str:
    return socket.gethostname()


@dataclass
class UnitState:
    entry: UnitEntry
    state: str  # done | running | failed | pending
    detail: str = ""


def unit_states(results_dir: Path | str, experiment: str, records: pd.DataFrame | None = None) -> list[UnitState]:
    """Every unit the ledger knows for ``experiment`` (plus units done in the store without a ledger
    file), with its state: done from the records, else the ledger's, a ``running`` unit whose process
    is gone from this host counted as failed."""
    done = completed_units(results_dir, experiment, records)
    entries = {e.unit_key: e for e in read_ledger(results_dir, experiment)}
    out = []
    for key, frame in done.items():
        e = entries.pop(key, None)
        if e is None:
            first = frame.iloc[0]
            e = UnitEntry(
                experiment,
                key,
                str(first["source"]),
                int(first["seed"]),
                sorted(frame["target"].astype(str).unique()),
                state="done",
                run_id=str(first["run_id"]),
            )
        out.append(UnitState(e, "done"))
    for e in entries.values():
        if e.state == "running":
            claim = lock_state(claim_path(results_dir, e.unit_key))
            if claim == "held":  # a live process holds the unit's claim: on any host, in any PID namespace
                out.append(UnitState(e, "running"))
            elif claim == "free" or (e.host == this_host() and not _pid_alive(e.pid)):  # no claim: an older version's
                out.append(
                    UnitState(
                        e,
                        "failed",
                        f"process {e.pid} on {e.host} is gone (killed: SIGKILL, out of "
                        f"memory or a node failure); re-run the command to redo the unit",
                    )
                )
            else:
                out.append(UnitState(e, "running"))
        elif e.state == "failed":
            out.append(UnitState(e, "failed", e.error or "failed"))
        elif e.state == "done":  # its records file was removed (or quarantined): it must be redone
            out.append(
                UnitState(e, "pending", f"its records file {e.records_file} is no longer in {runs_dir(results_dir)}")
            )
        else:
            out.append(UnitState(e, "pending"))
    return out


def eta_seconds(states: list[UnitState], now: float | None = None) -> tuple[float | None, float | None]:
    """(mean measured unit time, time until the last unit is done) from the finished units' wall
    times: pending units take the mean each, running ones the mean less what they have run, and the
    remaining work is spread over as many processes as are running now (at least one)."""
    times = [s.entry.elapsed_s for s in states if s.state == "done" and s.entry.elapsed_s]
    if not times:
        return None, None
    mean = sum(times) / len(times)
    now = time.time() if now is None else now
    running = [s for s in states if s.state == "running"]
    left = sum(mean for s in states if s.state == "pending")
    left += sum(max(mean - (now - (s.entry.started or now)), 0.0) for s in running)
    return mean, left / max(len(running), 1)


def unit_record_files(results_dir: Path | str, keys: set[str]) -> set[str]:
    """Names of the record files in the store of the units in ``keys`` (by name, nothing opened)."""
    folder = runs_dir(results_dir)
    return {
        f.name for f in (folder.glob("*-u*.parquet") if folder.is_dir() else []) if f.stem.rsplit("-u", 1)[-1] in keys
    }


def committed_units(results_dir: Path | str, keys: set[str]) -> dict[str, tuple[Path, pd.DataFrame]]:
    """The records file and records of each unit in ``keys`` that is complete in the store, found by
    file name (``...-u<key>.parquet``: no other file is opened, so a resume check costs the same in a
    store of ten thousand files). An unreadable file does not count (the unit is trained again);
    with several files for one key (``rerun=true``), the newest."""
    from xlexp.results.store import REQUIRED_RECORD_COLUMNS, read_store_file

    folder = runs_dir(results_dir)
    by_key: dict[str, list[Path]] = {}
    for f in folder.glob("*-u*.parquet") if folder.is_dir() else []:
        key = f.stem.rsplit("-u", 1)[-1]
        if key in keys:
            by_key.setdefault(key, []).append(f)
    out = {}
    for key, files in by_key.items():
        for f in sorted(files, key=lambda p: p.name, reverse=True):  # names start with the run id: a UTC time
            frame, _ = read_store_file(f, REQUIRED_RECORD_COLUMNS)
            if frame is not None and len(frame):
                out[key] = (f, frame)
                break
    return out


def latest_activity(results_dir: Path | str, records: pd.DataFrame) -> str | None:
    """THE "latest experiment" of every command that takes none (``matrix``, ``status``, ``table``,
    ``report``'s order): the experiment with the newest activity, a record written or a unit's ledger
    entry changed (a matrix still running is newer than a finished one), whichever is later."""
    best: tuple[float, str] | None = None
    root = Path(results_dir) / UNITS
    for f in root.glob("*/*.json") if root.is_dir() else []:
        e = read_entry(f)
        if e is not None:
            t = e.updated or f.stat().st_mtime
            best = max(best, (t, e.experiment)) if best else (t, e.experiment)
    if not records.empty:
        stamps = pd.to_datetime(records["timestamp"], utc=True, errors="coerce")
        newest = records.assign(_t=stamps).groupby("experiment")["_t"].max().dropna()
        if len(newest):
            name = str(newest.idxmax())
            t = newest.max().timestamp()
            best = max(best, (t, name)) if best else (t, name)
    return best[1] if best else None
