"""Round 2 (issue #28), items 1, 2 and 4: liveness asked of a held lock, never of a pid.

1. a sweep killed while it promotes its last trial's files: the same command finishes the promotion;
2. a run in another PID namespace never deletes a live run's checkpoints;
4. two concurrent runs of one config never both train a unit (a claim per unit key).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps_helpers import cli, env_for, write_sweep
from xlexp.results.liveness import HeldLock, lock_state
from xlexp.results.pending import pending_root
from xlexp.results.store import predictions_dir, runs_dir

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning"),
]

LR = {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))"}

KILL_IN_PROMOTE = """
import os, sys
import xlexp.sweep.worker as worker
from xlexp.results import pending
from xlexp.results.store import predictions_dir
from xlexp.cli.sweep import main
def promote(folder, results_dir):
    pending._move_all(predictions_dir(folder), predictions_dir(results_dir))
    os.kill(os.getpid(), 9)       # kill -9 half way through the promotion of the study's LAST trial
worker.promote = promote
sys.exit(main(sys.argv[1:]))
"""


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def test_fault_kill_during_the_last_promotion_is_finished_by_the_same_command(dirs, tmp_path):
    sweep = write_sweep(tmp_path / "last.yaml", LR, 1, pruner="{name: none}")
    killed = subprocess.run(
        [sys.executable, "-c", KILL_IN_PROMOTE, str(sweep), "--heartbeat", "30"],
        capture_output=True,
        text=True,
        env=env_for(dirs),
        cwd=tmp_path,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert _files(runs_dir(dirs["results"])) == []  # the records still wait in pending/
    # at once (well inside the 90 s grace period of a 30 s heartbeat): the lock says the worker is gone
    again = cli(dirs, "sweep", str(sweep), "--heartbeat", "30")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing to run" in again.stdout
    assert "trial 0 is COMPLETE but its worker stopped before its records entered the store: promoted 1" in again.stderr
    assert len(_files(runs_dir(dirs["results"]))) == 1 and len(_files(predictions_dir(dirs["results"]))) == 1
    root = pending_root(dirs["results"])
    assert not root.exists() or not any(root.iterdir())
    matrix = cli(dirs, "matrix")
    assert matrix.returncode == 0 and "no records" not in matrix.stderr, matrix.stderr[-2000:]


def test_fault_a_live_workers_pending_folder_is_left_alone(tmp_path):
    """The other side of the lock: a folder whose worker is alive (lock held) is neither promoted nor
    discarded, however old its trial's completion is."""
    import optuna

    from xlexp.sweep.commit import recover

    results = tmp_path / "results"
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    trial = study.ask()
    study.tell(trial, 0.5)
    folder = results / "pending" / "s-abc123-t0000"
    (folder / "runs").mkdir(parents=True)
    (folder / "runs" / "r-0000.parquet").write_bytes(b"x")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys,time; from xlexp.results.liveness import HeldLock; "
                f"HeldLock({str(folder) + '.lock'!r}).acquire(); print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert recover(study, "abc123", results) == {"promoted": 0, "discarded": 0}
        assert (folder / "runs" / "r-0000.parquet").exists()
    finally:
        holder.kill()
        holder.wait()
    assert recover(study, "abc123", results) == {"promoted": 1, "discarded": 0}  # its holder is gone now
    assert (results / "runs" / "r-0000.parquet").exists()


def test_fault_a_lock_outlives_nothing_but_its_process(tmp_path):
    lock = tmp_path / "x.lock"
    assert lock_state(lock) == "none"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                f"from xlexp.results.liveness import HeldLock; HeldLock({str(lock)!r}).acquire(); print('held', flush=True); "
                "import time; time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    assert lock_state(lock) == "held"
    assert not HeldLock(lock).acquire()
    os.kill(holder.pid, 9)
    holder.wait()
    assert lock_state(lock) == "free"
    mine = HeldLock(lock)
    assert mine.acquire() and lock_state(lock) == "held"
    assert not HeldLock(lock).acquire()  # a second object in this process does not get it either
    mine.release()
    assert lock_state(lock) == "none"


# ---- 2. checkpoints of a live run in another PID namespace ------------------------------------

KEEPER = """
import sys, time, torch
from pathlib import Path
from xlexp.engine.selection import CheckpointKeeper
keeper = CheckpointKeeper(Path(sys.argv[1]))
keeper.observe(1, {"source_dev": 0.5}, torch.nn.Linear(2, 2))
print("saved", flush=True)
time.sleep(120)
"""


def _in_other_pid_namespace() -> list[str]:
    """unshare -p -f --mount-proc (root only): the run's pid means nothing outside its namespace."""
    import shutil

    if os.geteuid() == 0 and shutil.which("unshare"):
        probe = subprocess.run(["unshare", "-p", "-f", "--mount-proc", "true"], capture_output=True)
        if probe.returncode == 0:
            return ["unshare", "-p", "-f", "--mount-proc"]
    return []


def test_fault_a_live_run_in_another_pid_namespace_keeps_its_checkpoints(tmp_path):
    """Before: run B logged 'removed checkpoints of a run that no longer exists' for live run A's
    folder (A's pid, in its own namespace, did not exist in B's); A died with FileNotFoundError."""
    from xlexp.engine.selection import remove_orphans

    root = tmp_path / "cache" / "checkpoints"
    folder = root / "20260101T000000-livelive-0000"
    prefix = _in_other_pid_namespace()
    a = subprocess.Popen(
        [*prefix, sys.executable, "-c", KEEPER, str(folder)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert a.stdout.readline().strip() == "saved"
        owner = (folder / ".owner").read_text().split()
        if prefix:
            assert owner[1] == "1" or int(owner[1]) < 10  # its pid inside its own namespace
        assert remove_orphans(root) == []  # B, here: A is alive, whatever its pid says
        assert (folder / "step-0000001.pt").exists()
    finally:
        os.killpg(a.pid, 9)
        a.wait()
    time.sleep(0.2)
    assert remove_orphans(root) == [folder]  # A is gone now: its folder goes
    assert not root.exists() or sorted(root.iterdir()) == []


# ---- 4. two concurrent runs of one config ---------------------------------------------------

RUN_SLOW_FIRST_UNIT = """
import sys, time
from pathlib import Path
import xlexp.experiment.runner as runner
from xlexp.results.liveness import lock_state
real = runner.run_unit
started, go = Path(sys.argv[1]), Path(sys.argv[2])
def run_unit(ctx, regime, unit, i):
    if i == 0:
        started.write_text("started")
        deadline = time.time() + 300
        claims = Path(ctx.settings.paths.results_dir) / "claims"
        while time.time() < deadline:   # until B (started by the test) holds the claim of unit 2
            if go.exists() and sum(lock_state(p) == "held" for p in claims.glob("*.lock")) >= 2:
                break
            time.sleep(0.2)
    return real(ctx, regime, unit, i)
runner.run_unit = run_unit
sys.argv = [sys.argv[0], *sys.argv[3:]]
from xlexp.cli.run import main
main()
"""

TWO_SOURCES = [
    "model=tiny_random",
    "optimizer.lr=1e-3",
    "trainer.epochs=1",
    "data.batch_size=8",
    "trainer.progress=false",
    "trainer.num_threads=1",
    "langpair.sources=[eng,ind]",
    "langpair.targets=[eng,ind]",
    "regime.dev_targets=none",
    "name=twice",
]


def test_fault_two_concurrent_runs_of_one_config_train_each_unit_once(dirs, tmp_path):
    """Before: both runs trained both units (4 record files for 2 unit keys)."""
    from xlexp.cli.status import status_lines

    started, go = tmp_path / "a_started", tmp_path / "b_started"
    a = subprocess.Popen(
        [sys.executable, "-c", RUN_SLOW_FIRST_UNIT, str(started), str(go), *TWO_SOURCES],
        env=env_for(dirs),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 240
        while not started.exists() and a.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert started.exists(), a.communicate()[0][-3000:]
        lines = status_lines(str(dirs["results"]), "twice")
        assert "1 running" in lines[0] and any(f"(pid {a.pid}" in line for line in lines), lines  # the claim is seen
        b = subprocess.Popen(
            [sys.executable, "-m", "xlexp.cli.main", "run", *TWO_SOURCES],
            env=env_for(dirs),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        go.write_text("go")
        out_b = b.communicate(timeout=600)[0]
        out_a = a.communicate(timeout=600)[0]
    finally:
        if a.poll() is None:
            a.kill()
    assert a.returncode == 0 and b.returncode == 0, (out_a[-3000:], out_b[-3000:])
    files = sorted(runs_dir(dirs["results"]).glob("*.parquet"))
    keys = [f.stem.rsplit("-u", 1)[-1] for f in files]
    assert len(files) == 2 and len(set(keys)) == 2, [f.name for f in files]  # each unit trained once
    assert "unit 1/2 (source eng, seed 42): another run trains it now" in out_b, out_b[-3000:]
    assert "another run finished it meanwhile" in out_a + out_b, (out_a[-3000:], out_b[-3000:])
    claims = dirs["results"] / "claims"
    assert not claims.exists() or list(claims.iterdir()) == []  # released, files removed


@pytest.mark.unit
def test_fault_a_running_unit_whose_claim_is_free_is_failed_whatever_its_pid(tmp_path):
    """`xlexp status` asks the claim, not the pid: a ledger that names a live pid (reused by another
    process, or this one) but whose claim is free is a dead unit."""
    from xlexp.results import units as ledger

    results = tmp_path / "results"
    entry = ledger.UnitEntry("e", "k1", "eng", 0, ["eng"])
    ledger.mark(results, entry, "running", host=ledger.this_host(), pid=os.getpid(), started=time.time())
    claim = ledger.claim_path(results, "k1")
    holder = HeldLock(claim)
    assert holder.acquire()
    assert [s.state for s in ledger.unit_states(results, "e")] == ["running"]
    holder.release(remove=False)  # the lock file stays, free: its process is gone
    (state,) = ledger.unit_states(results, "e")
    assert state.state == "failed" and "is gone" in state.detail
