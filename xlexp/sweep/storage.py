"""Optuna storage for sweeps: RDB (SQLite file or PostgreSQL) with heartbeats, stale-trial retry, and
a cross-process lock that makes ``n_trials`` an exact total however many workers ask at once.

Optuna's own ``n_trials`` counts per ``optimize`` call, so parallel or resumed workers overshoot
it. Here every worker takes the lock, counts the study's trials and only then asks for a new one;
the lock is a file lock for SQLite (one machine; ``filelock``, so it works on every OS) and a
PostgreSQL advisory lock (many nodes).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from xlexp.errors import XlexpError
from xlexp.sweep.outage import StorageHealth, is_outage
from xlexp.tracking.masking import mask_url, remember_url, url_hint

log = logging.getLogger(__name__)

STORAGE_ENV = "XLEXP_SWEEP_STORAGE"  # workers get the URL here, never on a command line (ps shows those)
FAIL_REASON = "fail_reason"  # trial user attr (in-process failures)
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
    path = url[len("sqlite:///") :].split("?")[0]
    return None if path in ("", ":memory:") else Path(path)


class StaleTrialRetry(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry callback, plus the reason: a stale trial is already FAIL (and frozen) when this
    runs, so the reason goes to a study attribute keyed by its number; the retry copies its params."""

    def __init__(self, grace_s: int, max_retry: int | None = MAX_RETRY) -> None:
        super().__init__(max_retry=max_retry)
        self.grace_s = grace_s

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        reason = (
            f"worker lost: no heartbeat for more than {self.grace_s}s "
            f"(killed, preempted or its node died); worker {trial.user_attrs.get('worker', '?')}"
        )
        study.set_user_attr(f"{STALE_REASON_PREFIX}{trial.number}", reason)
        log.warning("trial %d: %s; re-queued unless retried %d times already", trial.number, reason, MAX_RETRY)
        super().__call__(study, trial)


def grace_period_s(heartbeat_s: int) -> int:
    """How long a RUNNING trial may go without a heartbeat before it counts as stale."""
    return max(3 * heartbeat_s, heartbeat_s + 2)


def heartbeat_ages(study: optuna.Study) -> dict[int, float]:
    """Seconds since the last heartbeat of each RUNNING trial (by number), by the database's clock.
    Read-only (``--status`` fails nothing); empty for storages without heartbeats."""
    import sqlalchemy
    from optuna.storages._rdb import models

    rdb = getattr(study._storage, "_backend", study._storage)  # load_study wraps an RDBStorage in a cache
    if not isinstance(rdb, RDBStorage):
        return {}
    session = rdb.scoped_session()
    try:
        now = session.execute(sqlalchemy.func.now()).scalar()
        rows = (
            session.query(models.TrialModel.number, models.TrialHeartbeatModel.heartbeat)
            .join(models.TrialHeartbeatModel, models.TrialHeartbeatModel.trial_id == models.TrialModel.trial_id)
            .filter(models.TrialModel.study_id == study._study_id, models.TrialModel.state == TrialState.RUNNING)
            .all()
        )
    finally:
        rdb.scoped_session.remove()
    now = now.replace(tzinfo=None)  # PostgreSQL answers with a time zone, SQLite without (as Optuna does it)
    return {int(n): max(0.0, (now - beat.replace(tzinfo=None)).total_seconds()) for n, beat in rows}


def pg_connect_args(url: str) -> dict:
    """A connect timeout for PostgreSQL unless the URL sets one: a host that does not answer (a
    network partition, not a refused connection) must fail a call in seconds, so that the outage
    retries (:mod:`xlexp.sweep.outage`) and the heartbeat thread keep their pace."""
    return {} if "connect_timeout=" in url else {"connect_args": {"connect_timeout": 10}}


def start_orphan_clocks(study: optuna.Study, storage: RDBStorage) -> list[int]:
    """RUNNING trials without any heartbeat (a worker died, or lost the storage, between asking for
    a trial and its first heartbeat) would never go stale, and workers would wait for them for ever:
    give them a heartbeat now, so that they are failed and re-queued after the grace period. Call
    under the budget lock (a live worker asks and beats inside it). Returns their numbers."""
    running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    if not running:
        return []
    beating = heartbeat_ages(study)
    orphans = [t for t in running if t.number not in beating]
    for t in orphans:
        storage.record_heartbeat(t._trial_id)
        log.warning(
            "trial %d is RUNNING but never sent a heartbeat (its worker died right after asking): "
            "it is failed and re-queued if none comes within the grace period",
            t.number,
        )
    return [t.number for t in orphans]


def open_storage(url: str, heartbeat_s: int) -> RDBStorage:
    remember_url(url)  # its password is masked in every later line, even one with spaces in it
    grace = grace_period_s(heartbeat_s)
    engine: dict = {}
    if url.startswith("sqlite"):
        engine = {"connect_args": {"timeout": 120}}  # workers share one file: wait for the writer, don't fail
    elif url.startswith("postgresql"):
        engine = {"pool_pre_ping": True, **pg_connect_args(url)}
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=heartbeat_s,
            grace_period=grace,
            heartbeat_stale_trial_callback=StaleTrialRetry(grace_s=grace),
        )
    except Exception as e:  # sqlalchemy / driver errors: say where, without the password
        raise XlexpError(
            f"cannot open sweep storage {mask_url(url)}: {type(e).__name__}: "
            f"{mask_url(str(e)).splitlines()[0]}{url_hint(url)}"
        ) from None


@contextmanager
def budget_lock(url: str, study_name: str) -> Iterator[None]:
    """Serialise "count trials, then ask" across every worker of a study."""
    path = sqlite_path(url)
    if path is not None:
        from filelock import FileLock  # flock on POSIX, msvcrt locking on Windows: one lock everywhere

        with FileLock(path.with_name(f"{path.name}.{study_name}.lock")):
            yield
        return
    if url.startswith("postgresql"):
        import sqlalchemy

        key = int.from_bytes(hashlib.sha1(f"xlexp-sweep/{study_name}".encode()).digest()[:8], "big", signed=True)
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **pg_connect_args(url))
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
    log.warning(
        "no cross-worker lock for %s: parallel workers may run a few trials past n_trials", mask_url(url).split(":")[0]
    )
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
    return (
        trial.user_attrs.get(FAIL_REASON)
        or study.user_attrs.get(f"{STALE_REASON_PREFIX}{trial.number}")
        or "failed (no reason stored)"
    )


@dataclass
class Heartbeat:
    """Records the trial's heartbeat every interval from a thread while the trial runs, so a killed
    worker's trial goes stale and is failed and re-queued by the next worker that asks. With a
    ``health`` (:class:`xlexp.sweep.outage.StorageHealth`) a storage outage is one warning line for
    the whole worker, however many beats it swallows."""

    storage: RDBStorage
    trial_id: int
    interval_s: int
    health: StorageHealth | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as e:  # a missed beat is not fatal; a long outage makes the trial stale
                if self.health is not None and is_outage(e):
                    self.health.failed(e)
                else:
                    log.warning("heartbeat for trial id %d failed: %s", self.trial_id, mask_url(str(e)).splitlines()[0])
            else:
                if self.health is not None:
                    self.health.ok()

    def __enter__(self) -> Heartbeat:
        if self.health is not None:
            self.health.call(lambda: self.storage.record_heartbeat(self.trial_id), f"starting trial id {self.trial_id}")
        else:
            self.storage.record_heartbeat(self.trial_id)
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.trial_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
