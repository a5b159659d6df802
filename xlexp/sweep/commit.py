"""A trial's records enter the store only when the study has the trial COMPLETE (two-phase commit),
and they carry the study's storage-unique id.

**Pending, then promoted.** A trial's run writes its record and prediction files into
``<results>/pending/<experiment>/`` (:mod:`xlexp.results.pending`). After ``study.tell`` has stored
the trial as COMPLETE, its worker promotes them into ``<results>/runs`` and
``<results>/predictions``; a pruned or failed trial's folder is deleted. So a worker killed between
writing its records and telling the study leaves no rows in the store: its trial goes stale, is
failed and re-queued, and its folder is discarded. :func:`recover` runs under the study's lock each
time a worker asks for a trial: folders of COMPLETE trials whose promotion was interrupted are
promoted (idempotently), those of FAIL and PRUNED trials deleted (one log line each); RUNNING ones
are left alone.

**Storage-unique study id.** A study name is only unique within one storage: the same sweep run
against a new SQLite file or another PostgreSQL database starts again at trial 0. Each study
therefore gets a short random id (study user attr ``xlexp_uid``, added under the lock to studies
made by older versions), and a trial's experiment is ``<study>-<uid>-t<NNNN>`` and its records'
``study`` column ``<study>@<uid>``: two studies never share an experiment.

**A kill during the promotion.** Its worker holds ``pending/<experiment>.lock`` until the files are
promoted, so a folder whose lock is free belongs to a gone worker and is finished at once, by the
next worker *or* by the next ``xlexp sweep`` call of the study even when the study has all its
trials (:func:`recover_now`): a complete trial's records never wait for a larger ``--n-trials``.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from xlexp.results.liveness import lock_state
from xlexp.results.pending import discard, list_pending, pending_dir, pending_lock, promote
from xlexp.sweep.storage import STALE_REASON_PREFIX, budget_lock

log = logging.getLogger("xlexp.sweep.worker")

UID_ATTR = "xlexp_uid"  # study user attr: the study's storage-unique id


def new_uid() -> str:
    return uuid.uuid4().hex[:6]


def ensure_study_uid(study: optuna.Study, url: str) -> str:
    """The study's id; a study made by an older xlexp gets one here, under the lock (one winner)."""
    uid = study.user_attrs.get(UID_ATTR)
    if uid:
        return str(uid)
    with budget_lock(url, study.study_name):
        uid = study.user_attrs.get(UID_ATTR)  # read again: another worker may have set it meanwhile
        if not uid:
            uid = new_uid()
            study.set_user_attr(UID_ATTR, uid)
    return str(uid)


def experiment_name(study_name: str, uid: str | None, number: int) -> str:
    return f"{study_name}-{uid}-t{number:04d}" if uid else f"{study_name}-t{number:04d}"


def study_tag(study_name: str, uid: str | None) -> str:
    """The ``study`` column of a trial's records."""
    return f"{study_name}@{uid}" if uid else study_name


def trial_pending_dir(results_dir: Path, study_name: str, uid: str, number: int) -> Path:
    return pending_dir(results_dir, experiment_name(study_name, uid, number))


def _settled(study: optuna.Study, trial: FrozenTrial, min_age_s: float, folder: Path) -> bool:
    """Whether the trial's own worker is surely done with its folder. Its worker holds the folder's
    lock (``xlexp.results.liveness``) from the run until the promotion: a held lock means a live
    worker (leave it alone), a free one a gone worker (finish its job now, however recently it told
    the study). A folder without a lock file (an older version's): the trial was failed as stale (its
    worker is gone), or it finished more than ``min_age_s`` ago."""
    state = lock_state(pending_lock(folder))
    if state != "none":
        return state == "free"
    if f"{STALE_REASON_PREFIX}{trial.number}" in study.user_attrs or trial.datetime_complete is None:
        return True
    return (datetime.now() - trial.datetime_complete).total_seconds() >= min_age_s


def recover(study: optuna.Study, uid: str, results_dir: Path, min_age_s: float = 0.0) -> dict[str, int]:
    """Finish what killed workers left in ``<results>/pending/`` for this study (call under the lock).
    Returns how many folders were promoted and discarded."""
    prefix = experiment_name(study.study_name, uid, 0)[:-4]  # "<study>-<uid>-t"
    folders = list_pending(results_dir, prefix)
    done = {"promoted": 0, "discarded": 0}
    if not folders:
        return done
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for name, folder in folders.items():
        m = re.fullmatch(r"\d+", name[len(prefix) :])
        trial = trials.get(int(m.group())) if m else None
        if trial is None or not _settled(study, trial, min_age_s, folder):
            continue
        state = trial.state
        if state == TrialState.COMPLETE:
            files = promote(folder, results_dir)
            pending_lock(folder).unlink(missing_ok=True)
            done["promoted"] += 1
            log.warning(
                "trial %d is COMPLETE but its worker stopped before its records entered the store: "
                "promoted %d records file(s) from %s",
                int(m.group()),
                len(files),
                folder,
            )
        elif state in (TrialState.FAIL, TrialState.PRUNED):
            n = discard(folder)
            pending_lock(folder).unlink(missing_ok=True)
            done["discarded"] += 1
            log.warning(
                "trial %d is %s: discarded its %d pending records file(s) (%s); only complete trials' "
                "records enter the store",
                int(m.group()),
                state.name,
                n,
                folder,
            )
    return done


def recover_now(study: optuna.Study, url: str, uid: str, results_dir: Path, min_age_s: float) -> dict[str, int]:
    """:func:`recover` under the study's lock: what ``xlexp sweep`` runs before deciding whether
    there is anything to run, so the files of a worker killed during its last promotion reach the
    store even when no further trial is asked for."""
    with budget_lock(url, study.study_name):
        return recover(study, uid, results_dir, min_age_s=min_age_s)
