"""Round 2 (issue #28), item 7: settings and weight files that gave tracebacks."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY, write_nusax_like
from tests.faults.test_fault_store import cli, error_lines, n_records
from xlexp.models.weights import BadWeightsFile, load_weights

SMALL = [*TINY, "trainer.epochs=1", "langpair.sources=[eng]", "langpair.targets=[eng,ind]", "regime.dev_targets=none"]


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    data = write_nusax_like(tmp_path / "data", sizes=(30, 12, 18))
    return {"data": data, "results": tmp_path / "results", "cache": tmp_path / "cache"}


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["optimizer.lr=nan"], "optimizer.lr must be a positive finite number"),
        (["optimizer.lr=inf"], "optimizer.lr must be a positive finite number"),
        (["optimizer.weight_decay=nan"], "optimizer.weight_decay must be a finite number >= 0"),
        (["optimizer.grad_clip=-1"], "optimizer.grad_clip must be a finite number >= 0"),
        (["optimizer.betas=[0.9,1.5]"], "optimizer.betas must be two numbers in [0, 1)"),
        (["regime=few_shot", "regime.k=4"], "regime.k must be a list, e.g. regime.k=[4]"),
        (["regime=few_shot", "regime.k=[a]"], "regime.k must be a non-empty list of integers >= 0"),
        (["model.checkpoint=EVIL"], "xlexp loads weights only"),
    ],
)
def test_fault_bad_settings_are_one_line_before_work(dirs, tmp_path, overrides, needle):
    """Before: lr=nan gave a ValueError traceback, regime.k=4 a TypeError traceback, a malicious
    pickle as model.checkpoint torch's hint to retry with weights_only=False."""
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(_Evil()))
    overrides = [o.replace("EVIL", str(evil)) for o in overrides]
    out = cli(dirs, "run", *SMALL, *overrides)
    assert out.returncode == 2, out.stderr[-3000:]
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and needle in lines[0], out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "weights_only=False" not in out.stderr and n_records(dirs) == 0
    assert not (tmp_path / "PWNED").exists()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.unit
def test_fault_a_truncated_cached_few_shot_source_model_is_trained_again(tmp_path, caplog):
    """Before: a truncated cache/source_models/*.pt gave a traceback on every re-run until deleted."""
    from xlexp.experiment.regimes.few_shot import _read_cached

    path = tmp_path / "source_models" / "m.pt"
    path.parent.mkdir()
    torch.save({"w": torch.zeros(1000)}, path)
    assert set(_read_cached(path)) == {"w"}
    path.write_bytes(path.read_bytes()[:300])
    with caplog.at_level(logging.WARNING):
        assert _read_cached(path) is None
    assert not path.exists()
    assert "cannot be read as a torch state dict" in caplog.text and "trained again" in caplog.text


@pytest.mark.unit
@pytest.mark.parametrize("content, needle", [(b"", "cannot be read"), (b"not a torch file at all", "cannot be read")])
def test_fault_unreadable_weights_are_one_line(tmp_path, content, needle):
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(BadWeightsFile, match=needle):
        load_weights(path, "model.checkpoint")
    torch.save([1, 2], path)
    with pytest.raises(BadWeightsFile, match="not a state dict of tensors"):
        load_weights(path, "model.checkpoint")
