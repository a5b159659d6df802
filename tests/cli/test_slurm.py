"""Matrices and sweeps through a real SLURM (issue #31): a one-node cluster on localhost
(.ci/slurm.sh; CI starts it, tests/slurm.py starts one otherwise or skips), tiny random models on
data the tests write. Each test submits with ``hydra/launcher=xlexp_slurm`` (one array task per
source) or ``xlexp sweep --launcher slurm``, then checks the store, ``xlexp status`` and SLURM's own
accounting (``sacct``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from pg import pg_url  # noqa: F401  (a fixture)
from slurm import slurm_cluster  # noqa: F401  (a fixture)
from tests.conftest import write_nusax_like
from xlexp.results import units as ledger
from xlexp.results.store import load_records, runs_dir

pytestmark = pytest.mark.integration

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning"),
]

SOURCES = ["eng", "ind", "jav"]
# one CPU and 1 GB per array task, no GPU (the CI node has none); a 10-minute limit per task
RESOURCES = [
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
]
# cancel and requeue hit `ind`'s unit while it trains. An epoch of the tiny model on 40 rows takes
# ~0.05 s, so 12 epochs ended before the test's requeue landed on a fast CI machine (the unit was done,
# 1 s). Only ind's training set is made long (LONG_ROWS copies of its rows: ~15 s at 12 epochs), so
# the poll (every 0.1 s) sees the unit running with seconds to spare and eng and jav stay quick.
LONG_UNIT = "trainer.epochs=12"
LONG_ROWS = 25


def lengthen_ind(where) -> None:
    """ind's train.csv repeated LONG_ROWS times: its unit trains LONG_ROWS times longer than the others."""
    path = where["data"] / "nusax_senti" / "indonesian" / "train.csv"
    header, *rows = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(header + "".join(rows * LONG_ROWS), encoding="utf-8")


TINY = [
    "model=tiny_random",
    "optimizer.lr=1e-3",
    "data.batch_size=8",
    "trainer.progress=false",
    "trainer.num_threads=1",
    f"langpair.targets=[{','.join(SOURCES)}]",
    "regime.dev_targets=none",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One model cache for the module: the tiny tokenizer and model are built once, not per job."""
    return tmp_path_factory.mktemp("slurm-cache")


@pytest.fixture
def where(tmp_path: Path, cache: Path, slurm_cluster) -> dict[str, Path]:  # noqa: F811
    return {
        "data": write_nusax_like(tmp_path / "data", sizes=(40, 12, 18)),
        "results": tmp_path / "results",
        "cache": cache,
        "cwd": tmp_path,
    }


def env_of(where: dict[str, Path]) -> dict[str, str]:
    env = {
        **os.environ,
        "XLEXP_DATA_DIR": str(where["data"]),
        "XLEXP_RESULTS_DIR": str(where["results"]),
        "XLEXP_CACHE_DIR": str(where["cache"]),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("XLEXP_DEBUG", None)
    return env


def xlexp(where, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xlexp.cli.main", *args],
        capture_output=True,
        text=True,
        env=env_of(where),
        cwd=where["cwd"],
        timeout=timeout,
    )


def submit(where, *args) -> subprocess.Popen:
    """``xlexp run -m ...`` in the background: the submitting command waits for its array job."""
    return subprocess.Popen(
        [sys.executable, "-m", "xlexp.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env_of(where),
        cwd=where["cwd"],
    )


def matrix_args(name: str, *extra: str) -> list[str]:
    return [
        "run",
        "-m",
        *TINY,
        f"name={name}",
        "hydra/launcher=xlexp_slurm",
        *RESOURCES,
        *extra,
        f"langpair.sources={','.join(SOURCES)}",
    ]


def slurm(*cmd: str) -> str:
    out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{' '.join(cmd)}: {out.stderr}"
    return out.stdout


def sacct(name: str) -> dict[str, str]:
    """SLURM's accounting: the state of every task of the jobs named ``name``, by job id, once none
    is pending or running (a task still exits for a moment after submitit has read its result, and
    slurmdbd records the end a moment after squeue stops listing the task)."""
    wait_for(lambda: not slurm("squeue", "-h", "-r", "--name", name, "-o", "%i"), f"the jobs named {name} to end")

    def ended():
        out = slurm("sacct", "-X", "-n", "-P", "-S", "now-1days", "--name", name, "-o", "JobID,State")
        states = {line.split("|")[0]: line.split("|")[1] for line in out.splitlines() if line.strip()}
        return states if states and not {"PENDING", "RUNNING", "COMPLETING"} & set(states.values()) else None

    return wait_for(ended, f"SLURM's accounting to record the end of the jobs named {name}", timeout=60.0)


def active(job: str) -> list[str]:
    return slurm("squeue", "-h", "-r", "-j", job, "-o", "%i|%T").split()


def wait_for(check, what: str, proc: subprocess.Popen | None = None, timeout: float = 300.0, every: float = 0.3):
    """Poll ``check()`` until it returns something truthy; fail with ``what`` (and the submitting
    command's output) on timeout or when that command ended first."""
    end = time.time() + timeout
    while time.time() < end:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the command ended (exit {proc.returncode}) before {what}:\n{proc.stdout.read()[-4000:]}")
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def running_unit(where, experiment: str, source: str):
    """The ledger entry of ``source``'s unit once a SLURM task runs it (its job id recorded)."""
    for e in ledger.read_ledger(where["results"], experiment):
        if e.source == source and e.state == "running" and e.slurm_job:
            return e
    return None


def job_logs(where, experiment: str) -> str:
    return "".join(p.read_text(errors="replace") for p in (where["cwd"] / "multirun" / experiment).rglob("*_log.*"))


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the multirun did not finish in {timeout:.0f}s:\n{out[-4000:]}")
    return proc.returncode, out


def stop(proc: subprocess.Popen, name: str) -> None:
    """After a failure: end the submitting command and cancel its jobs (they outlive it; not after a
    success, when a task may still be exiting after its result is written)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    subprocess.run(["scancel", "--name", f"xlexp-{name}"], capture_output=True, timeout=60)


def status(where, experiment: str) -> str:
    from xlexp import XlexpError
    from xlexp.cli.status import status_lines

    try:
        return "\n".join(status_lines(str(where["results"]), experiment, show_all=True))
    except XlexpError:  # nothing planned yet
        return ""


# -- a matrix as one array job ------------------------------------------------------------------------
def test_three_sources_are_three_array_tasks_into_one_store_and_status_shows_slurms_view(where):
    """`-m hydra/launcher=xlexp_slurm langpair.sources=eng,ind,jav` submits one array job of 3 tasks
    (at most 2 at once: `array_parallelism=2`, SLURM's `%2`); while it runs, `xlexp status` lists
    the ledger's units next to SLURM's tasks (a running task with its job id, the throttled one
    pending with SLURM's reason); at the end one store holds a 3 x 3 matrix and sacct says COMPLETED."""
    name = f"m3-{uuid.uuid4().hex[:6]}"
    lengthen_ind(where)  # ind's task runs ~15 s, so the poll sees it running while jav is throttled (under load
    # the 2-epoch units all ended before one `xlexp status` poll came back)
    proc = submit(where, *matrix_args(name, LONG_UNIT, "hydra.launcher.array_parallelism=2"))
    try:

        def running_and_throttled():
            text = status(where, name)
            return (
                text
                if (
                    re.search(r"\d+_[01] +RUNNING +\w+ \(seed 42\): running", text)
                    and re.search(r"\d+_2 +PENDING \(JobArrayTaskLimit\) +jav \(seed 42\): pending", text)
                )
                else None
            )

        seen = wait_for(running_and_throttled, "a running task and the throttled task pending in SLURM's view", proc)
        code, out = finish(proc)
    except BaseException:
        stop(proc, name)
        raise
    assert code == 0, out[-4000:]
    print("\n" + seen)
    job = re.search(r"SLURM \(squeue/sacct, job name xlexp-" + name + r"\): job (\d+), 3 task\(s\)", seen)
    assert job, seen
    assert re.search(
        r"running  \w+ \(seed 42\): for \d+s on \S+ \(pid \d+, SLURM job " + job.group(1) + r"_[01]", seen
    ), seen

    df = load_records(where["results"])
    assert df.run_id.nunique() == 3 and sorted(df.groupby("run_id").source.first()) == SOURCES  # one task each
    assert sacct(f"xlexp-{name}") == {f"{job.group(1)}_{i}": "COMPLETED" for i in range(3)}
    matrix = xlexp(where, "matrix", "--experiment", name, "--metric", "accuracy")
    assert matrix.returncode == 0 and "3 x 3 matrix" in matrix.stdout and "pending" not in matrix.stdout, matrix.stdout
    done = status(where, name)
    assert "3 unit(s): 3 done, 0 running, 0 failed, 0 pending" in done, done
    assert f"job {job.group(1)}, 3 task(s): 3 COMPLETED" in done, done


# -- scancel, then the same command ---------------------------------------------------------------
def test_scancel_of_one_array_task_then_the_same_command_trains_only_that_source(where):
    """scancel the `ind` task while its unit trains: nothing of it is in the store, `xlexp status`
    reports it failed with SLURM's CANCELLED; the same command again submits 3 tasks, the eng and jav
    tasks skip their units (resume by unit key) and only ind trains: the store grows by exactly one
    unit's records and the other two units' files are untouched."""
    name = f"cancel-{uuid.uuid4().hex[:6]}"
    lengthen_ind(where)
    args = matrix_args(name, LONG_UNIT)
    proc = submit(where, *args)
    try:
        victim = wait_for(
            lambda: running_unit(where, name, "ind"), "ind's unit running in a SLURM task", proc, every=0.1
        )
        slurm("scancel", victim.slurm_job)
        code, out = finish(proc)
    except BaseException:
        stop(proc, name)
        raise
    assert code != 0  # the launcher reports the cancelled task (the others run on)
    print("\n" + "\n".join(out.strip().splitlines()[-3:]))
    array = victim.slurm_job.split("_")[0]
    wait_for(lambda: not active(array), f"array job {array} to end")
    assert sacct(f"xlexp-{name}")[victim.slurm_job].startswith("CANCELLED")

    before = load_records(where["results"])
    files_before = sorted(p.name for p in runs_dir(where["results"]).glob("*.parquet"))
    assert sorted(before.source.unique()) == ["eng", "jav"] and len(files_before) == 2  # nothing of ind counts
    text = status(where, name)
    assert "3 unit(s): 2 done, 0 running, 1 failed, 0 pending" in text, text
    # the unit's own handler saw scancel's SIGTERM (else: SLURM's state, or its pid gone from this host)
    assert re.search(
        rf"failed   ind \(seed 42\): (Terminated: signal 15 \(SIGTERM\)|SLURM job {victim.slurm_job} "
        rf"ended CANCELLED|process \d+ on )",
        text,
    ), text
    assert re.search(rf"{victim.slurm_job} +CANCELLED.* ind \(seed 42\): failed", text), text

    again = xlexp(where, *args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    logs = job_logs(where, name)
    assert len(re.findall(r"skip unit 1/1 \(source (?:eng|jav), seed 42\): its records are in the store", logs)) == 2, (
        logs[-3000:]
    )
    assert len(re.findall(r"unit 1/1 \(source ind, seed 42\) done in", logs)) == 1
    after = load_records(where["results"])
    files_after = sorted(p.name for p in runs_dir(where["results"]).glob("*.parquet"))
    per_unit = len(before) // 2
    assert len(after) == len(before) + per_unit and set(files_before) < set(files_after) and len(files_after) == 3
    assert sorted(after.source.unique()) == SOURCES and after.groupby("unit_key").run_id.nunique().eq(1).all()
    print(f"\nrecords before {len(before)} ({len(files_before)} files), after {len(after)} ({len(files_after)} files)")


# -- scontrol requeue (preemption) ------------------------------------------------------------------
def test_scontrol_requeue_of_a_running_task_retrains_its_unit_and_never_duplicates_records(where):
    """`scontrol requeue` of the task training `ind` (what a preemption does): SLURM kills it and
    queues it again under the same job id; when it runs again the unit, which had written nothing,
    trains once more. Every unit has exactly one records file and one run; the task ran twice."""
    name = f"requeue-{uuid.uuid4().hex[:6]}"
    lengthen_ind(where)
    proc = submit(where, *matrix_args(name, LONG_UNIT))
    try:
        victim = wait_for(
            lambda: running_unit(where, name, "ind"), "ind's unit running in a SLURM task", proc, every=0.1
        )
        n_before = (
            len(load_records(where["results"]).query("source == 'ind'")) if runs_dir(where["results"]).is_dir() else 0
        )
        slurm("scontrol", "requeue", victim.slurm_job)
        wait_for(
            lambda: f"{victim.slurm_job}|PENDING" in active(victim.slurm_job.split("_")[0]),
            "the requeued task to pend",
            proc,
        )
        text = status(where, name)
        assert re.search(rf"pending  ind \(seed 42\): SLURM job {victim.slurm_job} pending again \(requeued", text), (
            text
        )
        slurm("scontrol", "update", f"JobId={victim.slurm_job}", "StartTime=now")  # SLURM holds a requeued job ~2 min
        code, out = finish(proc)
    except BaseException:
        stop(proc, name)
        raise
    assert code == 0, out[-4000:]
    log = next((where["cwd"] / "multirun" / name).rglob(f"{victim.slurm_job}_0_log.out")).read_text()
    assert log.count("Starting with JobEnvironment") == 2  # the task ran twice under one job id
    df = load_records(where["results"])
    files = list(runs_dir(where["results"]).glob("*.parquet"))
    assert n_before == 0 and len(files) == 3 and df.groupby("unit_key").run_id.nunique().eq(1).all()
    assert (
        df.groupby("source").size().nunique() == 1 and sorted(df.source.unique()) == SOURCES
    )  # ind: one unit's records
    assert sacct(f"xlexp-{name}")[victim.slurm_job] == "COMPLETED"
    print(
        f"\nind records before the requeue {n_before}, after {len(df.query('source == @victim.source'))}; "
        f"total {len(df)} in {len(files)} files"
    )


# -- a sweep's workers as an array job on PostgreSQL ---------------------------------------------------
def test_sweep_with_two_slurm_workers_on_postgres_runs_exactly_n_trials(where, tmp_path, pg_url):  # noqa: F811
    from optuna.trial import TrialState

    from sweeps_helpers import load, write_sweep

    study_name = f"slurm-{uuid.uuid4().hex[:8]}"
    sweep = write_sweep(
        tmp_path / "s.yaml",
        {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))"},
        4,
        base=[
            "model=tiny_random",
            "trainer.epochs=1",
            "data.batch_size=8",
            "trainer.progress=false",
            "trainer.num_threads=1",
            "langpair.sources=[eng]",
            "langpair.targets=[eng,ind]",
        ],
    )
    out = xlexp(
        where,
        "sweep",
        str(sweep),
        "--storage",
        pg_url,
        "--study",
        study_name,
        "--launcher",
        "slurm",
        "--workers",
        "2",
        "--heartbeat",
        "2",
        *[a for r in RESOURCES for a in ("--launcher-arg", r)],
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    study = load(pg_url, study_name)
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2, 3]  # exactly n_trials, no duplicates
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    complete = sorted(t.number for t in trials if t.state == TrialState.COMPLETE)
    assert complete
    frames = [pd.read_parquet(f) for f in runs_dir(where["results"]).glob("*.parquet")]
    assert sorted(int(f["trial"].iloc[0]) for f in frames) == complete  # only complete trials' records
    workers = sacct(f"xlexp-sweep-{study_name}")
    assert len(workers) == 2 and set(workers.values()) == {"COMPLETED"}, workers  # 2 array tasks = 2 workers
    launch_dir = where["results"] / "sweeps" / "launcher" / study_name
    logs = "".join(p.read_text(errors="replace") for p in launch_dir.rglob("*_log.*"))
    assert (
        f"/w0 on study {study_name}" in logs and f"/w1 on study {study_name}" in logs
    )  # both workers asked for trials
    assert {t.user_attrs["worker"].rsplit("/w", 1)[1] for t in trials} <= {"0", "1"}
