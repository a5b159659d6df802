"""The public API in ``xlexp/__init__`` (docs/api.md): the names exist, resolve to the objects the stage
packages define, cost nothing until used, and ``xlexp.run`` gives the records a view would show."""

from __future__ import annotations

import subprocess
import sys

import pytest

import xlexp
from tests.conftest import TINY


@pytest.mark.unit
def test_import_xlexp_loads_no_heavy_library():
    code = (
        "import sys, xlexp; heavy = [m for m in ('torch', 'pandas', 'omegaconf', 'hydra', 'transformers') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.unit
def test_every_public_name_resolves_to_the_object_its_stage_defines():
    from xlexp.config.compose import compose_config
    from xlexp.errors import XlexpError
    from xlexp.experiment.runner import run_experiment
    from xlexp.results.query import Matrix, pivot
    from xlexp.results.store import load_predictions, load_records
    from xlexp.tasks.spec import TaskSpec, load_task

    expected = {
        "XlexpError": XlexpError,
        "compose": compose_config,
        "run_experiment": run_experiment,
        "load_records": load_records,
        "load_predictions": load_predictions,
        "Matrix": Matrix,
        "matrix": pivot,
        "load_task": load_task,
        "TaskSpec": TaskSpec,
    }
    for name, obj in expected.items():
        assert getattr(xlexp, name) is obj, name
    assert set(expected) | {"run", "RunHooks", "__version__"} == set(xlexp.__all__)
    assert set(xlexp.__all__) <= set(dir(xlexp))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        xlexp.nope  # noqa: B018


@pytest.mark.unit
def test_load_task_and_compose_work_through_the_public_names():
    spec = xlexp.load_task("nusax_senti")
    assert isinstance(spec, xlexp.TaskSpec) and spec.name == "nusax_senti"
    cfg = xlexp.compose(["model=tiny_random", "trainer.epochs=1"])
    assert cfg.model.name == "tiny_random" and cfg.trainer.epochs == 1
    with pytest.raises(xlexp.XlexpError, match="unknown task"):
        xlexp.load_task("no_such_task")


@pytest.mark.integration
def test_run_returns_the_experiments_records_and_matrix_reads_them(dirs):
    base = [
        f"paths.data_dir={dirs['data']}",
        f"paths.results_dir={dirs['results']}",
        f"paths.cache_dir={dirs['cache']}",
    ]
    overrides = [*base, *TINY, "trainer.epochs=1", "langpair.sources=[eng]", "langpair.targets=[eng,ind]", "name=api"]
    records = xlexp.run(overrides)
    assert set(records["experiment"]) == {"api"}
    assert {"eng", "ind"} == set(records[records["split"] == "test"]["target"])
    assert len(records) == len(xlexp.load_records(dirs["results"]))  # one run: the store holds these only
    m = xlexp.matrix(records, metric="accuracy")
    assert isinstance(m, xlexp.Matrix) and m.shape == (1, 2)
    again = xlexp.run(overrides)  # every unit complete in the store: resumed, the same records
    assert sorted(again["run_id"]) == sorted(records["run_id"])
