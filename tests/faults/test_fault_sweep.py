"""Fault catalogue, sweeps (issue #14): one test per fault, each holding the exact promise: the exit
code, the one line that names the file or the fix, the record counts before and after, no pending
leftovers. docs/faults.md lists them. Tiny random model, data the tests build; the outage tests
stop and restart a real PostgreSQL server of their own (.ci/postgres.sh pause/resume)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from pg import SCRIPT, _have_binaries, _unavailable, with_password
from sweeps_helpers import TINY_BASE, cli, env_for, load, sqlite_url, write_sweep
from xlexp.cli.sweep import main as sweep_main
from xlexp.results.pending import list_pending, pending_root
from xlexp.results.store import predictions_dir, runs_dir
from xlexp.sweep.commit import UID_ATTR, ensure_study_uid, recover
from xlexp.sweep.status import status_lines
from xlexp.sweep.storage import fail_reason, open_storage
from xlexp.tracking.masking import mask_url

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning"),
]

LR = {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))"}


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def _records(dirs) -> list[Path]:
    return _files(runs_dir(dirs["results"]))


def _no_pending(dirs) -> bool:
    root = pending_root(dirs["results"])
    return not root.exists() or not any(root.iterdir())


def _only_complete_trials_have_records(dirs, study) -> None:
    """Every record file in the store is a COMPLETE trial's, tagged <study>@<uid>, named <study>-<uid>-tNNNN."""
    uid = study.user_attrs[UID_ATTR]
    frames = [pd.read_parquet(f) for f in _records(dirs)]
    frames = [f for f in frames if "trial" in f and f["study"].notna().all()]
    complete = sorted(t.number for t in study.trials if t.state == TrialState.COMPLETE)
    assert sorted(int(f["trial"].iloc[0]) for f in frames) == complete
    for f in frames:
        n = int(f["trial"].iloc[0])
        assert set(f["study"]) == {f"{study.study_name}@{uid}"}
        assert set(f["experiment"]) == {f"{study.study_name}-{uid}-t{n:04d}"}


def _one_line_error(stderr: str) -> str:
    """The user-facing error: the last line, 'xlexp: error: ...', and no traceback anywhere."""
    assert "Traceback" not in stderr, stderr[-3000:]
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("xlexp: error: "), stderr[-3000:]
    return line


# ---- 1. a fault after a trial wrote its records: no rows enter the store, and the sweep fails --------


def test_fault_corrupt_record_file_does_not_stop_a_sweep(dirs, monkeypatch, tmp_path):
    """A corrupt file in <results>/runs is skipped by the store, never read by a trial: the sweep runs."""
    for key, value in env_for(dirs).items():
        monkeypatch.setenv(key, value)
    bad = runs_dir(dirs["results"]) / "corrupt.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PAR1 truncated by a full disk")
    sweep = write_sweep(tmp_path / "corrupt.yaml", LR, 2, pruner="{name: none}")
    assert sweep_main([str(sweep), "--heartbeat", "1"]) == 0
    study = load(sqlite_url(dirs, "corrupt"), "corrupt")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert bad.read_bytes() == b"PAR1 truncated by a full disk"  # left alone (xlexp store check handles it)
    assert len(_records(dirs)) == 1 + 2 and _no_pending(dirs)


def test_fault_trials_failing_after_writing_records_leave_none_and_the_sweep_exits_1(
    dirs, monkeypatch, tmp_path, capsys
):
    """Every trial fails after its unit's records were written: FAIL trials, no rows in the store,
    `xlexp sweep` exits 1 with one line naming how many failed and the first reason."""
    import xlexp.experiment.runner as runner

    for key, value in env_for(dirs).items():
        monkeypatch.setenv(key, value)
    real = runner.write_records

    def write_then_fail(records, results_dir, name):
        path = real(records, results_dir, name)
        raise RuntimeError(f"simulated fault after writing {path.name}")

    monkeypatch.setattr(runner, "write_records", write_then_fail)
    sweep = write_sweep(tmp_path / "allfail.yaml", LR, 2, pruner="{name: none}")
    assert sweep_main([str(sweep), "--heartbeat", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    study = load(sqlite_url(dirs, "allfail"), "allfail")
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert err[-1].startswith(
        "xlexp sweep: error: 2 trial(s) failed and none completed; first: trial 0: "
        "RuntimeError: simulated fault after writing "
    )
    assert "Traceback" not in "\n".join(err)
    assert _records(dirs) == [] and _files(predictions_dir(dirs["results"])) == []  # 0 rows before, 0 after
    assert _no_pending(dirs)


# ---- 2. a worker killed between writing its records and study.tell -------------------------------

KILL_AT_TELL = """
import os, sys
import optuna
from xlexp.cli.sweep import main
real = optuna.Study.tell
def tell(self, trial, values=None, state=None, **kw):
    if values is not None:
        os._exit(9)   # killed after the run wrote its records, before the study has the trial COMPLETE
    return real(self, trial, values, state, **kw)
optuna.Study.tell = tell
sys.exit(main(sys.argv[1:]))
"""

KILL_IN_PROMOTE = """
import os, sys
import xlexp.sweep.worker as worker
from xlexp.results import pending
from xlexp.results.store import predictions_dir
from xlexp.cli.sweep import main
def promote(folder, results_dir):
    pending._move_all(predictions_dir(folder), predictions_dir(results_dir))
    os._exit(9)       # killed half way through the promotion: predictions moved, records not yet
worker.promote = promote
sys.exit(main(sys.argv[1:]))
"""


def _run_script(dirs, tmp_path, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env_for(dirs),
        cwd=tmp_path,
        timeout=300,
    )


def test_fault_worker_killed_before_tell_leaves_no_records_and_its_retry_writes_once(dirs, tmp_path):
    sweep = write_sweep(tmp_path / "tell.yaml", LR, 1, pruner="{name: none}")
    killed = _run_script(dirs, tmp_path, KILL_AT_TELL, str(sweep), "--heartbeat", "1")
    assert killed.returncode == 9, killed.stderr[-3000:]
    url = sqlite_url(dirs, "tell")
    study = load(url, "tell")
    assert [t.state for t in study.trials] == [TrialState.RUNNING]
    uid = study.user_attrs[UID_ATTR]
    assert _records(dirs) == []  # nothing entered the store
    waiting = list_pending(dirs["results"])
    assert list(waiting) == [f"tell-{uid}-t0000"] and len(_files(runs_dir(waiting[f"tell-{uid}-t0000"]))) == 1

    resumed = cli(dirs, "sweep", str(sweep), "--heartbeat", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    study = load(url, "tell")
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "no heartbeat" in fail_reason(study, study.trials[0])
    assert "trial 0 is FAIL: discarded its 1 pending records file(s)" in resumed.stderr
    assert len(_records(dirs)) == 1  # the retry's, once
    _only_complete_trials_have_records(dirs, study)
    assert _no_pending(dirs)


def test_fault_worker_killed_during_promotion_is_finished_by_the_next_worker(dirs, tmp_path):
    sweep = write_sweep(tmp_path / "promo.yaml", LR, 2, pruner="{name: none}")
    killed = _run_script(dirs, tmp_path, KILL_IN_PROMOTE, str(sweep), "--heartbeat", "1")
    assert killed.returncode == 9, killed.stderr[-3000:]
    url = sqlite_url(dirs, "promo")
    study = load(url, "promo")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
    assert _records(dirs) == [] and len(_files(predictions_dir(dirs["results"]))) == 1  # half promoted

    resumed = cli(dirs, "sweep", str(sweep), "--heartbeat", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (
        "trial 0 is COMPLETE but its worker stopped before its records entered the store: promoted 1" in resumed.stderr
    )
    study = load(url, "promo")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert len(_records(dirs)) == 2 and len(_files(predictions_dir(dirs["results"]))) == 2
    _only_complete_trials_have_records(dirs, study)
    assert _no_pending(dirs)
    # idempotent: recovering again changes nothing
    before = _records(dirs)
    assert recover(study, study.user_attrs[UID_ATTR], dirs["results"]) == {"promoted": 0, "discarded": 0}
    assert _records(dirs) == before


@pytest.mark.unit
def test_fault_promotion_never_writes_a_file_twice(tmp_path):
    from xlexp.results.pending import promote

    results = tmp_path / "results"
    folder = results / "pending" / "s-abc123-t0000"
    for sub in ("runs", "predictions"):
        (folder / sub).mkdir(parents=True)
        (results / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub / "r-0000.parquet").write_bytes(b"pending copy")
    (results / "runs" / "r-0000.parquet").write_bytes(b"already promoted")  # an interrupted promotion's
    (folder / "runs" / ".r-0001.123.tmp").write_bytes(b"half written")  # a killed writer's temp file
    assert promote(folder, results) == []
    assert (results / "runs" / "r-0000.parquet").read_bytes() == b"already promoted"
    assert (results / "predictions" / "r-0000.parquet").read_bytes() == b"pending copy"
    assert not (results / "pending").exists()
    assert sorted(p.name for p in (results / "runs").iterdir()) == ["r-0000.parquet"]


# ---- 3. two studies with one name (two storages, one results folder) -------------------------------


def test_fault_same_study_name_in_two_storages_never_shares_an_experiment(dirs, tmp_path):
    sweep = write_sweep(tmp_path / "twin.yaml", LR, 1, pruner="{name: none}")
    urls = [f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"]
    for url in urls:
        out = cli(dirs, "sweep", str(sweep), "--storage", url, "--heartbeat", "1")
        assert out.returncode == 0, out.stderr[-3000:]
    studies = [load(url, "twin") for url in urls]
    uids = [s.user_attrs[UID_ATTR] for s in studies]
    assert uids[0] != uids[1]
    assert [t.number for s in studies for t in s.trials] == [0, 0]  # both start at trial 0 ...
    df = pd.concat([pd.read_parquet(f) for f in _records(dirs)])
    assert sorted(df["experiment"].unique()) == sorted(f"twin-{u}-t0000" for u in uids)  # ... in two experiments
    assert df.groupby("experiment")["run_id"].nunique().tolist() == [1, 1]
    assert sorted(df["study"].unique()) == sorted(f"twin@{u}" for u in uids)
    for study, uid in zip(studies, uids):
        best = study.best_trial
        assert best.user_attrs["experiment"] == f"twin-{uid}-t0000"
        assert f"xlexp matrix --experiment twin-{uid}-t0000" in status_lines(study, "x")[-1]
        matrix = cli(dirs, "matrix", "--experiment", f"twin-{uid}-t0000")
        assert matrix.returncode == 0 and f"twin-{uid}-t0000: " in matrix.stdout, matrix.stderr[-2000:]


@pytest.mark.unit
def test_fault_study_made_by_an_older_version_gets_an_id_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    study = optuna.create_study(study_name="old", storage=open_storage(url, 1))
    assert UID_ATTR not in study.user_attrs
    uid = ensure_study_uid(study, url)
    assert len(uid) == 6 and ensure_study_uid(load(url, "old"), url) == uid


# ---- 5. preflight: an unwritable results folder or a bad storage -----------------------------------


def test_fault_preflight_errors_are_one_line_rc_2(dirs, tmp_path):
    sweep = write_sweep(tmp_path / "pre.yaml", LR, 1)
    not_a_folder = tmp_path / "results-is-a-file"
    not_a_folder.write_text("")
    out = cli({**dirs, "results": not_a_folder}, "sweep", str(sweep))
    assert out.returncode == 2
    assert _one_line_error(out.stderr).startswith(f"xlexp: error: cannot write results to {not_a_folder / 'runs'}: ")
    assert "XLEXP_RESULTS_DIR" in out.stderr and not_a_folder.read_text() == ""
    for storage, says in (
        (f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", "cannot open sweep storage sqlite:///"),
        ("nosuchdb://u:pw@h/db", "cannot open sweep storage nosuchdb://u:***@h/db"),
    ):
        out = cli(dirs, "sweep", str(sweep), "--storage", storage)
        assert out.returncode == 2 and _one_line_error(out.stderr).startswith(f"xlexp: error: {says}"), out.stderr[
            -2000:
        ]
    assert _records(dirs) == [] and _no_pending(dirs)


# ---- 7. passwords with '/' or spaces ---------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("password", ["s3cret/PW", "s3 cret", "a:b#c/d e"])
def test_fault_any_password_is_masked(password):
    from sqlalchemy.engine import make_url

    url = f"postgresql://postgres:{password}@db.example:5432/optuna"
    masked = mask_url(url)
    assert password not in masked and masked == "postgresql://postgres:***@db.example:5432/optuna"
    parsed, shown = make_url(url), make_url(masked)  # what SQLAlchemy connects to: only the password differs
    assert parsed.password == password and (shown.username, shown.host, shown.port, shown.database) == (
        parsed.username,
        parsed.host,
        parsed.port,
        parsed.database,
    )


def test_fault_password_with_slash_and_space_never_printed(dirs, tmp_path):
    secret = "s3cret/P W"
    url = f"postgresql://postgres:{secret}@127.0.0.1:1/optuna"  # port 1: connection refused
    out = cli(dirs, "sweep", "--status", "--storage", url)
    assert out.returncode == 2
    line = _one_line_error(out.stderr)
    assert line.startswith("xlexp: error: cannot open sweep storage postgresql://postgres:***@127.0.0.1:1/optuna")
    assert "s3cret" not in out.stdout + out.stderr


# ---- 13. --status and dead workers' trials ----------------------------------------------------------


def test_fault_status_shows_dead_workers_trials_as_stale(dirs, tmp_path):
    import sqlalchemy
    from optuna.storages._rdb import models

    url = sqlite_url(dirs, "stale")
    (dirs["results"] / "sweeps").mkdir(parents=True)
    storage = open_storage(url, 1)
    study = optuna.create_study(study_name="stale", storage=storage)
    study.set_user_attr("heartbeat_s", 10)  # grace 30 s: the live trial stays fresh while the CLI starts
    dead, alive = study.ask(), study.ask()
    for trial in (dead, alive):
        storage.record_heartbeat(trial._trial_id)
    session = storage.scoped_session()
    beat = session.query(models.TrialHeartbeatModel).filter_by(trial_id=dead._trial_id).one()
    beat.heartbeat = session.execute(sqlalchemy.func.now()).scalar() - pd.Timedelta(seconds=47).to_pytimedelta()
    session.commit()
    storage.scoped_session.remove()

    out = cli(dirs, "sweep", "--status")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.split()[:1] in (["0"], ["1"])}
    age = re.search(r"  RUNNING \(stale: no heartbeat for (\d+) s\)  ", rows["0"])
    assert age and 47 <= int(age.group(1)) <= 47 + 60, rows["0"]  # 47 s, plus the seconds the CLI took to start
    assert "stale" not in rows["1"] and "RUNNING" in rows["1"]
    assert "2 running (1 stale)" in out.stdout
    assert [t.state for t in load(url, "stale").trials] == [TrialState.RUNNING] * 2  # --status changes nothing


def test_fault_trial_asked_but_never_beating_is_not_waited_for_forever(tmp_path):
    """Found with item 8: a worker that dies (or loses the storage) between study.ask and its first
    heartbeat left a RUNNING trial that never went stale; the next worker gives it a heartbeat, so it
    is failed and re-queued after the grace period instead of being waited for."""
    from xlexp.sweep.storage import heartbeat_ages, start_orphan_clocks

    url = f"sqlite:///{tmp_path / 'orphan.db'}"
    storage = open_storage(url, 1)
    study = optuna.create_study(study_name="orphan", storage=storage)
    orphan = study.ask()
    assert heartbeat_ages(study) == {}
    assert start_orphan_clocks(study, storage) == [orphan.number]
    assert set(heartbeat_ages(study)) == {orphan.number} and start_orphan_clocks(study, storage) == []
    time.sleep(5)  # past the grace period at --heartbeat 1 (3 s; SQLite keeps whole seconds)
    optuna.storages.fail_stale_trials(study)
    assert [t.state for t in study.trials][:1] == [TrialState.FAIL]
    assert study.trials[-1].state == TrialState.WAITING  # re-queued with its params


# ---- 8. PostgreSQL down mid-trial ------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_pg():
    """A PostgreSQL server this module may stop and start (never the shared XLEXP_TEST_PG_URL one)."""
    if not _have_binaries():
        _unavailable("no PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql")
    folder = tempfile.mkdtemp(prefix="xlexp-pg-fault-")
    out = subprocess.run(["bash", str(SCRIPT), "start", folder], capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop", folder], capture_output=True, timeout=60)
        _unavailable(f"could not start a throwaway PostgreSQL: {out.stderr.strip()[-500:]}")
    try:
        yield out.stdout.strip(), folder
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", folder], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _pg(action: str, folder: str) -> None:
    out = subprocess.run(["bash", str(SCRIPT), action, folder], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def _start_sweep(dirs, tmp_path, sweep: Path, url: str, study: str, extra_env: dict | None = None) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "xlexp.cli.main",
        "sweep",
        str(sweep),
        "--storage",
        url,
        "--study",
        study,
        "--heartbeat",
        "1",
    ]
    return subprocess.Popen(
        args,
        env={**env_for(dirs), **(extra_env or {})},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_mid_trial(proc: subprocess.Popen, url: str, study: str, evals: int = 2) -> int:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            running = [
                t
                for t in load(url, study).trials
                if t.state == TrialState.RUNNING and len(t.intermediate_values) >= evals
            ]
        except Exception:  # the study is not created yet
            continue
        if running:
            return running[0].number
    proc.kill()
    raise AssertionError(f"no trial was caught mid-training: {proc.communicate()[1][-3000:]}")


LONG = [b for b in TINY_BASE if not b.startswith("trainer.epochs")] + ["trainer.epochs=30"]


def test_fault_postgres_down_for_seconds_mid_trial_is_ridden_out(dirs, tmp_path, own_pg):
    base_url, folder = own_pg
    url = with_password(base_url, "pw/with slash")
    sweep = write_sweep(tmp_path / "outage.yaml", LR, 2, base=LONG, pruner="{name: none}")
    proc = _start_sweep(dirs, tmp_path, sweep, url, "outage")
    _wait_mid_trial(proc, url, "outage")
    _pg("pause", folder)
    time.sleep(8)  # longer than the heartbeat grace period (3 s at --heartbeat 1)
    _pg("resume", folder)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "pw/with slash" not in out + err
    assert err.count("unreachable (") == 1 and err.count("reachable again after") == 1, err[
        -3000:
    ]  # one line per outage
    study = load(url, "outage")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert len(_records(dirs)) == 2 and _no_pending(dirs)
    _only_complete_trials_have_records(dirs, study)


def test_fault_postgres_down_longer_than_the_limit_ends_in_one_line_and_a_rerun_recovers(dirs, tmp_path, own_pg):
    base_url, folder = own_pg
    url = with_password(base_url, "pw/with slash")
    sweep = write_sweep(tmp_path / "down.yaml", LR, 1, base=LONG, pruner="{name: none}")
    proc = _start_sweep(dirs, tmp_path, sweep, url, "down", {"XLEXP_SWEEP_STORAGE_RETRY_S": "3"})
    number = _wait_mid_trial(proc, url, "down")
    _pg("pause", folder)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        _pg("resume", folder)
    assert proc.returncode == 2, err[-3000:]
    line = _one_line_error(err)
    assert line.startswith("xlexp: error: sweep storage postgresql://postgres:***@127.0.0.1:"), line
    assert re.search(
        r" unreachable for [34] s \(OperationalError: .*\) while running trial \d+; re-run the same command", line
    ), line
    assert "pw/with slash" not in out + err
    assert _records(dirs) == [] and len(list_pending(dirs["results"])) == 1  # nothing entered the store

    resumed = cli(dirs, "sweep", str(sweep), "--storage", url, "--study", "down", "--heartbeat", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    study = load(url, "down")
    assert study.trials[number].state == TrialState.FAIL and "no heartbeat" in fail_reason(study, study.trials[number])
    assert f"trial {number} is FAIL: discarded its" in resumed.stderr
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert len(_records(dirs)) == 1 and _no_pending(dirs)
    _only_complete_trials_have_records(dirs, study)
