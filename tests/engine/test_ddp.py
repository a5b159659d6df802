"""Multi-process training with torchrun (DDP, gloo on CPU): 2 processes give the records of 1."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sweeps_helpers import env_for
from xlexp.results.store import load_records, predictions_dir, runs_dir

pytestmark = pytest.mark.integration

ARGS = [
    "model=tiny_random",
    "optimizer.lr=1e-3",
    "trainer.epochs=2",
    "data.batch_size=7",
    "data.max_train_examples=57",
    "trainer.progress=false",
    "model.dropout=0.0",  # dropout masks differ by batch shape; without it the sums are the same
    "trainer.num_threads=1",
    "langpair.sources=[eng]",
    "langpair.targets=[eng,ind]",
    "name=ddp",
]
KEY = ["source", "target", "split", "metric", "selection", "step"]


def _run(dirs, results, out_dir, launcher: list[str]) -> subprocess.CompletedProcess:
    env = {**env_for(dirs), "XLEXP_RESULTS_DIR": str(results)}
    return subprocess.run(
        [*launcher, "-m", "xlexp.cli.run", *ARGS, f"hydra.run.dir={out_dir}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=dirs["results"].parent,
        timeout=600,
    )


def test_two_gloo_processes_give_the_records_of_one(dirs, tmp_path):
    one = _run(dirs, tmp_path / "r1", tmp_path / "out1", [sys.executable])
    assert one.returncode == 0, one.stderr[-3000:]
    # 57 examples in batches of 7 over 2 ranks: uneven slices (4 + 3), and a last batch of one example
    # (rank 1 gets nothing and still joins the gradient all-reduce)
    two = _run(
        dirs,
        tmp_path / "r2",
        tmp_path / "out2",
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    )
    assert two.returncode == 0, two.stderr[-3000:]
    log = (tmp_path / "out2" / "run.log").read_text()
    assert "torchrun: rank 0 of 2, backend gloo" in log  # it really ran as two ranks
    # only rank 0 writes: one records file and one predictions file for the one unit, one log
    assert len(list(runs_dir(tmp_path / "r2").glob("*.parquet"))) == 1
    assert len(list(predictions_dir(tmp_path / "r2").glob("*.parquet"))) == 1
    assert len(list((tmp_path / "out2").rglob("*.log"))) == 1 and log.count("plan: zero_shot") == 1
    a = load_records(tmp_path / "r1").sort_values(KEY).reset_index(drop=True)
    b = load_records(tmp_path / "r2").sort_values(KEY).reset_index(drop=True)
    assert len(a) == len(b) > 0 and (a[KEY] == b[KEY]).all().all()
    np.testing.assert_allclose(b["value"].to_numpy(float), a["value"].to_numpy(float), atol=1e-6)
