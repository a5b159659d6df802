"""The fault catalogue (issue #14, #20): each test is one fault a user or a flaky machine causes, and
asserts the exact promise: the exit code, the one line that names the file or the fix, the record
counts before and after, and no orphan files. docs/faults.md lists them with the promise each holds.

Runs go through the real CLI (a subprocess, as a user types it) with the tiny random model on a
small NusaX-layout folder the test writes; the few that need only the library call it directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TINY, compose_cfg, write_nusax_like
from xlexp import XlexpError
from xlexp.results.store import load_records
from xlexp.results.store_check import check_store

SMALL = [*TINY, "trainer.epochs=1", "langpair.sources=[eng]", "langpair.targets=[eng,ind]", "regime.dev_targets=none"]


def cli(dirs, *args, env_extra=None, cwd=None):
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
        cwd=cwd or dirs["results"].parent,
        timeout=600,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("xlexp: error:")]


def n_records(dirs) -> int:
    return len(load_records(dirs["results"]))


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    data = write_nusax_like(tmp_path / "data", sizes=(30, 12, 18))
    return {"data": data, "results": tmp_path / "results", "cache": tmp_path / "cache"}


# -- the store ---------------------------------------------------------------------------------
def test_a_corrupt_record_file_is_skipped_named_and_repaired(dirs):
    """#14.1: a garbage .parquet in results/runs/ used to fail every view and make a new run exit 1."""
    first = cli(dirs, "run", *SMALL, "name=good")
    assert first.returncode == 0, first.stderr
    before = n_records(dirs)
    bad = dirs["results"] / "runs" / "garbage.parquet"
    bad.write_bytes(b"this is not parquet")
    truncated = dirs["results"] / "runs" / "truncated.parquet"
    good_file = next(f for f in (dirs["results"] / "runs").glob("*.parquet") if f != bad)
    truncated.write_bytes(good_file.read_bytes()[:200])

    shown = cli(dirs, "matrix", "--experiment", "good")
    assert shown.returncode == 0, shown.stderr
    warnings = [line for line in shown.stderr.splitlines() if "skipping unreadable results file" in line]
    assert len(warnings) == 2 and any(str(bad) in w for w in warnings) and "xlexp store check --repair" in warnings[0]
    assert "Traceback" not in shown.stderr
    for verb in (["table", "--experiment", "good"], ["report", "--experiment", "good"]):
        out = cli(dirs, *verb)
        assert out.returncode == 0, (verb, out.stderr)

    second = cli(dirs, "run", *SMALL, "name=second")  # a new run with the bad file present: rc 0, its records counted
    assert second.returncode == 0, second.stderr
    assert n_records(dirs) == 2 * before

    check = cli(dirs, "store", "check")
    assert check.returncode == 1 and "2 bad" in check.stdout and str(bad) in check.stdout
    repair = cli(dirs, "store", "check", "--repair")
    assert repair.returncode == 0 and not bad.exists() and not truncated.exists()
    assert (dirs["results"] / "quarantine" / "runs" / "garbage.parquet").read_bytes() == b"this is not parquet"
    assert check_store(dirs["results"])[1] == [] and n_records(dirs) == 2 * before
    clean = cli(dirs, "matrix", "--experiment", "good")
    assert "skipping" not in clean.stderr


@pytest.mark.unit
def test_a_record_file_without_required_columns_is_skipped(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    pd.DataFrame({"x": [1, 2]}).to_parquet(runs / "alien.parquet")
    assert load_records(tmp_path).empty
    good, bad = check_store(tmp_path)
    assert good == 0 and bad[0][0].name == "alien.parquet" and "missing column" in bad[0][1]


def test_an_unwritable_results_folder_fails_before_training(dirs):
    """#14.5: a file where the results folder should be was found at the first write, after training."""
    dirs["results"].parent.mkdir(parents=True, exist_ok=True)
    dirs["results"].write_text("not a folder")
    started = time.perf_counter()
    out = cli(dirs, "run", *SMALL)
    assert out.returncode == 2, out.stderr
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and "cannot write results to" in lines[0] and "paths.results_dir" in lines[0]
    assert "Traceback" not in out.stderr
    assert not (dirs["cache"] / "tokenized").exists()  # nothing was read or trained
    assert time.perf_counter() - started < 120


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs needs root")
def test_a_read_only_results_mount_fails_before_training(dirs, tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        out = cli({**dirs, "results": mnt / "results"}, "run", *SMALL, cwd=tmp_path)
        assert out.returncode == 2 and "Read-only file system" in error_lines(out.stderr)[0]
    finally:
        subprocess.run(["umount", str(mnt)])


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a size-limited tmpfs needs root")
def test_disk_full_during_a_record_write_leaves_no_partial_file(tmp_path):
    """A record write that runs out of space: one line, no half-written or temp file in the store."""
    from xlexp.results.store import Record, write_records

    mnt = tmp_path / "full"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        (mnt / "filler").write_bytes(b"\0" * 60_000)
        rec = Record(
            "e",
            "r",
            "m",
            "t",
            "zero_shot",
            "eng",
            "ind",
            "id",
            "test",
            "accuracy",
            0.5,
            10,
            1,
            "last",
            "h",
            "g",
            "2026",
        )
        with pytest.raises(XlexpError, match=r"could not write .*No space left on device.*nothing of this unit"):
            write_records([rec] * 2000, mnt, "big")
        assert list((mnt / "runs").iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)])


@pytest.mark.unit
def test_an_injected_write_error_leaves_no_temp_file(tmp_path, monkeypatch):
    from xlexp.results.store import Record, write_records

    def boom(self, path, **kw):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    rec = Record(
        "e", "r", "m", "t", "zero_shot", "eng", "ind", "id", "test", "accuracy", 0.5, 10, 1, "last", "h", "g", "t"
    )
    with pytest.raises(XlexpError, match="No space left on device"):
        write_records([rec], tmp_path, "x")
    assert list((tmp_path / "runs").iterdir()) == []


# -- caches ------------------------------------------------------------------------------------
def test_a_corrupt_tokenized_cache_file_is_rebuilt(dirs, caplog):
    """#14.4: a truncated .npz gave BadZipFile without a file name on every re-run."""
    from xlexp import run_experiment

    run_experiment(compose_cfg(dirs, *SMALL, "name=a"))
    files = sorted((dirs["cache"] / "tokenized").rglob("*.npz"))
    assert files
    for f in files:
        f.write_bytes(f.read_bytes()[:100])
    with caplog.at_level("WARNING"):
        run_experiment(compose_cfg(dirs, *SMALL, "name=b"))
    rebuilt = [r.getMessage() for r in caplog.records if "is unreadable" in r.getMessage()]
    assert len(rebuilt) == len(files) and str(files[0]) in " ".join(rebuilt)
    df = load_records(dirs["results"])
    a, b = (
        df[df.experiment == n].sort_values(["target", "split", "metric", "selection"])["value"].to_numpy() for n in "ab"
    )
    assert np.array_equal(a, b)  # the rebuilt cache gives the same numbers
    assert all(np.load(f) is not None for f in files)


def test_orphan_checkpoints_of_a_killed_run_are_removed(dirs):
    """#14.10: kill -9 left cache/checkpoints/<run>/step-*.pt forever. #28.2: liveness is the run's
    held lock (checkpoints/<run>.lock), not a (host, pid) pair."""
    from xlexp import run_experiment
    from xlexp.results.liveness import HeldLock

    root = dirs["cache"] / "checkpoints"
    dead = root / "20260101T000000-deadbeef-0000"
    dead.mkdir(parents=True)
    (dead / "step-0000001.pt").write_bytes(b"x" * 1000)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from xlexp.results.liveness import HeldLock; HeldLock({str(dead) + '.lock'!r}).acquire()",
        ]
    )
    proc.wait()  # its lock file stays, free: the owner is gone
    (dead / ".owner").write_text(f"{os.uname().nodename} {proc.pid}\n")
    alive = root / "20260101T000000-alive000-0000"
    alive.mkdir()
    (alive / ".owner").write_text("some-other-node 1\n")  # whatever it says: the held lock decides
    held = HeldLock(str(alive) + ".lock")
    assert held.acquire()
    legacy = root / "20260101T000000-legacy00-0000"  # an older version's folder, no lock file
    legacy.mkdir()
    (legacy / ".owner").write_text(f"{os.uname().nodename} 1\n")
    young_legacy = root / "20260101T000000-young000-0000"
    young_legacy.mkdir()
    os.utime(legacy, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    try:
        run_experiment(compose_cfg(dirs, *SMALL))
    finally:
        held.release(remove=False)
    assert not dead.exists() and not Path(str(dead) + ".lock").exists() and not legacy.exists()
    assert alive.exists() and young_legacy.exists()
    assert sorted(p.name for p in root.iterdir()) == sorted([alive.name, alive.name + ".lock", young_legacy.name])


# -- runs --------------------------------------------------------------------------------------
def test_a_nan_loss_is_one_line_without_traceback(dirs):
    """#14.9: a diverging run ended with a 20-line traceback."""
    out = cli(dirs, "run", *SMALL, "optimizer=sgd", "optimizer.lr=1e30", "optimizer.grad_clip=null")
    assert out.returncode == 2, out.stderr[-2000:]
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and "non-finite training loss" in lines[0] and "optimizer.lr" in lines[0]
    assert "Traceback" not in out.stderr
    assert n_records(dirs) == 0


def test_a_hostile_name_keeps_the_hydra_folder_inside_outputs(dirs):
    """#14.6: name=../../escape put Hydra's run folder outside the project."""
    work = dirs["results"].parent / "deep" / "work"
    work.mkdir(parents=True)
    out = cli(dirs, "run", *SMALL, "name=../../escape", cwd=work)
    assert out.returncode == 0, out.stderr
    assert not (work.parent.parent / "escape").exists() and not (work.parent / "escape").exists()
    made = [p for p in (work / "outputs").iterdir()]
    assert [p.name for p in made] == ["_.._escape"]


def test_two_concurrent_runs_with_one_name_get_two_log_folders(dirs):
    """#14.6: two runs with one name started in the same second shared one folder and one run.log."""
    env = {
        **os.environ,
        "XLEXP_DATA_DIR": str(dirs["data"]),
        "XLEXP_RESULTS_DIR": str(dirs["results"]),
        "XLEXP_CACHE_DIR": str(dirs["cache"]),
    }
    cwd = dirs["results"].parent
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "xlexp.cli.main", "run", *SMALL, "name=same"],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()
    folders = list((cwd / "outputs" / "same").iterdir())
    assert len(folders) == 2
    for f in folders:
        log = (f / "run.log").read_text() if (f / "run.log").exists() else next(f.glob("*.log")).read_text()
        assert log.count("plan: zero_shot") == 1


def test_the_same_seed_gives_identical_records_with_two_cache_folders(dirs, tmp_path):
    """#14.11 / acceptance: the tiny model's vocabulary, the token cache and the trimmed embedding all
    rebuild identically, so a cold and a warm cache (and another machine's) give the same numbers."""
    from xlexp import run_experiment

    values = []
    for i, cache in enumerate((tmp_path / "cache_a", tmp_path / "cache_b", tmp_path / "cache_a")):  # cold, cold, warm
        run_experiment(compose_cfg({**dirs, "cache": cache}, *SMALL, "model.trim_vocab=true", f"name=c{i}"))
        df = load_records(dirs["results"])
        df = df[df.experiment == f"c{i}"].sort_values(["target", "split", "metric", "selection", "step"])
        values.append(df[["target", "split", "metric", "selection", "step", "value"]].reset_index(drop=True))
    assert values[0].equals(values[1]) and values[0].equals(values[2])


def test_sigterm_during_evaluation_leaves_no_partial_unit_and_no_checkpoints(dirs):
    """SIGTERM (a cluster's time limit) while the run evaluates: one line, exit 143, the finished unit's
    records kept, the interrupted unit's none, and its checkpoint folder removed on the way out."""
    import signal

    env = {
        **os.environ,
        "XLEXP_DATA_DIR": str(dirs["data"]),
        "XLEXP_RESULTS_DIR": str(dirs["results"]),
        "XLEXP_CACHE_DIR": str(dirs["cache"]),
    }
    env.pop("XLEXP_DEBUG", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xlexp.cli.main",
            "run",
            *TINY,
            "trainer.epochs=30",
            "langpair.sources=[eng,ind]",
            "langpair.targets=[eng,ind,jav]",
            "regime.dev_targets=all",
        ],
        cwd=dirs["results"].parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen, first_done = [], False
    for line in proc.stdout:  # Hydra logs to the console: wait for the second unit's first evaluation
        seen.append(line)
        first_done = first_done or "unit 1/2" in line
        if first_done and "source dev" in line:
            proc.send_signal(signal.SIGTERM)
            break
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 143, "".join(seen)[-2000:] + out[-2000:]
    assert "xlexp: stopped by signal 15 (SIGTERM)" in out and "Traceback" not in out
    df = load_records(dirs["results"])
    assert set(df.source) == {"eng"}  # the finished unit only
    assert not (dirs["cache"] / "checkpoints").exists() or not list((dirs["cache"] / "checkpoints").iterdir())
