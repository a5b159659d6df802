"""The README's everyday commands work as written, in a shell that has only the venv's ``bin`` on PATH
(what ``source .venv/bin/activate`` gives after ``make demo``), with no ``XLEXP_*`` variable set.

The commands are read from the README's "Five everyday commands" block, so an edit there is tested.
They run in a fresh folder whose ``../shared/data`` is the real data (the layout of a checkout next to
the shared datasets, which is how ``xlexp`` finds the data root without XLEXP_DATA_DIR, as ``make``
does). To take a minute instead of hours, each ``xlexp run`` line gets the overrides below appended
(tiny_random, one epoch, a few examples; SIB-200 on 3 of its 205 targets); every other word of the
line is the README's. Skipped without the real data (``../shared/data``).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FAST = [
    "model=tiny_random",
    "trainer.epochs=1",
    "data.max_train_examples=48",
    "data.max_eval_examples=24",
    "trainer.device=cpu",
]
# per README line (matched by a fragment): the extra overrides that make it quick
SHORTER = {
    "task=sib200": ["langpair.targets=[eng_Latn,fra_Latn,ind_Latn]"],
    "langpair.sources=[eng],[ind]": ["langpair.targets=[eng,ind,jav]"],
}


def everyday_commands() -> list[str]:
    """The command lines of the README's "Five everyday commands" block, comments dropped."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Five everyday commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split(" #")[0].strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def as_run_here(line: str) -> str:
    if not line.startswith("xlexp run"):
        return line
    extra = FAST + [o for fragment, more in SHORTER.items() if fragment in line for o in more]
    return f"{line} {' '.join(shlex.quote(o) for o in extra)}"


@pytest.mark.unit
def test_the_readme_block_is_the_one_this_test_knows():
    lines = everyday_commands()
    assert len(lines) == 5 and all(line.startswith("xlexp ") for line in lines), lines
    assert sum(line.startswith("xlexp run") for line in lines) == 3
    assert all(any(fragment in line for line in lines) for fragment in SHORTER)  # no stale shortening


@pytest.mark.skipif(
    not (SHARED_DATA / "nusax_senti").is_dir() or not (SHARED_DATA / "sib200").is_dir(),
    reason=f"needs the real data in {SHARED_DATA}",
)
def test_readme_everyday_commands_run_as_written_with_only_the_venv_on_path(tmp_path: Path):
    work, home = tmp_path / "checkout", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED_DATA)  # ../shared/data, as beside a clone
    env = {
        "PATH": str(BIN),
        "HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "LANG": "C.UTF-8",
        **{k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ},
    }  # (a source tree under test)
    for line in everyday_commands():
        out = subprocess.run(
            ["/bin/bash", "-c", as_run_here(line)], capture_output=True, text=True, env=env, cwd=work, timeout=900
        )
        assert out.returncode == 0, f"{line}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    records = pd.concat(map(pd.read_parquet, (work / "results" / "runs").glob("*.parquet")))
    assert {"quickstart", "tiny_random-sib200-zero_shot"} <= set(records.experiment)
    multirun = records[records.experiment == "tiny_random-nusax_senti-zero_shot"]
    assert set(multirun.source) == {"eng", "ind"} and set(multirun.seed) == {1, 2, 3}
    assert (work / "results" / "matrices" / "quickstart.macro_f1.csv").is_file()
    assert (work / "results" / "report" / "index.html").stat().st_size > 10_000
