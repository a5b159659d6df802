"""Bash tab completion for ``xlexp``: the verbs, Hydra's own completion for ``xlexp run``, and for the
other verbs their options and the names they take (:func:`words`: experiments of the results store
after ``--experiment``, tasks after ``--task``, models after ``--model``).

Hydra's completion script assumes the app is one executable whose first word is the app: it
registers completion for ``basename(sys.argv[0])`` and calls ``<first word> -sc query=bash``. Our
``run`` is a verb of ``xlexp``, so its script registered ``xlexp run`` (two words: ``xlexp`` and
``run``) and then called ``xlexp -sc query=bash`` (``unknown command '-sc'``). Here the script is
ours: it completes the verb after ``xlexp`` and, after ``xlexp run``, asks ``xlexp run -sc
query=bash``; :func:`hydra_query_line` turns the line into the one Hydra expects (the app name, then
the overrides) before Hydra's BashCompletion answers, with the config groups, options and keys of
xlexp's config (``mod<TAB>`` -> ``model=``, ``model=<TAB>`` -> the model names).

``eval "$(xlexp completion bash)"`` and Hydra's spelling ``eval "$(xlexp run --shell-completion
install=bash)"`` (or ``-sc install=bash``) print the same script. The verbs and their options come from
the verb registry (:mod:`xlexp.cli.registry`), as ``xlexp --help`` does.
"""

from __future__ import annotations

import argparse
import re

from xlexp.cli.registry import Verb, register

BASH_SCRIPT = r"""# xlexp bash completion (eval "$(xlexp completion bash)"): verbs, and Hydra's completion for `xlexp run`
_xlexp_completion()
{
    local cur="${COMP_WORDS[COMP_CWORD]}"
    if (( COMP_CWORD == 1 )); then
        COMPREPLY=($(compgen -W "__VERBS__" -- "$cur"))
        return
    fi
    if [ "${COMP_WORDS[1]}" == "run" ]; then
        local line="${COMP_LINE:0:$COMP_POINT}"
        local choices
        choices=$(COMP_POINT=${#line} COMP_LINE="$line" "${COMP_WORDS[0]}" run -sc query=bash 2>/dev/null)
        COMPREPLY=($(compgen -o nospace -o default -W "$choices" -- "$cur"))
        return
    fi
    # other verbs: their options (`xlexp matrix --<TAB>`), experiment names after --experiment, task and
    # model names after --task / --model; else file names
    local prev="${COMP_WORDS[COMP_CWORD-1]}"
    local words
    words=$("${COMP_WORDS[0]}" completion --words "${COMP_WORDS[1]}" "$prev" "$cur" 2>/dev/null)
    if [ -n "$words" ]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return
    fi
    COMPREPLY=($(compgen -o default -- "$cur"))
}
COMP_WORDBREAKS=${COMP_WORDBREAKS//=}
complete -o nospace -o default -F _xlexp_completion xlexp
"""

SHELLS = ("bash",)


def verb_words() -> list[str]:
    """What TAB offers after ``xlexp``: every registered verb, then ``--help`` and ``--version``."""
    from xlexp.cli.registry import verbs

    return [v.name for v in verbs()] + ["--help", "--version"]


def script(shell: str) -> str:
    """The completion script for ``shell`` (bash only, as Hydra's own bash plugin)."""
    from xlexp.errors import XlexpError

    if shell != "bash":
        raise XlexpError(f"completion for '{shell}' is not available; use: eval \"$(xlexp completion bash)\"")
    return BASH_SCRIPT.replace("__VERBS__", " ".join(verb_words()))


def print_script(shell: str, uninstall: bool = False) -> int:
    """``xlexp completion bash`` (and Hydra's ``-sc install=bash`` / ``uninstall=bash``)."""
    if uninstall:
        script(shell)  # the same one-line error for another shell
        print("complete -r xlexp 2>/dev/null; unset -f _xlexp_completion")
    else:
        print(script(shell), end="")
    return 0


def hydra_query_line(line: str) -> str:
    """``xlexp run model=m`` -> ``xlexp model=m``: Hydra's query strips exactly one leading word (the app);
    the ``run`` verb would otherwise be read as an override. A line without ``run`` is left alone."""
    return re.sub(r"^(\s*\S+)\s+run(\s|$)", r"\1\2", line, count=1)


def completion_request(args: list[str]) -> tuple[str, str] | None:
    """``("install"|"uninstall"|"query", shell)`` when ``xlexp run`` got Hydra's ``--shell-completion``
    / ``-sc`` flag, else None."""
    for i, arg in enumerate(args):
        value = None
        if arg in ("-sc", "--shell-completion", "--shell_completion") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(("--shell-completion=", "--shell_completion=")):
            value = arg.split("=", 1)[1]
        if value and "=" in value:
            action, shell = value.split("=", 1)
            return action, shell
    return None


def fix_candidates(candidates: list[str]) -> list[str]:
    """Hydra answers ``mod`` with ``model`` (no ``=``; ``model/`` also holds the ``base/`` folder of private
    base configs) and ``model.`` (the config key), so bash stopped at ``model``. A candidate that is a
    config group with options becomes ``group=``, and the group's ``group.`` key candidate is dropped
    beside it: TAB completes to ``model=``; typing ``model.`` still completes the keys."""
    from xlexp.config.paths import list_configs

    out: list[str] = []
    for c in candidates:
        name = c.lstrip("+~")
        if name and "=" not in name and not name.endswith((".", "/")) and list_configs(name):
            c = c + "="
        if c not in out:
            out.append(c)
    groups = {c[:-1] for c in out if c.endswith("=")}
    return [c for c in out if not (c.endswith(".") and c[:-1] in groups)]


# options whose value is a name xlexp can list: option -> what (see `words`)
NAME_OPTIONS = {"--experiment": "experiment", "--task": "task", "--model": "model"}


def experiment_names(results_dir: str) -> list[str]:
    """Every experiment in the store's record files (only their ``experiment`` column is read)."""
    from pathlib import Path

    import pyarrow.parquet as pq

    names: set[str] = set()
    for path in (Path(results_dir) / "runs").glob("*.parquet"):
        try:
            names.update(str(x) for x in pq.read_table(path, columns=["experiment"]).column(0).unique().to_pylist())
        except Exception:  # a corrupt file: completion is no place to report it (`xlexp store check` is)
            continue
    return sorted(names)


def words(verb: str, prev: str, cur: str) -> list[str]:
    """The candidates for the word being completed after ``xlexp <verb>`` (``run`` is Hydra's): the names
    after an option that takes one (:data:`NAME_OPTIONS`), else the verb's ``--options`` from its parser
    in the registry; nothing (file names) for a value of another option or an unknown verb."""
    import os

    from xlexp.cli.registry import get
    from xlexp.config.paths import list_configs

    what = NAME_OPTIONS.get(prev)
    if what == "experiment":
        return experiment_names(os.environ.get("XLEXP_RESULTS_DIR", "results"))
    if what:
        return [n for n in list_configs(what) if not n.startswith("_")]
    found = get(verb) if not verb.startswith("-") else None
    if found is not None and (cur.startswith("-") or not cur):
        return found.options()
    return []


def main(argv: list[str]) -> int:
    """``xlexp completion [bash]``; ``--words VERB PREV CUR`` is the script asking for candidates (raw
    words: PREV is often an option such as ``--experiment``, which no parser may read as its own)."""
    if argv[:1] == ["--words"]:
        verb, prev, cur = (argv[1:] + ["", "", ""])[:3]
        print(" ".join(words(verb, prev, cur)))
        return 0
    p = argparse.ArgumentParser(prog="xlexp completion", description=VERB.help)
    p.add_argument("shell", nargs="?", default="bash", help="the shell (bash)")
    return print_script(p.parse_args(argv).shell)


VERB = register(
    Verb(
        "completion",
        "bash tab completion (verbs and their options; groups, options and keys of `xlexp run`)",
        passthrough=main,
        examples=('eval "$(xlexp completion bash)"   (or: eval "$(xlexp run -sc install=bash)")',),
    )
)
