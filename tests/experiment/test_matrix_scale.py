"""Matrices at cluster scale (issue #19): resume by content, one job per source through
hydra-submitit-launcher, ``xlexp status``, and the example budget of target dev evaluation.
Tiny random model on data the tests write."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY, compose_cfg, write_nusax_like
from xlexp import run_experiment
from xlexp.results.store import load_predictions, load_records, runs_dir


def test_target_dev_is_a_seeded_subsample_within_the_budget_and_source_dev_is_whole(dirs):
    """#19.5: with a budget of 0.1 x 60 training examples per epoch over 2 watched targets, each target
    gets max(target_dev_min=5, 6 // 2) = 5 of its 20 dev examples; the source's dev split stays whole,
    and the dev records carry the size used."""
    run_experiment(
        compose_cfg(
            dirs,
            *TINY,
            "langpair.sources=[eng]",
            "langpair.targets=[eng,ind,jav]",
            "regime.dev_targets=all",
            "regime.target_dev_budget=0.1",
            "regime.target_dev_min=5",
        )
    )
    dev = load_records(dirs["results"]).query("split == 'dev'")
    assert dev.groupby("target")["n_examples"].unique().map(list).to_dict() == {"eng": [20], "ind": [5], "jav": [5]}
    assert set(load_records(dirs["results"]).query("split == 'test'").selection) == {"source_dev", "target_dev", "last"}


def test_no_budget_evaluates_the_full_target_dev_splits(dirs):
    run_experiment(
        compose_cfg(
            dirs,
            *TINY,
            "langpair.sources=[eng]",
            "langpair.targets=[eng,ind]",
            "regime.dev_targets=all",
            "regime.target_dev_budget=null",
        )
    )
    dev = load_records(dirs["results"]).query("split == 'dev'")
    assert set(dev.n_examples) == {20}


# -- resume by content (#19.1) -------------------------------------------------------------------
FIVE = ["eng", "ind", "jav", "sun", "ace"]


def write_five_languages(root: Path) -> Path:
    """The conftest layout for eng, ind, jav, plus sun and ace as word-shifted copies of ind and jav
    (their own vocabulary, the same learnable signal)."""
    write_nusax_like(root, sizes=(30, 12, 18))
    for new, old in (("sundanese", "indonesian"), ("acehnese", "javanese")):
        shutil.copytree(root / "nusax_senti" / old, root / "nusax_senti" / new)
        for f in (root / "nusax_senti" / new).glob("*.csv"):
            lines = f.read_text(encoding="utf-8").splitlines()
            f.write_text("\n".join(lines[:1] + [_shift(line) for line in lines[1:]]) + "\n", encoding="utf-8")
    return root


def _shift(line: str) -> str:
    row_id, text, label = line.split(",")
    return ",".join([row_id, " ".join(w + "h" for w in text.split()), label])


@pytest.fixture
def five(tmp_path: Path) -> dict[str, Path]:
    return {
        "data": write_five_languages(tmp_path / "data"),
        "results": tmp_path / "results",
        "cache": tmp_path / "cache",
    }


def run_cli(dirs, *args, env_extra=None):
    env = {
        **os.environ,
        "XLEXP_DATA_DIR": str(dirs["data"]),
        "XLEXP_RESULTS_DIR": str(dirs["results"]),
        "XLEXP_CACHE_DIR": str(dirs["cache"]),
        **(env_extra or {}),
    }
    env.pop("XLEXP_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "xlexp.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=dirs["results"].parent,
        timeout=900,
    )


FIVE_RUN = [
    "run",
    *TINY,
    "trainer.epochs=1",
    f"langpair.sources=[{','.join(FIVE)}]",
    f"langpair.targets=[{','.join(FIVE)}]",
    "regime.dev_targets=all",
    "name=five",
]


def test_kill_9_during_source_3_then_the_same_command_trains_only_sources_3_to_5(five, tmp_path):
    """#19 acceptance: SIGKILL while unit 3 of 5 is between its predictions and its records (the
    worst moment); the same command again skips units 1-2 (one line each), trains 3-5, and the
    store's matrix equals an uninterrupted run's; the killed unit's predictions are not counted."""
    killed = run_cli(five, *FIVE_RUN, env_extra={"XLEXP_FAULT": "before-records:3"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    first = load_records(five["results"])
    assert sorted(first.source.unique()) == ["eng", "ind"]  # nothing of unit 3 counts
    assert len(list((five["results"] / "predictions").glob("*.parquet"))) == 3  # unit 3's predictions were written

    again = run_cli(five, *FIVE_RUN)
    assert again.returncode == 0, again.stderr[-3000:]
    out = again.stdout + again.stderr
    skipped = re.findall(r"skip unit (\d)/5 \(source (\w+), seed 42\): its records are in the store", out)
    assert skipped == [("1", "eng"), ("2", "ind")], out[-3000:]
    assert "rerun=true" in out
    trained = re.findall(r"unit (\d)/5 \(source (\w+), seed 42\) done in", out)
    assert trained == [("3", "jav"), ("4", "sun"), ("5", "ace")]
    resumed = load_records(five["results"])
    assert sorted(resumed.groupby("run_id").source.unique().map(sorted).map(tuple)) == [
        ("ace", "jav", "sun"),
        ("eng", "ind"),
    ]

    fresh = {**five, "results": tmp_path / "fresh"}
    whole = run_cli(fresh, *FIVE_RUN)
    assert whole.returncode == 0, whole.stderr[-3000:]
    cols = ["source", "target", "split", "metric", "selection", "step", "value", "n_examples", "unit_key"]
    a, b = (
        load_records(d).query("split == 'test'")[cols].sort_values(cols[:6]).reset_index(drop=True)
        for d in (five["results"], fresh["results"])
    )
    assert len(a) == 5 * 5 * 2 * 3 and a.equals(b)
    assert len(load_predictions(five["results"])) == len(load_predictions(fresh["results"]))  # no doubled unit 3


def test_rerun_true_trains_every_unit_again_and_the_newest_records_win(dirs):
    args = [
        "run",
        *TINY,
        "trainer.epochs=1",
        "langpair.sources=[eng,ind]",
        "langpair.targets=[eng,ind]",
        "regime.dev_targets=none",
    ]
    assert run_cli(dirs, *args).returncode == 0
    second = run_cli(dirs, *args)
    assert second.returncode == 0 and len(re.findall(r"skip unit \d/2", second.stdout + second.stderr)) == 2
    third = run_cli(dirs, *args, "rerun=true")
    assert third.returncode == 0, third.stderr[-2000:]
    assert "skip unit" not in third.stdout + third.stderr
    df = load_records(dirs["results"])
    assert df.run_id.nunique() == 2 and df.groupby("run_id").unit_key.nunique().tolist() == [2, 2]
    assert len(list(runs_dir(dirs["results"]).glob("*.parquet"))) == 4


# -- one job per source through hydra-submitit-launcher (#19.2) -----------------------------------
FOUR = FIVE[:4]


def test_submitit_local_runs_one_job_per_source_into_one_store_and_one_matrix(five):
    """#19 acceptance: a 4-source matrix as 4 submitit jobs (the local twin of a SLURM array job), all
    writing one store; the multirun listed the 4 units before submitting; one 4 x 4 matrix."""
    out = run_cli(
        five,
        "run",
        "-m",
        *TINY,
        "trainer.epochs=1",
        f"langpair.targets=[{','.join(FOUR)}]",
        "regime.dev_targets=none",
        "name=jobs",
        "hydra/launcher=xlexp_local",
        "hydra.launcher.timeout_min=10",
        f"langpair.sources={','.join(FOUR)}",
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "multirun: 4 job(s), 4 training unit(s) listed as planned" in out.stdout + out.stderr
    jobs = [
        p for p in (five["results"].parent / "multirun").glob("*/*/.submitit/*") if p.is_dir() and "%" not in p.name
    ]
    assert len(jobs) == 4 and all(list(j.glob("*_result.pkl")) for j in jobs)
    df = load_records(five["results"])
    assert df.run_id.nunique() == 4 and sorted(df.groupby("run_id").source.first()) == sorted(FOUR)  # one job each
    matrix = run_cli(five, "matrix", "--experiment", "jobs", "--metric", "accuracy")
    assert matrix.returncode == 0, matrix.stderr
    assert "4 x 4 matrix" in matrix.stdout and "pending" not in matrix.stdout
    status = run_cli(five, "status", "--experiment", "jobs")
    assert status.returncode == 0, status.stderr
    assert "4 unit(s): 4 done, 0 running, 0 failed, 0 pending" in status.stdout


# -- xlexp status and the partial matrix (#19.2, #19.3) -------------------------------------------
def test_status_lists_done_failed_running_pending_units_and_the_matrix_marks_their_cells(dirs):
    """One unit done, one failed (a diverging run: its error), one running (this process) and one
    planned: `xlexp status` counts and names them with the error and an ETA from the measured unit
    time; `xlexp matrix` shows the done row and marks the other cells."""
    from xlexp.results import units as ledger

    base = ["run", *TINY, "trainer.epochs=1", "langpair.targets=[eng,ind,jav]", "regime.dev_targets=none", "name=st"]
    assert run_cli(dirs, *base, "langpair.sources=[eng]").returncode == 0
    bad = run_cli(
        dirs, *base, "langpair.sources=[ind]", "optimizer=sgd", "optimizer.lr=1e30", "optimizer.grad_clip=null"
    )
    assert bad.returncode == 2, bad.stderr[-2000:]
    ledger.plan_units(dirs["results"], [ledger.UnitEntry("st", "a" * 12, "jav", 42, ["eng", "ind", "jav"])])
    running = ledger.UnitEntry("st", "b" * 12, "sun", 42, ["eng", "ind", "jav"])
    ledger.mark(dirs["results"], running, "running", host=ledger.this_host(), pid=os.getpid(), started=time.time() - 5)

    status = run_cli(dirs, "status", "--experiment", "st")
    assert status.returncode == 0, status.stderr
    text = status.stdout
    assert "experiment st: 4 unit(s): 1 done, 1 running, 1 failed, 1 pending" in text
    assert re.search(r"failed   ind \(seed 42\): non-finite training loss at step \d+ .*lower optimizer.lr", text), text
    assert re.search(r"running  sun \(seed 42\): for \d+s on ", text) and "pending  jav (seed 42)" in text
    assert re.search(r"ETA \d+s: mean unit time \d+s over 1 measured unit\(s\), 1 pending \+ 1 running", text), text

    matrix = run_cli(dirs, "matrix", "--experiment", "st", "--metric", "accuracy")
    assert matrix.returncode == 0, matrix.stderr
    rows = {
        line.split("│")[1].strip().split(" ")[0]: line for line in matrix.stdout.splitlines() if line.count("│") > 3
    }
    assert rows["ind"].count("failed") == 3 and rows["jav"].count("pending") == 3 and rows["sun"].count("running") == 3
    assert re.search(r"eng .*│ +0\.\d{3} │", rows["eng"])
    assert "partial matrix: 1 of 4 unit(s) done, 1 running, 1 failed, 1 pending; 9 cell(s) marked" in matrix.stdout

    # the running unit's process dies: nothing runs, so no ETA of running processes; the work left for
    # the re-run counts the failed units too (they are redone), and a matrix with failed units is not "complete"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    ledger.mark(dirs["results"], running, "running", host=ledger.this_host(), pid=gone.pid, started=time.time() - 5)
    text = run_cli(dirs, "status", "--experiment", "st").stdout
    assert "4 unit(s): 1 done, 0 running, 2 failed, 1 pending" in text, text
    assert re.search(
        r"nothing running: (\d+h)?(\d+m)?\d+s of work left for one process \(mean unit time [\dhms]+ over 1 measured "
        r"unit\(s\); 1 pending, 2 failed\)",
        text,
    ), text
    assert "ETA" not in text and "complete" not in text


def test_a_killed_units_process_is_reported_failed_and_the_eta_is_measured(tmp_path):
    from xlexp.results import units as ledger

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    e = ledger.UnitEntry("x", "c" * 12, "eng", 1, ["eng"])
    ledger.mark(tmp_path, e, "running", host=ledger.this_host(), pid=gone.pid, started=100.0)
    [state] = ledger.unit_states(tmp_path, "x")
    assert state.state == "failed" and f"process {gone.pid}" in state.detail
    done = [
        ledger.UnitState(ledger.UnitEntry("x", k, "s", 1, elapsed_s=t), "done") for k, t in (("d1", 10.0), ("d2", 30.0))
    ]
    running = ledger.UnitState(ledger.UnitEntry("x", "r", "s", 1, started=995.0), "running")
    waiting = [ledger.UnitState(ledger.UnitEntry("x", f"p{i}", "s", 1), "pending") for i in range(3)]
    mean, eta = ledger.eta_seconds([*done, running, *waiting], now=1000.0)
    assert mean == 20.0 and eta == 3 * 20.0 + (20.0 - 5.0)  # one process running: everything after one another


def test_few_shot_cells_are_skipped_with_their_source_unit(dirs):
    """The few-shot cells (K = 0 and K > 0) are records of their source unit: a second run of the same
    command trains nothing and prints one skip line per source; the run's matrix has every cell."""
    args = [
        "run",
        *TINY,
        "trainer.epochs=1",
        "regime=few_shot",
        "regime.k=[2]",
        "regime.shot_sets=1",
        "regime.finetune.epochs=1",
        "langpair.sources=[eng,ind]",
        "langpair.targets=[jav]",
    ]
    first = run_cli(dirs, *args)
    assert first.returncode == 0, first.stderr[-2000:]
    n = len(load_records(dirs["results"]))
    second = run_cli(dirs, *args)
    assert second.returncode == 0, second.stderr[-2000:]
    out = second.stdout + second.stderr
    assert len(re.findall(r"skip unit \d/2 \(source (?:eng|ind), seed 42\)", out)) == 2
    assert "all 2 unit(s) were complete in the store: nothing trained" in out
    df = load_records(dirs["results"])
    assert len(df) == n and set(df.k.dropna().astype(int)) == {0, 2}


@pytest.mark.unit
def test_matrix_of_an_experiment_whose_jobs_have_not_finished_a_unit_says_so(tmp_path, capsys):
    from xlexp.results import units as ledger
    from xlexp.views.console import show

    ledger.plan_units(
        tmp_path, [ledger.UnitEntry("queued", k, s, 1, ["eng"]) for k, s in (("k1", "eng"), ("k2", "ind"))]
    )
    assert show(tmp_path, "queued") == []
    assert "experiment queued: no unit done yet (0 running, 0 failed, 2 pending of 2)" in capsys.readouterr().out
