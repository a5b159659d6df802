"""Checkpoint selection rules, decided post hoc from one training run.

Rules: ``source_dev`` (best mean source-dev score: the XTREME protocol), ``target_dev`` (best dev
score of that target: the oracle) and ``last``. During training every evaluation reports a score
per rule key (``source_dev``, ``target_dev:<lang>``); the keeper saves a checkpoint only when it
becomes the best for some key and deletes it once no key points at it, so at most as many
checkpoints exist as distinct best steps. ``last`` is the model in memory when training ends.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from xlexp.models.finetune import trainable_state
from xlexp.results.liveness import HeldLock, lock_state

RULES = ("source_dev", "target_dev", "last")


def target_key(lang: str) -> str:
    return f"target_dev:{lang}"


@dataclass
class CheckpointKeeper:
    directory: Path
    best: dict[str, tuple[float, int]] = field(default_factory=dict)  # key -> (score, step)
    saved: set[int] = field(default_factory=set)
    _lock: HeldLock | None = field(default=None, repr=False)

    def observe(self, step: int, scores: dict[str, float], model: nn.Module) -> None:
        for key, score in scores.items():
            if score > self.best.get(key, (-math.inf, -1))[0]:  # ties keep the earlier step
                self.best[key] = (score, step)
        needed = {s for _, s in self.best.values()}
        if step in needed and step not in self.saved:
            if not self.directory.exists():
                # the lock first: a folder without a held lock is an orphan to every other run
                self._lock = HeldLock(lock_path(self.directory))
                self._lock.acquire()
                self.directory.mkdir(parents=True, exist_ok=True)
                (self.directory / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
            # only what training changes: with frozen parts or LoRA a checkpoint is a fraction of the model
            torch.save(trainable_state(model), self._file(step))
            self.saved.add(step)
        for old in sorted(self.saved - needed):
            self._file(old).unlink(missing_ok=True)
            self.saved.discard(old)

    def step_for(self, key: str) -> int | None:
        return self.best[key][1] if key in self.best else None

    def load(self, step: int, model: nn.Module) -> None:
        _, unexpected = model.load_state_dict(
            torch.load(self._file(step), map_location="cpu", weights_only=True), strict=False
        )
        if unexpected:
            raise RuntimeError(f"checkpoint {self._file(step)} does not match the model: {unexpected[:3]}")

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.saved.clear()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _file(self, step: int) -> Path:
        return self.directory / f"step-{step:07d}.pt"


OWNER_FILE = ".owner"  # "<host> <pid>" of the run that keeps checkpoints in this folder (for people)
UNOWNED_MAX_AGE_S = 24 * 3600


def lock_path(folder: Path) -> Path:
    """``checkpoints/<run>.lock``: held (``xlexp.results.liveness``) while the run keeps the folder."""
    return folder.with_name(folder.name + ".lock")


def remove_orphans(root: Path) -> list[Path]:
    """Delete checkpoint folders whose run is gone (killed with -9, the node rebooted). A run holds
    ``<folder>.lock`` while it keeps checkpoints, so a free lock means a gone owner and a held one a
    live owner, whatever host or PID namespace (a container sharing the host name and the cache) it
    runs in: a pid is never trusted. Folders without a lock file (older versions) go when untouched
    for a day. A killed run with a real encoder leaves hundreds of MB per unit."""
    removed = []
    if not root.is_dir():
        return removed
    for folder in root.iterdir():
        if folder.is_symlink():  # never followed: a link to a user's folder is not a run's checkpoints
            continue
        if not folder.is_dir():
            if folder.suffix == ".lock" and not folder.with_suffix("").exists() and lock_state(folder) == "free":
                folder.unlink(missing_ok=True)  # a lock left beside no folder
            continue
        state = lock_state(lock_path(folder))
        try:
            if state == "held":
                continue
            if state == "none" and time.time() - folder.stat().st_mtime < UNOWNED_MAX_AGE_S:
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        lock_path(folder).unlink(missing_ok=True)
        removed.append(folder)
    return removed


def steps_by_rule(
    keeper: CheckpointKeeper, targets: tuple[str, ...], final_step: int, has_dev: set[str]
) -> dict[int, list[tuple[str, str]]]:
    """step -> [(target, rule)] to test: each checkpoint is loaded once for all cells that chose it."""
    plan: dict[int, list[tuple[str, str]]] = {}
    for target in targets:
        plan.setdefault(final_step, []).append((target, "last"))
        source_step = keeper.step_for("source_dev")
        if source_step is not None:
            plan.setdefault(source_step, []).append((target, "source_dev"))
        if target in has_dev:
            plan.setdefault(keeper.step_for(target_key(target)), []).append((target, "target_dev"))
    return plan
