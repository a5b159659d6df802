"""The generated tables of docs/ match xlexp/conf/, and the README stays a first screen."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from xlexp import XlexpError
from xlexp.cli import docs as docs_verb
from xlexp.config import docs
from xlexp.config.paths import CONF_DIR

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_committed_docs_are_current():
    """Fails when xlexp/conf changed without `make docs` (xlexp docs)."""
    assert docs_verb.main(["--docs", str(DOCS), "--check"]) == 0, "docs/ is stale: run `make docs`"


def test_check_fails_on_a_stale_block_and_the_generator_repairs_it(tmp_path: Path, capsys):
    shutil.copytree(DOCS, tmp_path / "docs")
    tasks = tmp_path / "docs" / "tasks.md"
    tasks.write_text(tasks.read_text().replace("| `sib200` |", "| `sib201` |"))
    assert docs_verb.main(["--docs", str(tmp_path / "docs"), "--check"]) == 1
    assert "make docs" in capsys.readouterr().err
    assert docs_verb.main(["--docs", str(tmp_path / "docs")]) == 0
    assert tasks.read_text() == (DOCS / "tasks.md").read_text()


def test_missing_markers_name_the_file(tmp_path: Path):
    (tmp_path / "configs.md").write_text("# Configs\n")
    (tmp_path / "tasks.md").write_text("# Tasks\n")
    with pytest.raises(XlexpError, match="configs.md: needs exactly one pair"):
        docs_verb.main(["--docs", str(tmp_path)])


def test_every_task_group_option_and_key_is_in_the_reference():
    blocks = docs.generate()
    conf = Path(CONF_DIR)
    for path in conf.glob("task/*.yaml"):
        assert f"| `{path.stem}` |" in blocks["tasks"]
    for path in conf.rglob("*.yaml"):
        group = path.parent.relative_to(conf).as_posix()
        if group.endswith("/base"):  # shared options of a group (model/base/encoder.yaml), not a choice
            assert f"`{group}/{path.name}`" in blocks["configs"], path
            continue
        assert (f"`{group}={path.stem}`" if group != "." else f"`{path.name}`") in blocks["configs"], path
    # a nested key, its default and the comment written next to it in xlexp/conf/config.yaml
    assert (
        "| `trainer.grad_accum_steps` | `1` | micro-batches of data.batch_size per optimizer step" in blocks["configs"]
    )
    assert "| `optimizer.warmup_ratio` | `0.1` | linear warmup" in blocks["configs"]
    assert "| `hydra.launcher.timeout_min` | `1440` |" in blocks["configs"]
    assert re.search(
        r"\| `nusax_senti` \| sentence_classification \| 12 \| macro_f1, accuracy \| "
        r"`nusax_senti/\{folder\}/\{split\}.csv` \| `indonlp/NusaX-senti` \|",
        blocks["tasks"],
    )


def test_parse_reads_comments_continuations_and_block_lists(tmp_path: Path):
    path = tmp_path / "x.yaml"
    path.write_text(
        "# Header line one\n# and two.\ndefaults:\n  - a: b\n  - _self_\n"
        "lr: 1.0e-4      # the rate\n                # (continued)\n"
        "# about the block\nblock:\n  name: '# not a comment'\n  items: [1, 2]\n"
    )
    f = docs.parse(path, "g")
    assert f.header == "Header line one and two."
    rows = {r.key: (r.value, r.comment) for r in f.rows}
    assert rows == {
        "defaults": ("[a: b, _self_]", ""),
        "lr": ("1.0e-4", "the rate (continued)"),
        "block": ("", "about the block"),
        "block.name": ("'# not a comment'", ""),
        "block.items": ("[1, 2]", ""),
    }


def test_readme_is_a_first_screen():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 8 * 1024
    assert "make demo" in readme and "make test" in readme
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link
