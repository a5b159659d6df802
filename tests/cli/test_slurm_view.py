"""SLURM's view in ``xlexp status`` without a cluster: ``squeue`` and ``sacct`` are small scripts on
the PATH printing what SLURM 22.05 prints (the formats tests/cli/test_slurm.py checks on a real one)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from xlexp.cli.status import status_lines
from xlexp.results import units as ledger

pytestmark = pytest.mark.unit


def fake(bin_dir: Path, name: str, output: str, code: int = 0) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def slurm_bin(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def plan(results: Path) -> dict[str, ledger.UnitEntry]:
    entries = {
        s: ledger.UnitEntry("exp", f"k{i}", s, 42, ["eng"], job_num=i)
        for i, s in enumerate(["eng", "ind", "jav", "sun"])
    }
    ledger.plan_units(results, list(entries.values()))
    return entries


def test_status_joins_squeue_and_sacct_to_the_ledger_by_job_id(tmp_path, slurm_bin, monkeypatch):
    """eng runs in task 7_0 (ledger and SLURM agree); ind's task was cancelled while the ledger says
    running (its node died silently): failed with SLURM's state; jav's task was requeued after its
    process marked it failed: pending again; sun's task has not started: listed by its array task id."""
    results = tmp_path / "results"
    e = plan(results)
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "7")
    for task, source, pid in ((0, "eng", os.getpid()), (1, "ind", 999999), (2, "jav", 999999)):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        ledger.mark(results, e[source], "running", host="node-2", pid=pid, started=1.0)
    ledger.mark(results, e["jav"], "failed", error="Terminated: signal 15 (SIGTERM)")
    fake(slurm_bin, "squeue", "7_3|PENDING|JobArrayTaskLimit\n7_2|PENDING|BeginTime\n7_0|RUNNING|None")
    fake(
        slurm_bin,
        "sacct",
        "7_0|RUNNING|0:0|None\n7_1|CANCELLED by 0|0:0|None\n7_2|PENDING|0:0|BeginTime\n7_[3]|PENDING|0:0|None",
    )

    text = "\n".join(status_lines(str(results), "exp", show_all=True))
    assert "exp: 4 unit(s): 0 done, 1 running, 1 failed, 2 pending" in text, text
    assert (
        "failed   ind (seed 42): SLURM job 7_1 ended CANCELLED by 0 before the unit's records were written; "
        "re-run the same command to redo the unit"
    ) in text
    assert "pending  jav (seed 42): SLURM job 7_2 pending again (requeued: BeginTime)" in text
    assert "running  eng (seed 42): for " in text and "SLURM job 7_0" in text
    assert "SLURM (squeue/sacct, job name xlexp-exp): job 7, 4 task(s): 1 CANCELLED, 2 PENDING, 1 RUNNING" in text
    for line in (
        "7_0        RUNNING                      eng (seed 42): running",
        "7_1        CANCELLED (by 0)             ind (seed 42): failed",
        "7_2        PENDING (BeginTime)          jav (seed 42): pending",
        "7_3        PENDING (JobArrayTaskLimit)  sun (seed 42): pending",
    ):
        assert line in text, text


def test_no_slurm_section_for_a_run_that_never_used_slurm_even_where_squeue_fails(tmp_path, slurm_bin):
    results = tmp_path / "results"
    plan(results)
    fake(slurm_bin, "squeue", "slurm_load_jobs error: Unable to contact slurm controller", code=1)
    fake(slurm_bin, "sacct", "sacct: error: Problem talking to the database", code=1)
    text = "\n".join(status_lines(str(results), "exp"))
    assert "SLURM" not in text and "4 pending" in text


def test_a_failing_squeue_is_one_line_when_the_ledger_names_slurm_jobs(tmp_path, slurm_bin, monkeypatch):
    results = tmp_path / "results"
    e = plan(results)
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    ledger.mark(results, e["eng"], "running", host="node-2", pid=1, started=1.0)
    fake(slurm_bin, "squeue", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)", code=1)
    fake(slurm_bin, "sacct", "", code=0)
    text = "\n".join(status_lines(str(results), "exp"))
    assert "SLURM: squeue: slurm_load_jobs error: Unable to contact slurm controller (connect failure)" in text, text
    assert "running  eng (seed 42)" in text and "SLURM job 12" in text  # the ledger's word stands


def test_the_slurm_launcher_names_a_runs_array_job_after_its_experiment_and_a_sweeps_after_its_study():
    """`squeue --name xlexp-<name>` finds a matrix's tasks (what `xlexp status` asks); sweep workers
    keep their app's job name."""
    from hydra import compose, initialize_config_dir

    from xlexp.config.compose import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        run = compose("config", overrides=["hydra/launcher=xlexp_slurm", "name=my/exp"], return_hydra_config=True)
        default = compose(
            "config", overrides=["hydra/launcher=xlexp_slurm", "model=tiny_random"], return_hydra_config=True
        )
        sweep = compose(
            "sweep_worker",
            overrides=["hydra/launcher=xlexp_slurm", "sweep_file=x", "study=s", "n_trials=8"],
            return_hydra_config=True,
        )
    assert run.hydra.launcher.name == "xlexp-my_exp"
    assert default.hydra.launcher.name == f"xlexp-{default.name}" and "tiny_random" in default.name
    assert sweep.hydra.launcher.name == "xlexp-sweep-s"
