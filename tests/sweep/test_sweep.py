"""``xlexp sweep`` end to end on SQLite: real Optuna storage, real worker processes, real kills,
real submitit_local jobs, a real optuna-dashboard server. Tiny random model, data the tests build."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

from sweeps_helpers import TINY_BASE, cli, env_for, load, sqlite_url, write_sweep
from xlexp.cli.sweep import main as sweep_main
from xlexp.results.store import load_records, runs_dir
from xlexp.sweep.status import status_lines
from xlexp.sweep.storage import budget_used, fail_reason

# Optuna marks heartbeats and stale-trial retries experimental; xlexp relies on them on purpose
pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning"),
]

FINISHED = {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}


def _record_files(dirs) -> list[Path]:
    return sorted(runs_dir(dirs["results"]).glob("*.parquet")) if runs_dir(dirs["results"]).is_dir() else []


def _check_records_match_trials(dirs, study) -> None:
    """One readable records file per COMPLETE trial (one training unit each), none for the others;
    tagged with the study's storage-unique id (<study>@<uid>, experiment <study>-<uid>-tNNNN)."""
    files = _record_files(dirs)
    frames = [pd.read_parquet(f) for f in files]  # every file is whole (written to a temp name, then renamed)
    complete = sorted(t.number for t in study.trials if t.state == TrialState.COMPLETE)
    assert sorted(int(f["trial"].iloc[0]) for f in frames) == complete
    uid = study.user_attrs["xlexp_uid"]
    for frame in frames:
        assert frame["trial"].nunique() == 1 and set(frame["study"]) == {f"{study.study_name}@{uid}"}
        assert set(frame["experiment"]) == {f"{study.study_name}-{uid}-t{int(frame['trial'].iloc[0]):04d}"}
    assert not (dirs["results"] / "pending").exists() or not any((dirs["results"] / "pending").iterdir())


def test_complete_pruned_and_failed_trials_in_one_sweep(dirs, monkeypatch, tmp_path):
    """Seeded random sampler: lr 1e-3 with seeds 1, 2, 1 (the repeat is pruned, or the second one is:
    median pruning after one complete trial), then lr=inf (refused by the settings: FAIL with its reason), then one more."""
    for key, value in env_for(dirs).items():
        monkeypatch.setenv(key, value)
    sweep = write_sweep(
        tmp_path / "mixed.yaml",
        {"optimizer.lr": "choice(1e-3, inf)", "seed": "choice(1, 2)"},
        5,
        sampler="{name: random, seed: 2}",
    )
    assert sweep_main([str(sweep), "--heartbeat", "1"]) == 0
    study = load(sqlite_url(dirs, "mixed"), "mixed")
    trials = study.trials
    assert [(t.params["optimizer.lr"], t.params["seed"]) for t in trials] == [
        (1e-3, 1),
        (1e-3, 2),
        (1e-3, 1),
        (math.inf, 2),
        (1e-3, 1),
    ]  # the seeded sampler's proposals
    states = [t.state for t in trials]
    assert states[0] == TrialState.COMPLETE and states[3] == TrialState.FAIL
    assert states[4] in (TrialState.COMPLETE, TrialState.PRUNED)  # the sweep went on after the failure
    assert "optimizer.lr must be a positive finite number, got inf" in fail_reason(study, trials[3])
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.number, t.state, t.intermediate_values) for t in trials]
    for t in pruned:  # stopped at an evaluation where it was below the median of the complete trials there
        step = max(t.intermediate_values)
        earlier = [
            u.intermediate_values[step] for u in trials if u.state == TrialState.COMPLETE and u.number < t.number
        ]
        assert t.intermediate_values[step] < np.median(earlier)
        assert "pruned at evaluation" in t.user_attrs["pruned"]
    _check_records_match_trials(dirs, study)
    # a complete trial's value is the dev objective the pipeline recorded: macro_f1 at the best source-dev step
    best = study.best_trial
    df = load_records(dirs["results"])
    dev = df[
        (df["trial"] == best.number) & (df["split"] == "dev") & (df["target"] == "eng") & (df["metric"] == "macro_f1")
    ]
    assert best.value == pytest.approx(
        dev.sort_values("step").iloc[int(np.argmax(dev.sort_values("step")["value"]))]["value"]
    )
    assert len(best.intermediate_values) == 2  # one report per dev evaluation (2 epochs)


def test_two_workers_resume_to_the_total_and_status(dirs, tmp_path):
    sweep = write_sweep(
        tmp_path / "par.yaml",
        {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))", "data.batch_size": "choice(8, 16)"},
        4,
        sampler="{name: tpe, seed: 0, n_startup_trials: 2}",
    )
    first = cli(dirs, "sweep", str(sweep), "--workers", "2", "--n-trials", "2", "--heartbeat", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    url = sqlite_url(dirs, "par")
    assert len(load(url, "par").trials) == 2
    # a trial prints nothing (no matrix; its log lines go to stderr): stdout is the sweep's own lines only
    # (the first trial to finish is never pruned: the median pruner waits for one complete trial)
    assert first.stdout.splitlines() == [f"study par ({url}): 0/2 trials so far", *status_lines(load(url, "par"), url)]
    # the same command with the file's n_trials: continues to 4 in total; numbers go on from 2
    second = cli(dirs, "sweep", str(sweep), "--workers", "2", "--heartbeat", "2")
    assert second.returncode == 0, second.stderr[-3000:]
    study = load(url, "par")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert {t.state for t in study.trials} <= FINISHED and budget_used(study.trials) == 4
    uid = study.user_attrs["xlexp_uid"]
    assert {t.user_attrs["experiment"] for t in study.trials} == {f"par-{uid}-t{i:04d}" for i in range(4)}
    assert "best: trial" in second.stdout and "\n  xlexp run model=tiny_random" in second.stdout
    _check_records_match_trials(dirs, study)
    files_before = _record_files(dirs)
    # done: re-running adds nothing
    third = cli(dirs, "sweep", str(sweep), "--workers", "2")
    assert third.returncode == 0 and "nothing to run" in third.stdout
    assert len(load(url, "par").trials) == 4 and _record_files(dirs) == files_before
    # --status without a sweep file finds the study under <results>/sweeps/
    status = cli(dirs, "sweep", "--status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].startswith("study par ") and "trials 4/4" in lines[1]
    assert sum(1 for line in lines if line.split()[:1] in (["0"], ["1"], ["2"], ["3"])) == 4
    best = load(url, "par").best_trial
    assert f"best: trial {best.number}, macro_f1 = {best.value:.4f}" in status.stdout
    # the printed best config is a ready-to-run command
    run_line = next(line.strip() for line in lines if line.strip().startswith("xlexp run "))
    assert f"optimizer.lr={best.params['optimizer.lr']!r}" in run_line


def test_killed_worker_trial_fails_and_is_retried_on_resume(dirs, tmp_path):
    """kill -9 mid-trial: the trial stops heart-beating; the re-run fails it (with the reason) and
    re-queues it; the study reaches n_trials and no results file is half-written."""
    base = [b for b in TINY_BASE if not b.startswith("trainer.epochs")] + ["trainer.epochs=25"]
    sweep = write_sweep(
        tmp_path / "kill.yaml", {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))"}, 3, base=base, pruner="{name: none}"
    )
    url = sqlite_url(dirs, "kill")
    args = [sys.executable, "-m", "xlexp.cli.main", "sweep", str(sweep), "--heartbeat", "1"]
    proc = subprocess.Popen(args, env=env_for(dirs), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = None
    deadline = time.monotonic() + 240
    try:
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            try:
                running = [
                    t for t in load(url, "kill").trials if t.state == TrialState.RUNNING and t.intermediate_values
                ]
            except Exception:  # the study is not created yet
                continue
            if running:
                os.kill(proc.pid, signal.SIGKILL)
                killed = running[0].number
    finally:
        if proc.poll() is None and killed is None:
            proc.kill()
        proc.wait(timeout=60)
    assert killed is not None, f"no trial was caught mid-training: {proc.stderr.read()[-2000:]}"
    assert load(url, "kill").trials[killed].state == TrialState.RUNNING  # nobody told the storage
    resumed = subprocess.run(args, env=env_for(dirs), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    study = load(url, "kill")
    trials = study.trials
    assert [t.number for t in trials] == list(range(len(trials)))  # no duplicate numbers
    assert trials[killed].state == TrialState.FAIL
    assert "no heartbeat" in fail_reason(study, trials[killed])
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[killed].params  # the same config, run again
    assert budget_used(trials) == 3 and len(trials) == 4  # the killed one is replaced, not counted
    assert killed not in set(load_records(dirs["results"])["trial"])
    _check_records_match_trials(dirs, study)
    assert not [p for p in runs_dir(dirs["results"]).iterdir() if p.suffix != ".parquet"]  # no half-written leftovers


def test_submitit_local_launcher_runs_the_workers_as_jobs(dirs, tmp_path):
    sweep = write_sweep(tmp_path / "slurmish.yaml", {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))"}, 3)
    out = cli(dirs, "sweep", str(sweep), "--launcher", "local", "--workers", "2", "--heartbeat", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    study = load(sqlite_url(dirs, "slurmish"), "slurmish")
    assert len(study.trials) == 3 and {t.state for t in study.trials} <= FINISHED
    launch_dir = dirs["results"] / "sweeps" / "launcher" / "slurmish"
    jobs = [p for p in launch_dir.glob("*/.submitit/*") if p.is_dir() and "%" not in p.name]
    assert len(jobs) == 2  # two submitit jobs, one per worker (an array job on SLURM), each with its result
    assert all(list(job.glob("*_result.pkl")) for job in jobs)
    logs = "".join(
        p.read_text(errors="replace")
        for p in launch_dir.rglob("*")
        if p.is_file() and p.suffix in (".out", ".err", ".log")
    )
    assert "/w0 on study slurmish" in logs and "/w1 on study slurmish" in logs
    # trials ran inside the jobs, not in the command's own process
    assert all(t.user_attrs["worker"].rsplit("/w", 1)[1] in ("0", "1") for t in study.trials)
    _check_records_match_trials(dirs, study)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_storage_on_localhost(dirs, tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'dash.db'}"
    study = optuna.create_study(study_name="dash-study", storage=url, direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            value=0.5, params={"x": 0.1}, distributions={"x": optuna.distributions.FloatDistribution(0, 1)}
        )
    )
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xlexp.cli.main", "dashboard", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(dirs),
    )
    try:
        line = proc.stdout.readline()  # printed only after /api/meta answered
        assert f"http://127.0.0.1:{port}/" in line, proc.stderr.read() if proc.poll() is not None else line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/meta", timeout=10) as r:
            assert "artifact_is_available" in json.loads(r.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as r:
            assert [s["study_name"] for s in json.loads(r.read())["study_summaries"]] == ["dash-study"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(
            timeout=120
        )  # drains both pipes (a full stderr pipe would block the exit); generous under load
        assert proc.returncode == 0


# ---- Optuna conventions: metric names, --study-name, a portable lock -----------------------------


@pytest.mark.unit
def test_study_carries_the_metric_name_and_study_name_is_accepted(dirs, monkeypatch, tmp_path):
    """optuna-dashboard labels its axes with the study's metric names (else "Objective 0"); Optuna's
    CLI spells the study flag --study-name, so both spellings work."""
    from xlexp.cli.sweep import parse_args
    from xlexp.sweep.job import build_job, create_or_check_study

    for key, value in env_for(dirs).items():
        monkeypatch.setenv(key, value)
    assert (
        parse_args(["s.yaml", "--study-name", "mine"]).study
        == "mine"
        == parse_args(["s.yaml", "--study", "mine"]).study
    )
    sweep = write_sweep(tmp_path / "named.yaml", {"optimizer.lr": "choice(1e-3, 1e-2)"}, 2)
    job = build_job(str(sweep), [], None, "named-study", None, None)
    create_or_check_study(job)
    assert load(job.storage_url, "named-study").metric_names == ["macro_f1"]  # read back through the storage
    create_or_check_study(job)  # resuming keeps it (and does not fail)
    study = load(job.storage_url, "named-study")
    assert study.metric_names == ["macro_f1"]
    # what optuna-dashboard's page reads for its axis titles (its API, served in-process here)
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    environ: dict = {"PATH_INFO": f"/api/studies/{study._study_id}", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    body = b"".join(wsgi(job.storage_url)(environ, lambda status, headers, exc_info=None: None))
    assert json.loads(body)["objective_names"] == ["macro_f1"]


def test_budget_lock_needs_no_fcntl_and_excludes_other_holders(tmp_path):
    """The SQLite budget lock is ``filelock`` (portable): the module imports where ``fcntl`` does not
    exist (Windows), and a second holder waits until the first lets go."""
    import threading

    from xlexp.sweep.storage import budget_lock

    no_fcntl = (
        "import sys; sys.modules['fcntl'] = None; import xlexp.sweep.storage"  # `import fcntl` fails, as on Windows
    )
    out = subprocess.run([sys.executable, "-c", no_fcntl], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    order: list[str] = []
    inside = threading.Event()

    def second() -> None:
        inside.wait(10)
        with budget_lock(url, "s"):
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with budget_lock(url, "s"):
        inside.set()
        time.sleep(0.5)
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]
