"""Optuna storage for sweeps: RDB (SQLite file or PostgreSQL) with heartbeats, stale-trial retry, and
a cross-process lock that makes ``n_trials`` an exact total however many workers ask at once.

Optuna's own ``n_trials`` counts per ``optimize`` call, so parallel or resumed workers overshoot
it. Here every worker takes the lock, counts the study's trials and only then asks for a new one;
the lock is a file lock for SQLite (one machine) and a PostgreSQL advisory lock (many nodes).

May import: :mod:`xlexp.tracking.masking` (URLs without passwords), :mod:`xlexp.errors`, Optuna, SQLAlchemy.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from xlexp.errors import XlexpError
from xlexp.tracking.masking import mask_url

log = logging.getLogger(__name__)

STORAGE_ENV = "XLEXP_SWEEP_STORAGE"   # workers get the URL here, never on a command line (ps shows those)
FAIL_REASON = "fail_reason"           # trial user attr (in-process failures)
STALE_REASON_PREFIX = "fail_reason:"  # study user attr per trial number (stale trials cannot be written to)
MAX_RETRY = 2

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# we ask/tell ourselves and keep the heartbeat with :class:`Heartbeat`, which Optuna cannot see
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def default_storage_url(results_dir: str | Path, family: str) -> str:
    """One SQLite file per study family (sweep file) under the results store."""
    path = (Path(results_dir) / "sweeps" / f"{family}.db").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?")[0]
    return None if path in ("", ":memory:") else Path(path)


class StaleTrialRetry(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry callback, plus the reason: a stale trial is already FAIL (and frozen) when this
    runs, so the reason goes to a study attribute keyed by its number; the retry copies its params."""

    def __init__(self, grace_s: int, max_retry: int | None = MAX_RETRY) -> None:
        super().__init__(max_retry=max_retry)
        self.grace_s = grace_s

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        reason = (f"worker lost: no heartbeat for more than {self.grace_s}s "
                  f"(killed, preempted or its node died); worker {trial.user_attrs.get('worker', '?')}")
        study.set_user_attr(f"{STALE_REASON_PREFIX}{trial.number}", reason)
        log.warning("trial %d: %s; re-queued unless retried %d times already", trial.number, reason, MAX_RETRY)
        super().__call__(study, trial)


def open_storage(url: str, heartbeat_s: int) -> RDBStorage:
    grace = max(3 * heartbeat_s, heartbeat_s + 2)
    engine: dict = {}
    if url.startswith("sqlite"):
        engine = {"connect_args": {"timeout": 120}}  # workers share one file: wait for the writer, don't fail
    elif url.startswith("postgresql"):
        engine = {"pool_pre_ping": True}
    try:
        return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_s, grace_period=grace,
                          heartbeat_stale_trial_callback=StaleTrialRetry(grace_s=grace))
    except Exception as e:  # sqlalchemy / driver errors: say where, without the password
        raise XlexpError(f"cannot open sweep storage {mask_url(url)}: {type(e).__name__}: {mask_url(str(e)).splitlines()[0]}") from None


@contextmanager
def budget_lock(url: str, study_name: str) -> Iterator[None]:
    """Serialise "count trials, then ask" across every worker of a study."""
    path = sqlite_path(url)
    if path is not None:
        lock_file = path.with_name(f"{path.name}.{study_name}.lock")
        with lock_file.open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return
    if url.startswith("postgresql"):
        import sqlalchemy

        key = int.from_bytes(hashlib.sha1(f"xlexp-sweep/{study_name}".encode()).digest()[:8], "big", signed=True)
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            engine.dispose()
        return
    log.warning("no cross-worker lock for %s: parallel workers may run a few trials past n_trials", mask_url(url).split(":")[0])
    yield


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Trial numbers that were re-queued (their retry stands in for them)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def budget_used(trials: list[FrozenTrial]) -> int:
    """Trials that count against n_trials: all of them, except failed ones that were re-queued."""
    retried = retried_numbers(trials)
    return sum(1 for t in trials if not (t.state == TrialState.FAIL and t.number in retried))


def fail_reason(study: optuna.Study, trial: FrozenTrial) -> str | None:
    if trial.state != TrialState.FAIL:
        return None
    return (trial.user_attrs.get(FAIL_REASON) or study.user_attrs.get(f"{STALE_REASON_PREFIX}{trial.number}")
            or "failed (no reason stored)")


@dataclass
class Heartbeat:
    """Records the trial's heartbeat every interval from a thread while the trial runs, so a killed
    worker's trial goes stale and is failed and re-queued by the next worker that asks."""

    storage: RDBStorage
    trial_id: int
    interval_s: int
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as e:  # a missed beat is not fatal; a long outage makes the trial stale
                log.warning("heartbeat for trial id %d failed: %s", self.trial_id, mask_url(str(e)).splitlines()[0])

    def __enter__(self) -> "Heartbeat":
        self.storage.record_heartbeat(self.trial_id)
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.trial_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
