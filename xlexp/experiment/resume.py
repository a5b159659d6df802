"""Resume by content: a run skips the training units whose complete records are in the store.

Every unit has a key, :func:`xlexp.results.store.unit_config_hash` of the run's resolved config
(without ``langpair`` and ``regime.seeds``, which only say which units a run has) and the unit
itself. Its records file is named ``...-u<key>.parquet`` and written last and atomically (predictions
first), so a file with the key means the unit finished; a unit killed half-way (kill -9, a node
failure, a cluster time limit) left no such file and is trained again. Re-running the command of a
crashed run therefore trains only what is missing, and the jobs of a multirun (one source each) find
the units that another run of the same experiment already finished. ``rerun=true`` trains every unit
again (the newest records of a cell win in every view, see ``xlexp.results.query.latest``).

Not resumed: sweep trials (``RunHooks.on_eval`` or ``records_dir`` set). A trial is its own
experiment (its name carries the trial number), its objective comes from the dev evaluations it
watches, and the sweep re-queues a killed trial whole (see ``xlexp.sweep.commit``). Few-shot cells
are records of their source unit (K = 0 and every K > 0 cell are one file), so they are skipped or
redone with it.

The same places keep the unit ledger up to date (``xlexp.results.units``: planned, running, done,
failed, with host, pid and the measured unit time) for ``xlexp status`` and the partial matrix of
``xlexp matrix``.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from xlexp.config.schema import Settings
from xlexp.engine import distributed
from xlexp.errors import XlexpError
from xlexp.experiment.context import RunHooks
from xlexp.experiment.plan import Plan
from xlexp.results import units as ledger
from xlexp.results.liveness import HeldLock
from xlexp.results.store import unit_config_hash

log = logging.getLogger(__name__)

FAULT_ENV = "XLEXP_FAULT"


def fault_point(where: str, index: int) -> None:
    """Crash-test hook: ``XLEXP_FAULT=before-records:3`` makes the process kill itself with SIGKILL
    (nothing runs after it: no finally block, no signal handler) when unit 3 has trained, tested and
    written its predictions but not yet its records, the worst moment for a crash. Used by
    tests/experiment/test_matrix_scale.py; unset, it costs one dictionary lookup per unit."""
    if os.environ.get(FAULT_ENV) == f"{where}:{index + 1}":
        os.kill(os.getpid(), signal.SIGKILL)


def unit_keys(settings: Settings, plan: Plan) -> list[str]:
    return [unit_config_hash(dict(settings.resolved), asdict(u)) for u in plan.units]


@dataclass
class Resume:
    settings: Settings
    plan: Plan
    keys: list[str]
    done: dict[int, tuple[Path, pd.DataFrame]] = field(default_factory=dict)
    entries: list[ledger.UnitEntry] = field(default_factory=list)
    keep_ledger: bool = False
    _claims: dict[int, HeldLock] = field(default_factory=dict, repr=False)
    # record files of this run's units already in the store when it began (with rerun=true they are
    # trained again: only a file written since then means another run just finished the unit)
    existing: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def of(cls, s: Settings, plan: Plan, hooks: RunHooks) -> Resume:
        """The plan's unit keys, which of them are complete in the store (skipped unless
        ``rerun=true``; one line each), and the ledger's planned units."""
        keys = unit_keys(s, plan)
        sweep_trial = hooks.on_eval is not None or hooks.records_dir is not None
        out = cls(s, plan, keys, keep_ledger=not sweep_trial and distributed.is_main())
        if out.keep_ledger:
            out.existing = ledger.unit_record_files(s.paths.results_dir, set(keys))
        if not s.rerun and not sweep_trial:
            found = distributed.broadcast_object(ledger.committed_units(s.paths.results_dir, set(keys)))
            out.done = {i: found[k] for i, k in enumerate(keys) if k in found}
        out.entries = [
            ledger.UnitEntry(s.experiment, k, u.source, u.seed, list(u.targets)) for k, u in zip(keys, plan.units)
        ]
        if out.keep_ledger:
            ledger.plan_units(s.paths.results_dir, [e for i, e in enumerate(out.entries) if i not in out.done])
        n = len(plan.units)
        for i, (path, _) in sorted(out.done.items()):
            u = plan.units[i]
            log.info(
                "skip unit %d/%d (source %s, seed %d): its records are in the store (%s); rerun=true trains it again",
                i + 1,
                n,
                u.source,
                u.seed,
                path.name,
            )
        if out.done:
            log.info("resume: %d of %d unit(s) complete in the store, %d to train", len(out.done), n, n - len(out.done))
        return out

    @property
    def all_done(self) -> bool:
        return len(self.done) == len(self.plan.units)

    def skip(self, index: int) -> bool:
        return index in self.done

    def skipped_records(self) -> list[pd.DataFrame]:
        return [frame for _, (_, frame) in sorted(self.done.items())]

    def claim(self, index: int, wait: bool = False) -> str:
        """Claim unit ``index`` for this process (``xlexp.results.units.claim_path``): ``"train"``
        (claimed: train it, then :meth:`release`), ``"busy"`` (another live run trains it; only
        without ``wait``) or ``"done"`` (its records reached the store meanwhile: they are read and
        the unit skipped). Sweep trials are their own experiments and claim nothing. Rank 0 decides,
        for every rank."""
        verdict = "train"
        if self.keep_ledger:
            verdict = self._claim(index, wait)
        return distributed.broadcast_object(verdict)

    def _claim(self, index: int, wait: bool) -> str:
        results, key, u = self.settings.paths.results_dir, self.keys[index], self.plan.units[index]
        lock = self._claims.setdefault(index, HeldLock(ledger.claim_path(results, key)))
        try:
            claimed = lock.acquire()
        except OSError as e:  # a folder or an unreadable file where the claim belongs
            raise XlexpError(
                f"cannot claim unit {index + 1} at {lock.path}: {e.strerror or e} (remove it; claims are "
                f"lock files that xlexp makes and removes)"
            ) from None
        if not claimed:
            _, host, pid = ledger.claim_holder(results, key)
            if not wait:
                log.info(
                    "unit %d/%d (source %s, seed %d): another run trains it now (host %s, pid %s; %s); the other "
                    "units first",
                    index + 1,
                    len(self.plan.units),
                    u.source,
                    u.seed,
                    host,
                    pid,
                    lock.path,
                )
                return "busy"
            log.info(
                "unit %d/%d (source %s, seed %d): another run trains it (host %s, pid %s); waiting for it "
                "instead of training it twice",
                index + 1,
                len(self.plan.units),
                u.source,
                u.seed,
                host,
                pid,
            )
            lock.acquire(block=True)
        found = ledger.committed_units(results, {key})
        if key in found and found[key][0].name not in self.existing:  # another run finished it meanwhile
            lock.release()
            self.done[index] = found[key]
            log.info(
                "skip unit %d/%d (source %s, seed %d): another run finished it meanwhile (%s)",
                index + 1,
                len(self.plan.units),
                u.source,
                u.seed,
                found[key][0].name,
            )
            return "done"
        return "train"

    def release(self, index: int) -> None:
        lock = self._claims.pop(index, None)
        if lock is not None:
            lock.release()

    def started(self, index: int, run_id: str) -> None:
        if self.keep_ledger:
            ledger.mark(
                self.settings.paths.results_dir,
                self.entries[index],
                "running",
                host=ledger.this_host(),
                pid=os.getpid(),
                run_id=run_id,
                started=time.time(),
                error=None,
                elapsed_s=None,
            )

    def done_unit(self, index: int, elapsed_s: float, records_file: Path) -> None:
        if self.keep_ledger:
            ledger.mark(
                self.settings.paths.results_dir,
                self.entries[index],
                "done",
                elapsed_s=round(elapsed_s, 2),
                records_file=Path(records_file).name,
            )

    def failed(self, index: int, error: BaseException, elapsed_s: float) -> None:
        if self.keep_ledger:
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            if not text:
                text = traceback.format_exception_only(type(error), error)[-1].strip()
            if not isinstance(error, XlexpError):  # a one-line xlexp error says it all; others need their type
                text = f"{type(error).__name__}: {text}"
            ledger.mark(
                self.settings.paths.results_dir,
                self.entries[index],
                "failed",
                error=text,
                elapsed_s=round(elapsed_s, 2),
            )
