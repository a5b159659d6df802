"""Round 2 (issue #28): the fresh hostile pass. Each fault here fell short when tried (docs/faults.md,
"Hostile pass, round 2", lists every attack tried, those that held too)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from xlexp import XlexpError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["x\n", "a" * 5000, "../../x", ".hidden", "-rf"])
def test_fault_a_study_name_with_a_newline_or_5000_characters_is_refused(name):
    """Before: '^...$' let 'x\\n' through (and any length) into pending folders and lock files."""
    from xlexp.sweep.space import check_study_name

    with pytest.raises(XlexpError, match="study name"):
        check_study_name(name)


def test_fault_a_python_tag_in_a_sweep_file_is_one_line(tmp_path):
    from xlexp.sweep.space import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text('base: []\nparams: {optimizer.lr: !!python/object/apply:os.system ["touch PWNED"]}\n')
    with pytest.raises(XlexpError) as e:
        load_sweep(str(path))
    assert "\n" not in str(e.value) and "line 2" in str(e.value) and "no !!python tags" in str(e.value)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--n-trials", "-5"], "--n-trials must be a positive total"),
        (["--heartbeat", "-3"], "--heartbeat must be at least 1 second"),
        (["--workers", "100000"], "at most"),
    ],
)
def test_fault_sweep_numbers_that_make_no_sense_are_refused(tmp_path, args, needle):
    """Before: --n-trials -5 ran nothing silently, --heartbeat -3 reached the heartbeat thread,
    --workers 100000 would have forked 100000 processes."""
    from xlexp.cli.sweep import main

    with pytest.raises(XlexpError, match=needle):
        main([str(tmp_path / "never-read.yaml"), *args])


def test_fault_a_yaml_alias_bomb_in_a_task_file_is_refused_at_once(tmp_path):
    """Before (with the _target_ scan): 10**9 values walked; Hydra would expand them too."""
    from xlexp.config.names import check_task_file

    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"{c}: &{c} [" + ",".join([f"*{p}"] * 10) + "]" for p, c in zip("abcdefgh", "bcdefghi")]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nname: bomb\n")
    with pytest.raises(XlexpError, match="aliases expand to 1,234,567,901 values"):
        check_task_file(path)  # counted without expanding: the old _target_ scan walked every value


@pytest.mark.parametrize("pid", ["abc", -1, 0, None])
def test_fault_a_ledger_pid_that_is_no_pid_is_a_dead_unit_not_a_traceback(tmp_path, pid):
    """Before: pid "abc" -> ValueError traceback in `xlexp status`; pid -1 (os.kill(-1, 0) succeeds)
    -> 'running' forever."""
    from xlexp.cli.status import status_lines
    from xlexp.results import units as ledger

    folder = ledger.ledger_dir(tmp_path, "e")
    folder.mkdir(parents=True)
    (folder / "k1.json").write_text(
        json.dumps(
            {
                "experiment": "e",
                "unit_key": "k1",
                "source": "eng",
                "seed": 1,
                "state": "running",
                "host": ledger.this_host(),
                "pid": pid,
            }
        )
    )
    (folder / "k2.json").write_text("{not json")
    lines = status_lines(str(tmp_path), "e")
    assert "0 running, 1 failed" in lines[0], lines


def test_fault_repair_with_a_file_where_the_quarantine_belongs_is_one_line(tmp_path):
    from xlexp.results.store import runs_dir
    from xlexp.results.store_check import check_store

    runs_dir(tmp_path).mkdir(parents=True)
    (runs_dir(tmp_path) / "bad.parquet").write_bytes(b"bad")
    (tmp_path / "quarantine").write_text("a file")
    with pytest.raises(XlexpError, match="make .*quarantine a writable folder"):
        check_store(tmp_path, repair=True)
    assert (runs_dir(tmp_path) / "bad.parquet").exists()


def test_fault_repair_removes_temp_files_by_age_not_by_pid(tmp_path):
    """Before: a temp file whose pid did not exist *here* was removed: on a shared results folder,
    another host's (or PID namespace's) live writer lost its unit."""
    from xlexp.results.store import runs_dir
    from xlexp.results.store_check import check_store

    runs = runs_dir(tmp_path)
    runs.mkdir(parents=True)
    fresh, old = runs / ".r-0000.999999.tmp", runs / ".r-0001.999998.tmp"
    fresh.write_bytes(b"being written elsewhere")
    old.write_bytes(b"left by a dead writer")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    check_store(tmp_path, repair=True)
    assert fresh.exists() and not old.exists()


def test_fault_a_folder_where_a_unit_claim_belongs_is_one_line(tmp_path):
    from xlexp.experiment.resume import Resume
    from xlexp.results.units import claim_path

    claim_path(tmp_path, "k1").mkdir(parents=True)
    settings = SimpleNamespace(paths=SimpleNamespace(results_dir=tmp_path))
    plan = SimpleNamespace(units=[SimpleNamespace(source="eng", seed=1)])
    resume = Resume(settings, plan, ["k1"], keep_ledger=True)
    with pytest.raises(XlexpError, match="cannot claim unit 1 at .*k1.lock"):
        resume.claim(0)


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"name": "../../../../outside/MODELPWN"}, "model.name"),
        ({"name": "tiny", "checkpoint": "/dev/zero"}, "is not a file"),
        ({"name": "tiny", "checkpoint": "/nonexistent/x.pt"}, "is not a file"),
    ],
)
def test_fault_model_names_and_checkpoints_are_checked_with_the_settings(raw, needle):
    """Before: a user model YAML's name '../../x' named cached source-model files outside the cache;
    a missing model.checkpoint was found after the data was read and tokenized."""
    from xlexp.config.schema import EncoderSettings

    with pytest.raises(XlexpError, match=needle):
        EncoderSettings(**raw)


@pytest.mark.parametrize(
    "content, needle",
    [
        ("[1, 2]", "got a list"),
        ('{"eng": [1]}', "'eng' must map K"),
        ('{"eng": {"1": [5]}}', "must be a list of lists"),
        ("not json", "Expecting value"),
    ],
)
def test_fault_a_bad_shots_file_is_found_before_training(tmp_path, content, needle):
    """Before: found after the source model trained (a list: AttributeError traceback)."""
    from xlexp.experiment.regimes.few_shot import FewShotSettings

    path = tmp_path / "shots.json"
    path.write_text(content)
    with pytest.raises(XlexpError, match=needle):
        FewShotSettings(name="few_shot", shots_file=str(path))


def test_fault_a_semicolon_matrix_csv_says_commas(tmp_path):
    from xlexp.predict.predictor import matrix_from_csv

    path = tmp_path / "m.csv"
    path.write_text("source;eng;ind\neng;0.9;0.7\nind;0.6;0.8\n")
    with pytest.raises(XlexpError, match="one column .*separated by commas"):
        matrix_from_csv(path)


def test_fault_two_writers_with_one_pid_never_share_a_temp_file(tmp_path, monkeypatch):
    """Two containers' runs are often both pid 1: with '.<name>.<pid>.tmp' two writers of one
    tokenized-cache file (a shared cache) wrote into one temp file."""
    from xlexp.config.names import temp_path
    from xlexp.data import tokenized

    monkeypatch.setattr("os.getpid", lambda: 1)
    final = tmp_path / "eng.train.abc.npz"
    a, b = temp_path(final), temp_path(final)
    assert a != b and a.parent == b.parent == tmp_path and a.name.startswith(".eng.train.abc.npz.1-")
    seen = []
    real_replace = tokenized.os.replace
    monkeypatch.setattr(tokenized.os, "replace", lambda src, dst: (seen.append(Path(src).name), real_replace(src, dst)))
    import numpy as np

    tok = tokenized.TokenizedSplit(input_ids=[np.array([1, 2], np.int32)], labels=np.array([0]))
    tokenized._save_npz_atomic(final, tok)
    tokenized._save_npz_atomic(final, tok)
    assert len(set(seen)) == 2 and final.exists() and not list(tmp_path.glob(".*.tmp"))
