"""Completion beyond `xlexp run` (issue #33): `xlexp matrix --experiment <TAB>` lists the store's
experiments (it listed files), `xlexp matrix --<TAB>` the verb's options, `--task`/`--model` the names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli_surface import COMPLETE_LINE
from xlexp.results.store import Record, write_records

pytestmark = pytest.mark.integration

XLEXP = Path(sys.executable).parent / "xlexp"
SCRIPT = (
    r"""
eval "$(xlexp completion bash)"
"""
    + COMPLETE_LINE
    + r"""
complete_line "xlexp matrix --experiment "
complete_line "xlexp status --experiment quick"
complete_line "xlexp matrix --ga"
complete_line "xlexp predict --task nus"
complete_line "xlexp report --model tiny_random_d"
"""
)


def _record(experiment: str) -> Record:
    return Record(
        experiment=experiment,
        run_id="r",
        model="tiny_random",
        task="nusax_senti",
        regime="zero_shot",
        source="eng",
        target="ind",
        target_tag="id",
        split="test",
        metric="accuracy",
        value=0.5,
        n_examples=4,
        seed=1,
        selection="source_dev",
        config_hash="0" * 12,
        git_commit="test",
        timestamp="2026-01-01T00:00:00+00:00",
    )


def test_completion_of_options_experiments_tasks_and_models(tmp_path):
    bash = shutil.which("bash")
    if bash is None or not XLEXP.exists():
        pytest.skip("no bash or no xlexp script")
    write_records([_record("quickstart")], tmp_path / "results", "a")
    write_records([_record("my-sib200"), _record("quick2")], tmp_path / "results", "b")
    env = {
        "HOME": str(tmp_path),
        "PATH": f"{XLEXP.parent}:/usr/bin:/bin",
        **{k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ},
    }
    out = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    experiments, quick, gap, task, model = out.stdout.splitlines()[-5:]
    assert experiments.split() == ["my-sib200", "quick2", "quickstart"]
    assert quick.split() == ["quick2", "quickstart"]
    assert gap == "--gap"
    assert task == "nusax_senti"
    assert model == "tiny_random_decoder"
