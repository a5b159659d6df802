"""The verbs of ``xlexp`` (issue #30): one module each under xlexp/cli, registered in
``xlexp.cli.registry``; ``xlexp --help`` and the completion's verbs and options are generated from it;
no stage package parses a command line; and ``xlexp --help`` imports none of the heavy libraries."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from xlexp.cli import registry
from xlexp.cli.completion import verb_words, words
from xlexp.cli.main import main

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit


def test_every_verb_module_registers_its_verb_and_help_lists_them_in_order(capsys):
    verbs = registry.verbs()
    assert [v.module for v in verbs] == list(registry.VERB_MODULES)
    for v in verbs:
        assert (ROOT / "xlexp" / "cli" / f"{v.module}.py").is_file() and v.help
        assert (v.passthrough is None) == (v.run is not None), v.name  # parses its arguments, or takes them raw
    assert main(["--help"]) == 0
    listed = re.findall(r"^    (\S+)\s", capsys.readouterr().out, flags=re.M)
    assert listed == [v.name for v in verbs]
    assert main(["no-such-verb"]) == 2 and "unknown command 'no-such-verb'" in capsys.readouterr().err


def test_completion_offers_the_registered_verbs_and_each_verbs_own_options():
    assert verb_words() == [v.name for v in registry.verbs()] + ["--help", "--version"]
    matrix = words("matrix", "", "--")
    assert matrix == registry.get("matrix").options() and {"--gap", "--experiment", "--predicted"} <= set(matrix)
    assert "--worker-index" not in words("sweep", "", "--")  # hidden options stay hidden
    assert words("run", "", "--") == [] and words("nope", "", "--") == []  # Hydra completes `run` itself


def test_no_stage_package_parses_a_command_line():
    """Argument parsers live in the verb modules; the stages take typed arguments."""
    found = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "xlexp").rglob("*.py")
        if p.parent.name != "cli" and re.search(r"ArgumentParser\(|^import argparse", p.read_text(), re.M)
    ]
    assert found == []


def test_xlexp_help_imports_no_heavy_library():
    code = (
        "import sys; from xlexp.cli.main import main; main(['--help']); "
        "print(sorted(m for m in ('torch', 'hydra', 'optuna', 'pandas', 'omegaconf') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
