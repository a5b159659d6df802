"""The import contracts of ``[tool.importlinter]`` (pyproject.toml), which ``make test`` checks with
``lint-imports``: the contracts themselves are tested here on a throwaway package laid out like
xlexp, so a contract that could never fail (a typo in a layer name, a wrong container) is caught.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e '.[dev]')")


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _toy(tmp: Path, files: dict[str, str]) -> Path:
    """Package ``toyx`` with one subpackage per layer of xlexp's contract (errors: a module), the
    given extra modules, and xlexp's contracts rewritten for it."""
    layers = [
        name.strip()
        for layer in next(c for c in _config()["contracts"] if c["type"] == "layers")["layers"]
        for name in layer.split("|")
    ]  # "sweep | fill": independent siblings, one package each
    pkg = tmp / "toyx"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for layer in layers:
        if layer == "errors":
            (pkg / "errors.py").write_text("class XlexpError(Exception):\n    pass\n")
        else:
            (pkg / layer).mkdir()
            (pkg / layer / "__init__.py").write_text("from toyx.errors import XlexpError\n")
    for name, text in files.items():
        (pkg / name).write_text(text)
    (tmp / "contracts.toml").write_text(_contracts_text().replace('"xlexp"', '"toyx"').replace('"xlexp.', '"toyx.'))
    return tmp


def _contracts_text() -> str:
    """The [tool.importlinter] tables of pyproject.toml, verbatim."""
    out, inside = [], False
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("["):
            inside = line.lstrip("[").startswith("tool.importlinter")
        if inside:
            out.append(line)
    return "\n".join(out) + "\n"


def _lint(where: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT, "contracts.toml", "--no-cache"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.unit
def test_contracts_cover_every_stage_in_order():
    contracts = {c["id"]: c for c in _config()["contracts"]}
    assert contracts["layers"]["layers"] == [
        "cli",
        "reproduce",
        "sweep | fill",
        "experiment",
        "tracking",
        "views",
        "predict",
        "engine",
        "models",
        "data",
        "tasks",
        "results",
        "config",
        "errors",
    ]
    assert contracts["layers"]["containers"] == ["xlexp"] and contracts["layers"]["exhaustive"] is True
    assert contracts["acyclic"]["ancestors"] == ["xlexp"]
    assert contracts["typed-settings"]["source_modules"] == ["xlexp.engine", "xlexp.models", "xlexp.data"]
    assert contracts["typed-settings"]["forbidden_modules"] == ["omegaconf", "hydra"]
    assert contracts["experiment-no-predict"]["source_modules"] == ["xlexp.experiment"]
    assert contracts["experiment-no-predict"]["forbidden_modules"] == ["xlexp.predict"]


def test_a_package_that_keeps_the_rules_passes(tmp_path):
    toy = _toy(
        tmp_path,
        {
            "cli/main.py": "import toyx.sweep.driver\n",
            "sweep/driver.py": "from toyx.sweep import worker\nfrom toyx.errors import XlexpError\n",
            "sweep/worker.py": "def run():\n    from toyx.experiment import runner\n",
            "experiment/runner.py": "import toyx.engine.loop\nimport toyx.config.compose\n",
            "engine/loop.py": "",
            "config/compose.py": "",
        },
    )
    result = _lint(toy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_upward_imports_lazy_ones_too_and_cycles_inside_a_stage_fail(tmp_path):
    toy = _toy(
        tmp_path,
        {
            "engine/loop.py": "def show():\n    from toyx.views import console  # lazy, still upward\n",
            "views/console.py": "",
            "errors.py": "import toyx.config\n",  # errors is the bottom: imports no stage
            "sweep/driver.py": "import toyx.sweep.launch\n",
            "sweep/launch.py": "def main():\n    from toyx.sweep import driver\n",  # the old sweep cycle
        },
    )
    result = _lint(toy)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "toyx.engine is not allowed to import toyx.views" in out and "toyx.engine.loop -> toyx.views.console" in out
    assert "toyx.errors is not allowed to import toyx.config" in out
    assert "No cycles are allowed in toyx.sweep" in out


def test_a_new_top_level_module_outside_the_layers_fails(tmp_path):
    toy = _toy(tmp_path, {"helpers.py": "x = 1\n"})
    result = _lint(toy)
    assert result.returncode == 1 and "toyx.helpers" in result.stdout, result.stdout + result.stderr


def test_the_numeric_stages_never_see_a_hydra_config(tmp_path):
    """engine, models and data take typed settings: importing omegaconf or hydra there, even
    through another stage, breaks the typed-settings contract."""
    toy = _toy(
        tmp_path,
        {
            "models/encoders.py": "from omegaconf import DictConfig\n",
            "data/tokenized.py": "from toyx.tasks import spec\n",
            "tasks/spec.py": "import hydra\n",
        },
    )
    result = _lint(toy)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "toyx.models is not allowed to import omegaconf" in out
    assert "toyx.data is not allowed to import hydra" in out and "toyx.tasks.spec -> hydra" in out


def test_active_filling_is_the_stage_above_experiment_and_predict(tmp_path):
    """The fill stage may import experiment and predict; experiment may not import predict (even
    lazily), nor the fill stage; fill and sweep are independent siblings."""
    (tmp_path / "ok").mkdir()
    (tmp_path / "bad").mkdir()
    ok = _toy(
        tmp_path / "ok",
        {
            "fill/budget.py": "import toyx.experiment.runner\ndef run():\n    import toyx.predict.x\n",
            "experiment/runner.py": "",
            "predict/x.py": "",
        },
    )
    result = _lint(ok)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = _toy(
        tmp_path / "bad",
        {
            "experiment/runner.py": "def fill():\n    from toyx.predict import x\n",
            "experiment/up.py": "import toyx.fill\n",
            "sweep/worker.py": "import toyx.fill\n",
            "predict/x.py": "",
        },
    )
    result = _lint(bad)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "toyx.experiment is not allowed to import toyx.predict" in out
    assert "toyx.experiment is not allowed to import toyx.fill" in out
    assert "toyx.sweep is not allowed to import toyx.fill" in out
