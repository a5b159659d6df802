"""Round 2 (issue #28), item 3: a task YAML is data. It cannot write outside the cache or the store
(names that reach the file system are checked once, in xlexp.config.names) and cannot run code
(no '# @package' directive, no 'hydra:' or 'defaults:' key, no '_target_' at any depth)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY, write_nusax_like
from tests.faults.test_fault_store import cli, error_lines, n_records
from xlexp import TaskSpec, XlexpError
from xlexp.config.names import check_task_file
from xlexp.config.paths import CONF_DIR

SMALL = [*TINY, "trainer.epochs=1", "langpair.sources=[eng]", "langpair.targets=[eng,ind]", "regime.dev_targets=none"]


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    data = write_nusax_like(tmp_path / "work" / "data", sizes=(30, 12, 18))
    return {"data": data, "results": tmp_path / "work" / "results", "cache": tmp_path / "work" / "cache"}


def nusax() -> dict:
    return yaml.safe_load((Path(CONF_DIR) / "task" / "nusax_senti.yaml").read_text())


def _user_task(tmp_path: Path, text: str, name: str = "evil") -> Path:
    conf = tmp_path / "conf"
    (conf / "task").mkdir(parents=True, exist_ok=True)
    (conf / "task" / f"{name}.yaml").write_text(text)
    return conf


def _one_line_refusal(out, dirs, *needles: str) -> None:
    assert out.returncode == 2, out.stderr[-3000:]
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert n_records(dirs) == 0


HYDRA_CALLBACK = """# @package _global_
hydra:
  callbacks:
    evil:
      _target_: shutil.copyfile
      src: {src}
      dst: {dst}
task:
  name: evil
"""


@pytest.mark.parametrize("via", ["XLEXP_CONFIG_PATH", "hydra.searchpath"])
def test_a_task_file_with_a_package_directive_and_a_hydra_callback_runs_nothing(dirs, tmp_path, via):
    """Before: '# @package _global_' + hydra.callbacks.evil._target_=shutil.copyfile ran the copy."""
    src, dst = tmp_path / "secret.txt", tmp_path / "STOLEN.txt"
    src.write_text("secret")
    conf = _user_task(tmp_path, HYDRA_CALLBACK.format(src=src, dst=dst))
    if via == "XLEXP_CONFIG_PATH":
        out = cli(dirs, "run", *SMALL, "task=evil", env_extra={"XLEXP_CONFIG_PATH": str(conf)})
    else:
        out = cli(dirs, "run", *SMALL, "task=evil", f"hydra.searchpath=[file://{conf}]")
    _one_line_refusal(out, dirs, "evil.yaml, line 1", "'# @package'", "task files are data only")
    assert not dst.exists()


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, needle",
    [
        ("name: evil\nhydra:\n  job:\n    chdir: true\n", "key 'hydra'"),
        ("defaults:\n  - /hydra/callbacks: x\nname: evil\n", "key 'defaults'"),
        (
            "name: evil\ntype: sentence_classification\nlabel_map:\n  '*': {_target_: os.system}\n",
            "'label_map.*._target_'",
        ),
        ("name: evil\nlanguages:\n  - {_target_: builtins.print, _args_: [pwned]}\n", "'languages[0]._target_'"),
        ("  # @package task\nname: evil\n", "'# @package'"),
    ],
)
def test_code_or_hydra_keys_anywhere_in_a_task_file_are_refused(tmp_path, text, needle):
    path = _user_task(tmp_path, text) / "task" / "evil.yaml"
    with pytest.raises(XlexpError, match="task files are data only") as e:
        check_task_file(path)
    assert needle in str(e.value) and str(path) in str(e.value)


@pytest.mark.unit
def test_the_packaged_task_files_are_data(tmp_path):
    for path in sorted((Path(CONF_DIR) / "task").glob("*.yaml")):
        check_task_file(path)


@pytest.mark.unit
@pytest.mark.parametrize(
    "edit, needle",
    [
        (
            lambda d: d.update(languages={"../../../../../outside/PWNED": "english", "ind": "indonesian"}),
            "language code",
        ),
        (lambda d: d.update(name="../../../../outside/TASKPWN"), "task name"),
        (lambda d: d.update(languages={"eng\n": "english"}), "language code"),
        (lambda d: d.update(languages={".hidden": "english"}), "language code"),
        (lambda d: d.update(languages={"eng": "../../../etc"}), "folder of language 'eng'"),
        (lambda d: d["local"].update(path="/etc/{folder}/{split}.csv"), "local.path"),
        (lambda d: d["local"].update(path="nusax/../../{folder}/{split}.csv"), "local.path"),
        (lambda d: d["local"].update(path="nusax/{code.__class__}/{split}.csv"), "'{code.__class__}' is not a field"),
        (lambda d: d["local"].update(path="nusax/{}/{split}.csv"), "'{}' is not a field"),
        (lambda d: d.update(languages={"eng": {"path": "~/{split}.csv"}}), "path of language 'eng'"),
    ],
)
def test_names_and_paths_that_would_leave_their_folder_are_refused(edit, needle):
    raw = nusax()
    edit(raw)
    with pytest.raises(XlexpError, match="relative to the data folder|names files and folders|is not a field") as e:
        TaskSpec.from_config(raw)
    assert needle in str(e.value)


def test_a_hostile_language_code_writes_nothing_outside_the_cache(dirs, tmp_path):
    """Before: the code '../../../../../outside/PWNED' wrote PWNED.train.<hash>.npz outside the cache."""
    raw = nusax()
    raw.update(name="hostile", languages={"../../../../../outside/PWNED": "english", "ind": "indonesian"})
    conf = _user_task(tmp_path, yaml.safe_dump(raw), name="hostile")
    out = cli(
        dirs,
        "run",
        *TINY,
        "trainer.epochs=1",
        "task=hostile",
        "langpair.sources=[ind]",
        "langpair.targets=[ind]",
        "regime.dev_targets=none",
        env_extra={"XLEXP_CONFIG_PATH": str(conf)},
    )
    _one_line_refusal(out, dirs, "language code '../../../../../outside/PWNED'")
    assert not list(tmp_path.rglob("PWNED*")) and not (tmp_path / "outside").exists()
