"""User config folders (XLEXP_CONFIG_PATH) and hydra.searchpath, next to the package's conf/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from xlexp import XlexpError
from xlexp.config.compose import CONF_DIR, compose_config, register_search_path
from xlexp.config.paths import ENV_VAR, find_config, list_configs, user_config_dirs
from xlexp.tasks.spec import available_tasks, load_task

MY_TASK = {
    "name": "my_task",
    "type": "sentence_classification",
    "labels": ["no", "yes"],
    "metrics": ["accuracy"],
    "local": {"path": "my_task/{folder}/{split}.csv", "format": "csv"},
    "languages": {"aaa": "aaa", "bbb": "bbb"},
}


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(data)), encoding="utf-8")
    return path


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "my_conf"
    write_yaml(folder / "task" / "my_task.yaml", MY_TASK)
    monkeypatch.setenv(ENV_VAR, str(folder))
    return folder


@pytest.mark.unit
def test_missing_folder_is_one_line_naming_the_variable_and_path(tmp_path: Path, monkeypatch):
    missing = tmp_path / "nope"
    monkeypatch.setenv(ENV_VAR, f"{tmp_path}{os.pathsep}{missing}")
    with pytest.raises(XlexpError, match=f"{ENV_VAR}: '{missing}' is not a directory") as e:
        compose_config(["task=nusax_senti"])
    assert "\n" not in str(e.value)


@pytest.mark.unit
def test_entries_in_order_empty_ones_skipped(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert user_config_dirs({ENV_VAR: f"{b}{os.pathsep}{os.pathsep}{a}{os.pathsep}"}) == [b, a]
    assert user_config_dirs({}) == []


@pytest.mark.unit
def test_user_task_composes_and_is_found_by_name(user_dir: Path):
    cfg = compose_config(["task=my_task", "langpair.sources=[aaa]"])
    assert cfg.task.name == "my_task" and list(cfg.task.languages) == ["aaa", "bbb"]
    assert cfg.model.name == "me5_small_offline"  # the package's groups are still there
    assert load_task("my_task").languages == {"aaa": "aaa", "bbb": "bbb"}
    assert {"my_task", "nusax_senti", "sib200"} <= set(available_tasks())


@pytest.mark.unit
def test_user_file_replaces_the_package_file_of_the_same_name(user_dir: Path, tmp_path: Path, monkeypatch):
    write_yaml(user_dir / "task" / "nusax_senti.yaml", {**MY_TASK, "name": "nusax_senti"})
    second = tmp_path / "second"
    write_yaml(second / "task" / "my_task.yaml", {**MY_TASK, "labels": ["a", "b", "c"]})
    monkeypatch.setenv(ENV_VAR, f"{user_dir}{os.pathsep}{second}")  # the first folder wins
    assert compose_config(["task=nusax_senti"]).task.languages == {"aaa": "aaa", "bbb": "bbb"}
    assert load_task("nusax_senti").labels == ("no", "yes")
    assert load_task("my_task").labels == ("no", "yes")
    assert find_config("task", "sib200") == Path(CONF_DIR) / "task" / "sib200.yaml"
    monkeypatch.delenv(ENV_VAR)
    assert compose_config(["task=nusax_senti"]).task.labels == ["negative", "neutral", "positive"]
    assert "my_task" not in list_configs("task")


@pytest.mark.unit
def test_hydra_searchpath_still_works_and_adds_to_the_user_folders(user_dir: Path, tmp_path: Path):
    other = tmp_path / "other"
    write_yaml(other / "langpair" / "my_pair.yaml", {"name": "my_pair", "sources": ["aaa"], "targets": ["bbb"]})
    cfg = compose_config(["task=my_task", "langpair=my_pair", f"hydra.searchpath=[file://{other}]"])
    assert cfg.task.name == "my_task" and cfg.langpair.targets == ["bbb"]


@pytest.mark.unit
def test_classical_tokenizer_config_is_looked_up_in_user_folders(user_dir: Path):
    from xlexp.models.classical import _model_config

    write_yaml(user_dir / "model" / "my_encoder.yaml", {"name": "my_encoder", "source": "tiny_random"})
    assert _model_config("my_encoder")["name"] == "my_encoder"
    with pytest.raises(XlexpError, match="no model config model/nope.yaml.*use one of .*my_encoder"):
        _model_config("nope")


def _search_path(config_dir: str) -> list[str]:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return [source.path for source in GlobalHydra.instance().config_loader().get_sources()]


@pytest.mark.unit
def test_user_folders_come_before_the_package_and_other_apps_are_left_alone(
    user_dir: Path, tmp_path: Path, monkeypatch
):
    register_search_path()
    second = tmp_path / "second"
    second.mkdir()
    monkeypatch.setenv(ENV_VAR, f"{user_dir}{os.pathsep}{second}")
    paths = _search_path(CONF_DIR)
    assert paths.index(str(user_dir)) < paths.index(str(second)) < paths.index(CONF_DIR)
    app = tmp_path / "app"
    write_yaml(app / "config.yaml", {"x": 1})
    assert str(user_dir) not in _search_path(str(app))


@pytest.mark.unit
def test_sweep_worker_app_sees_a_user_launcher(user_dir: Path):
    from hydra import compose, initialize_config_dir

    write_yaml(user_dir / "hydra" / "launcher" / "my_cluster.yaml", {"defaults": ["submitit_local"], "timeout_min": 7})
    register_search_path()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "sweep_worker",
            overrides=["hydra/launcher=my_cluster", "sweep_file=x", "study=s", "n_trials=1"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher.timeout_min == 7


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xlexp.cli.run", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_xlexp_run_composes_a_user_task(user_dir: Path):
    out = _run(
        ["task=my_task", "langpair.sources=[aaa]", "--cfg", "job", "--package", "task"], {ENV_VAR: str(user_dir)}
    )
    assert out.returncode == 0, out.stderr
    assert "name: my_task" in out.stdout


def test_xlexp_run_bad_folder_is_one_line(tmp_path: Path):
    out = _run(["--cfg", "job"], {ENV_VAR: str(tmp_path / "missing")})
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"xlexp: error: {ENV_VAR}: '{tmp_path / 'missing'}' is not a directory; set {ENV_VAR} to existing "
        f"config folders laid out like xlexp/conf (task/, model/, ...), separated by '{os.pathsep}'"
    ]
