"""Many workers on one PostgreSQL study (what a cluster does), with a password in the URL that
must never show up unmasked anywhere. Needs PostgreSQL (see tests/pg.py; CI starts one)."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest
from optuna.trial import TrialState

from pg import pg_url, with_password  # noqa: F401  (pg_url is a fixture)
from sweeps_helpers import cli, load, write_sweep
from xlexp.results.store import runs_dir

pytestmark = pytest.mark.integration

# Optuna marks heartbeats and stale-trial retries experimental; xlexp relies on them on purpose
pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning"),
]

SECRET = "s3cr3t-Pw-xlexp"


def test_four_workers_on_postgres_run_exactly_n_trials(dirs, tmp_path, pg_url):
    url = with_password(pg_url, SECRET)
    study_name = f"pg-{uuid.uuid4().hex[:8]}"
    sweep = write_sweep(
        tmp_path / "pg.yaml",
        {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))", "optimizer.weight_decay": "interval(0.0, 0.1)"},
        8,
        sampler="{name: tpe, seed: 0, n_startup_trials: 3}",
        pruner="{name: median, n_startup_trials: 2, n_warmup_steps: 0}",
    )
    out = cli(dirs, "sweep", str(sweep), "--storage", url, "--study", study_name, "--workers", "4", "--heartbeat", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    study = load(url, study_name)
    trials = study.trials
    assert len(trials) == 8 and [t.number for t in trials] == list(range(8))  # exactly n_trials, no duplicates
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    assert any(t.state == TrialState.COMPLETE for t in trials)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) >= 2, workers  # the work was shared
    # one results file per finished (complete) trial, tagged with the study and its trial number
    files = sorted(runs_dir(dirs["results"]).glob("*.parquet"))
    frames = [pd.read_parquet(f) for f in files]
    assert sorted(int(f["trial"].iloc[0]) for f in frames) == sorted(
        t.number for t in trials if t.state == TrialState.COMPLETE
    )
    assert all(set(f["study"]) == {f"{study_name}@{study.user_attrs['xlexp_uid']}"} for f in frames)

    status = cli(dirs, "sweep", "--status", "--storage", url, "--study", study_name)
    assert status.returncode == 0 and "trials 8/8" in status.stdout
    assert "postgresql://postgres:***@127.0.0.1" in status.stdout

    # the password never appears: not in output, records, study/trial attributes or any written file
    assert SECRET not in out.stdout + out.stderr + status.stdout + status.stderr
    records = pd.concat(frames)
    assert not records.astype(str).apply(lambda col: col.str.contains(SECRET)).any().any()
    attrs = json.dumps([study.user_attrs, [(t.user_attrs, t.system_attrs) for t in trials]], default=str)
    assert SECRET not in attrs
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_bad_postgres_url_fails_in_one_line_without_the_password(dirs, tmp_path, pg_url):
    port = pg_url.rsplit(":", 1)[1].split("/")[0]
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/no_such_database"
    sweep = write_sweep(tmp_path / "bad.yaml", {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))"}, 1)
    out = cli(dirs, "sweep", str(sweep), "--storage", url)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "xlexp: error: cannot open sweep storage postgresql://postgres:***@127.0.0.1" in out.stderr
    assert SECRET not in out.stdout + out.stderr and "Traceback" not in out.stderr
