"""A NON-editable install WITHOUT the optional extras runs a user's task from an empty directory
(issue #13, item 6; issue #15: wandb, datasets, psycopg, submitit, peft and optuna-dashboard are extras).

The project is built as a wheel from a copy of its sources (the working tree is not touched), the
wheel must hold every YAML of ``xlexp/conf``, and it is installed into a throwaway venv whose only
xlexp is that wheel; its dependencies (torch, ...) come from this interpreter's site-packages through
a ``.pth`` line (``--system-site-packages`` would reach the *base* interpreter's, not this venv's;
a plain path line also keeps this venv's editable-install hook out). That line names a copy of the
site-packages folder (symlinks) without the optional extras' distributions, so the install sees what
``pip install .`` without extras gives. Then ``xlexp run task=my_task`` with the task YAML in an
``XLEXP_CONFIG_PATH`` folder trains tiny_random for 2 epochs on CSV data written here, from an empty
working directory, and must write records; and a feature that needs a missing extra (tracker=wandb,
model.peft=lora, ``xlexp dashboard``, ``xlexp sweep --launcher``) fails with one line naming it.
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

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

MY_TASK = {
    "name": "my_task",
    "type": "sentence_classification",
    "labels": ["negative", "neutral", "positive"],
    "metrics": ["accuracy", "macro_f1"],
    "primary_metric": "macro_f1",
    "local": {
        "path": "nusax_senti/{folder}/{split}.csv",
        "format": "csv",
        "split_names": {"train": "train", "dev": "valid", "test": "test"},
    },
    "languages": {"en": "english", "id": "indonesian", "jv": "javanese"},
}
RUN = [
    "run",
    "task=my_task",
    "model=tiny_random",
    "langpair.sources=[en]",
    "langpair.targets=all",
    "optimizer.lr=1e-3",
    "trainer.epochs=2",
    "data.batch_size=8",
    "trainer.progress=false",
    "trainer.device=cpu",
]


def _sh(cmd: list, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert out.returncode == 0, f"{cmd} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _wheel(tmp: Path) -> Path:
    src = tmp / "src"
    shutil.copytree(ROOT / "xlexp", src / "xlexp", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    _sh(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            tmp / "wheels",
            src,
        ]
    )
    (wheel,) = (tmp / "wheels").glob("xlexp-*.whl")
    return wheel


# the distributions of the optional extras (pyproject.toml): hidden from the throwaway venv
EXTRA_DISTS = (
    "wandb",
    "datasets",
    "psycopg",
    "psycopg-binary",
    "submitit",
    "hydra-submitit-launcher",
    "peft",
    "optuna-dashboard",
)


def site_without_extras(dest: Path) -> Path:
    """This interpreter's site-packages as a folder of symlinks, less every file and folder of
    EXTRA_DISTS (``hydra_plugins/`` is shared: only the launcher's subfolder is left out)."""
    from importlib import metadata

    hidden, hidden_plugins = set(), set()
    for name in EXTRA_DISTS:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:  # not installed here either: nothing to hide
            continue
        for f in files:
            parts = Path(f).parts
            if parts[0] == "..":  # console scripts under bin/
                continue
            (hidden_plugins.add(parts[1]) if parts[0] == "hydra_plugins" and len(parts) > 2 else hidden.add(parts[0]))
    dest.mkdir(parents=True)
    for folder in {Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"])}:
        for entry in folder.iterdir():
            if entry.name in hidden or (dest / entry.name).exists():
                continue
            if entry.name == "hydra_plugins":
                (dest / entry.name).mkdir()
                for plugin in entry.iterdir():
                    if plugin.name not in hidden_plugins:
                        (dest / entry.name / plugin.name).symlink_to(plugin)
            else:
                (dest / entry.name).symlink_to(entry)
    return dest


def _venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    _sh([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv])
    python = venv / "bin" / "python"
    purelib = _sh([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "project_deps.pth").write_text(f"{site_without_extras(tmp / 'deps')}\n")
    _sh(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--ignore-installed",
            wheel,
        ]
    )
    return venv


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """The wheel and the throwaway venv it is installed in (built once for this module's tests)."""
    tmp = tmp_path_factory.mktemp("install")
    wheel = _wheel(tmp)
    return wheel, _venv(tmp, wheel)


def test_wheel_install_runs_a_user_task_from_an_empty_directory(tmp_path: Path, installed):
    wheel, venv = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "xlexp" / "conf").rglob("*.yaml")}
    assert "xlexp/conf/hydra/launcher/xlexp_slurm.yaml" in shipped
    assert shipped <= names, f"missing from the wheel: {sorted(shipped - names)}"
    embedded = {p.relative_to(ROOT).as_posix() for p in (ROOT / "xlexp" / "embedded").rglob("*") if p.is_file()}
    assert "xlexp/embedded/nusax_senti/LICENSE.md" in embedded and len(embedded) == 1 + 12 * 3
    assert embedded <= names, f"missing from the wheel: {sorted(embedded - names)}"  # the data and its license

    absent = _sh(
        [
            venv / "bin" / "python",
            "-c",
            "import importlib.util as u; print([m for m in ('wandb', 'datasets', "
            "'psycopg', 'submitit', 'peft', 'optuna_dashboard', 'hydra_plugins.hydra_submitit_launcher') "
            "if u.find_spec(m) is None])",
        ]
    ).stdout.strip()
    assert absent == str(
        [
            "wandb",
            "datasets",
            "psycopg",
            "submitit",
            "peft",
            "optuna_dashboard",
            "hydra_plugins.hydra_submitit_launcher",
        ]
    )  # the extras really are missing here
    user_conf, work = tmp_path / "user_conf", tmp_path / "empty"
    (user_conf / "task").mkdir(parents=True)
    (user_conf / "task" / "my_task.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(MY_TASK)))
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLEXP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        XLEXP_CONFIG_PATH=str(user_conf),
        XLEXP_DATA_DIR=str(write_nusax_like(tmp_path / "data", (48, 12, 24))),
        XLEXP_CACHE_DIR=str(tmp_path / "cache"),
    )

    where = _sh(
        [
            venv / "bin" / "python",
            "-c",
            "import xlexp, xlexp.config.paths as p; print(xlexp.__file__); print(p.CONF_DIR)",
        ],
        cwd=work,
        env=env,
    ).stdout.split()
    assert all(Path(w).is_relative_to(venv) for w in where), where
    _sh([venv / "bin" / "xlexp", *RUN], cwd=work, env=env)

    records = pd.concat(map(pd.read_parquet, (work / "results" / "runs").glob("*.parquet")))
    test = records[records.split == "test"]
    assert set(test.task) == {"my_task"} and set(test.source) == {"en"} and set(test.target) == {"en", "id", "jv"}
    assert test.value.between(0, 1).all() and set(test.metric) == {"accuracy", "macro_f1"}
    (hydra_yaml,) = (work / "outputs").rglob(".hydra/hydra.yaml")
    sources = {s.provider: s.path for s in OmegaConf.load(hydra_yaml).hydra.runtime.config_sources}
    assert Path(sources["main"]).is_relative_to(venv)  # the installed copy's conf/, not the checkout's
    assert Path(sources["xlexp (XLEXP_CONFIG_PATH)"]) == user_conf


@pytest.mark.parametrize(
    "args, extra",
    [
        (["run", "model=tiny_random", "tracker=wandb", "langpair.sources=[eng]", "langpair.targets=[eng]"], "wandb"),
        (["run", "model=tiny_random", "model.peft=lora", "langpair.sources=[eng]", "langpair.targets=[eng]"], "peft"),
        (
            [
                "run",
                "model=tiny_random",
                "task=sib200",
                "paths.data_dir=/nonexistent/xlexp-data",
                "langpair.sources=[eng_Latn]",
                "langpair.targets=[eng_Latn]",
            ],
            "hub",
        ),  # no local files, none embedded: the hub, through datasets
        (["dashboard"], "dashboard"),
        (["sweep", "sweeps/quickstart.yaml", "--launcher", "local"], "cluster"),
        (["sweep", "--status", "--storage", "postgresql://u:pw@127.0.0.1:1/db"], "cluster"),  # psycopg
    ],
)
def test_a_feature_without_its_extra_fails_with_one_line_naming_it(tmp_path: Path, installed, args, extra):
    _, venv = installed
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLEXP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(XLEXP_DATA_DIR=str(write_nusax_like(tmp_path / "data", (24, 8, 8))), XLEXP_CACHE_DIR=str(tmp_path / "c"))
    out = subprocess.run(
        [str(venv / "bin" / "xlexp"), *args], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path
    )
    err = out.stderr.strip()
    assert out.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err[-2000:]
    assert err.startswith("xlexp: error: ") and err.endswith(f"pip install 'xlexp[{extra}]'"), err
    assert not list(tmp_path.glob("results/runs/*.parquet"))  # failed before any training


def test_the_quickstart_reads_the_embedded_copy_with_no_data_anywhere(tmp_path: Path, installed):
    """Issue #33: a `pip install xlexp` (the core, no `hub` extra) in an empty folder with no data root
    (no XLEXP_DATA_DIR, no ../shared/data, no ./data) runs the quickstart preset on the NusaX-senti copy
    that ships in the wheel, and says so in one log line. tiny_random and a few examples keep it short;
    every other setting is the preset's."""
    _, venv = installed
    work = tmp_path / "empty"
    work.mkdir()
    assert not (tmp_path / "shared").exists() and not (work / "data").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLEXP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(XLEXP_CACHE_DIR=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    out = _sh(
        [
            venv / "bin" / "xlexp",
            "run",
            "+experiment=quickstart",
            "model=tiny_random",
            "trainer.epochs=1",
            "data.max_train_examples=48",
            "data.max_eval_examples=16",
            "langpair.targets=[eng,jav,sun]",
            "trainer.progress=false",
            "trainer.device=cpu",
        ],
        cwd=work,
        env=env,
    )
    said = [line for line in (out.stdout + out.stderr).splitlines() if "data: task nusax_senti is read from" in line]
    assert len(said) == 1 and "embedded in the package" in said[0] and str(venv) in said[0], said
    records = pd.concat(map(pd.read_parquet, (work / "results" / "runs").glob("*.parquet")))
    test = records[records.split == "test"]
    assert set(test.target) == {"eng", "jav", "sun"} and set(test.experiment) == {"quickstart"}
