"""End to end with the tiny random model on data the tests build."""

import os
import subprocess
import sys

import pytest

from conftest import TINY, compose_cfg
from xlexp import XlexpError, load_records, run_experiment
from xlexp.results.query import pivot

pytestmark = pytest.mark.integration

THREE = ["langpair.sources=[eng,ind,jav]", "langpair.targets=[eng,ind,jav]"]


def test_all_to_all_matrix_is_complete_and_deterministic(dirs):
    cfg = compose_cfg(dirs, *TINY, *THREE, "name=det")
    first = run_experiment(cfg)
    df1 = load_records(dirs["results"])
    test = df1[df1["split"] == "test"]
    # sources x targets x (accuracy, macro_f1) x (source_dev, target_dev, last)
    assert len(test) == 3 * 3 * 2 * 3
    m = pivot(df1, "det", "accuracy")
    assert m.shape == (3, 3) and not m.mean.isna().any().any()
    # same seed, same data: identical numbers
    second = run_experiment(compose_cfg(dirs, *TINY, *THREE, "name=det", "rerun=true"))  # else resumed: all skipped
    df = load_records(dirs["results"])
    runs = sorted(df["run_id"].unique())
    assert len(runs) == 2
    a, b = (df[df["run_id"] == r].sort_values(["source", "target", "metric"])["value"].tolist() for r in runs)
    assert a == b and first == second
    # a different seed changes them
    run_experiment(compose_cfg(dirs, *TINY, *THREE, "name=det2", "seed=7"))
    c = (
        load_records(dirs["results"])
        .query("experiment == 'det2'")
        .sort_values(["source", "target", "metric"])["value"]
        .tolist()
    )
    assert c != a


def test_records_carry_the_long_format_fields(dirs):
    run_experiment(compose_cfg(dirs, *TINY, "langpair.sources=[eng]", "langpair.targets=[ind,jav]", "name=fields"))
    df = load_records(dirs["results"])
    df = df[df["split"] == "test"]
    row = df[df["selection"] == "source_dev"].iloc[0]
    assert row["model"] == "tiny_random" and row["task"] == "nusax_senti" and row["regime"] == "zero_shot"
    assert row["selection"] == "source_dev" and row["split"] == "test" and row["n_examples"] == 40
    assert set(df["target_tag"]) == {"id", "jv"}
    assert len(row["config_hash"]) == 12 and row["timestamp"]


def test_model_learns_in_language(dirs):
    cfg = compose_cfg(dirs, *TINY, "trainer.epochs=6", "langpair.sources=[eng]", "langpair.targets=[eng]", "name=learn")
    run_experiment(cfg)
    df = load_records(dirs["results"])
    acc = df[(df["metric"] == "accuracy") & (df["split"] == "test") & (df["selection"] == "source_dev")]["value"].item()
    assert acc > 0.6  # 3 balanced classes: chance is 0.33


def test_full_regime_trains_each_target_on_itself(dirs):
    run_experiment(compose_cfg(dirs, *TINY, "regime=full", "langpair.targets=[ind,jav]", "name=full"))
    df = load_records(dirs["results"])
    df = df[(df["split"] == "test") & (df["selection"] == "source_dev")]
    assert sorted(zip(df["source"], df["target"])) == sorted([("ind", "ind"), ("jav", "jav")] * 2)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["langpair.sources=[eng]", "langpair.targets=[ind,klingon]"],
            r"unknown target language 'klingon'.*Valid languages \(12\): ace",
        ),
        (["langpair.sources=[eng]", "langpair.targets=[]"], r"langpair.targets is empty"),
        (
            ["langpair.sources=[bug]", "langpair.targets=[ind]"],
            r"language 'bug' .* has no 'train' split \(source 'bug' trains on it\)",
        ),
        (
            ["langpair.sources=[eng]", "langpair.targets=[ind]", "optimizer.lr=-1"],
            r"optimizer.lr must be a positive (finite )?number",
        ),
    ],
)
def test_bad_input_one_clear_error_and_no_records(dirs, overrides, message):
    with pytest.raises(XlexpError, match=message):
        run_experiment(compose_cfg(dirs, *TINY, *overrides))
    assert load_records(dirs["results"]).empty


def _cli(dirs, *args):
    env = {
        **os.environ,
        "XLEXP_DATA_DIR": str(dirs["data"]),
        "XLEXP_RESULTS_DIR": str(dirs["results"]),
        "XLEXP_CACHE_DIR": str(dirs["cache"]),
    }
    return subprocess.run(
        [sys.executable, "-m", "xlexp.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=dirs["results"].parent,
        timeout=600,
    )


def test_cli_run_then_matrix(dirs):
    out = _cli(dirs, "run", *TINY, "langpair.sources=[eng]", "langpair.targets=[eng,ind,jav]", "name=cli")
    assert out.returncode == 0, out.stderr
    shown = _cli(dirs, "matrix", "--metric", "macro_f1")
    assert shown.returncode == 0, shown.stderr
    assert "cli: macro_f1" in shown.stdout and "jav (Javanese)" in shown.stdout
    assert (dirs["results"] / "matrices" / "cli.macro_f1.png").stat().st_size > 1000
    assert (dirs["results"] / "matrices" / "cli.macro_f1.csv").read_text().startswith("source,eng,ind,jav")


def test_cli_unknown_group_option_fails_cleanly(dirs):
    out = _cli(dirs, "run", "model=no_such_model")
    assert out.returncode != 0
    assert "no_such_model" in out.stderr and "tiny_random" in out.stderr  # Hydra lists the available options
    out = _cli(dirs, "run", *TINY, "langpair.sources=[eng]", "langpair.targets=[xx]")
    assert out.returncode == 2 and "xlexp: error: unknown target language 'xx'" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (dirs["results"] / "runs").exists() or not list((dirs["results"] / "runs").iterdir())


def test_matrix_without_records_says_what_to_do(dirs):
    out = _cli(dirs, "matrix")
    assert out.returncode == 2 and "run `xlexp run" in out.stderr
