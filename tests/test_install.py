"""A NON-editable install runs a user's task from an empty directory (issue #13, item 6).

The project is built as a wheel from a copy of its sources (the working tree is not touched), the
wheel must hold every YAML of ``xlexp/conf``, and it is installed into a throwaway venv whose only
xlexp is that wheel; its dependencies (torch, ...) come from this interpreter's site-packages through
a ``.pth`` line (``--system-site-packages`` would reach the *base* interpreter's, not this venv's;
a plain path line also keeps this venv's editable-install hook out). Then ``xlexp run task=my_task``
with the task YAML in an ``XLEXP_CONFIG_PATH`` folder trains tiny_random for 2 epochs on CSV data
written here, from an empty working directory, and must write records.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import write_nusax_like

ROOT = Path(__file__).resolve().parents[1]

MY_TASK = {
    "name": "my_task", "type": "sentence_classification", "labels": ["negative", "neutral", "positive"],
    "metrics": ["accuracy", "macro_f1"], "primary_metric": "macro_f1",
    "local": {"path": "nusax_senti/{folder}/{split}.csv", "format": "csv",
              "split_names": {"train": "train", "dev": "valid", "test": "test"}},
    "languages": {"en": "english", "id": "indonesian", "jv": "javanese"},
}
RUN = ["run", "task=my_task", "model=tiny_random", "langpair.sources=[en]", "langpair.targets=all",
       "optimizer.lr=1e-3", "trainer.epochs=2", "data.batch_size=8", "trainer.progress=false", "trainer.device=cpu"]


def _sh(cmd: list, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert out.returncode == 0, f"{cmd} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _wheel(tmp: Path) -> Path:
    src = tmp / "src"
    shutil.copytree(ROOT / "xlexp", src / "xlexp", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    _sh([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--no-index", "--wheel-dir", tmp / "wheels", src])
    (wheel,) = (tmp / "wheels").glob("xlexp-*.whl")
    return wheel


def _venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    _sh([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv])
    python = venv / "bin" / "python"
    purelib = _sh([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "project_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    _sh([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--no-index",
         "--no-build-isolation", "--ignore-installed", wheel])
    return venv


def test_wheel_install_runs_a_user_task_from_an_empty_directory(tmp_path: Path):
    wheel = _wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "xlexp" / "conf").rglob("*.yaml")}
    assert "xlexp/conf/hydra/launcher/xlexp_slurm.yaml" in shipped
    assert shipped <= names, f"missing from the wheel: {sorted(shipped - names)}"

    venv = _venv(tmp_path, wheel)
    user_conf, work = tmp_path / "user_conf", tmp_path / "empty"
    (user_conf / "task").mkdir(parents=True)
    (user_conf / "task" / "my_task.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(MY_TASK)))
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLEXP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(XLEXP_CONFIG_PATH=str(user_conf), XLEXP_DATA_DIR=str(write_nusax_like(tmp_path / "data", (48, 12, 24))),
               XLEXP_CACHE_DIR=str(tmp_path / "cache"))

    where = _sh([venv / "bin" / "python", "-c", "import xlexp, xlexp.config.paths as p; print(xlexp.__file__); "
                 "print(p.CONF_DIR)"], cwd=work, env=env).stdout.split()
    assert all(Path(w).is_relative_to(venv) for w in where), where
    _sh([venv / "bin" / "xlexp", *RUN], cwd=work, env=env)

    records = pd.concat(map(pd.read_parquet, (work / "results" / "runs").glob("*.parquet")))
    test = records[records.split == "test"]
    assert set(test.task) == {"my_task"} and set(test.source) == {"en"} and set(test.target) == {"en", "id", "jv"}
    assert test.value.between(0, 1).all() and set(test.metric) == {"accuracy", "macro_f1"}
    (hydra_yaml,) = (work / "outputs").rglob(".hydra/hydra.yaml")
    sources = {s.provider: s.path for s in OmegaConf.load(hydra_yaml).hydra.runtime.config_sources}
    assert Path(sources["main"]).is_relative_to(venv)         # the installed copy's conf/, not the checkout's
    assert Path(sources["xlexp (XLEXP_CONFIG_PATH)"]) == user_conf
