"""The verbs of ``xlexp``: one module each under ``xlexp/cli``, each registering a :class:`Verb` here.

As ``accelerate``'s commands and lm-eval's subcommands do, a verb module owns its name, its one-line
help, its arguments (``arguments(parser)``) and ``run(args)``; :mod:`xlexp.cli.main` only looks the
verb up, and ``xlexp --help`` and the shell completion (:mod:`xlexp.cli.completion`: verbs and their
options) are generated from the registry, so a new verb is one module plus its name in
:data:`VERB_MODULES` (which also gives the order of ``xlexp --help``). Verb modules stay light at
import time (``xlexp --help`` imports them all): the work is imported inside ``run``. The stage
packages keep plain functions with typed arguments; the parsers live in the verb modules.

``run`` is the exception that parses nothing itself: its arguments are Hydra's (``passthrough``).
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

# the verb modules of xlexp.cli, in the order `xlexp --help` lists them
VERB_MODULES = (
    "run",
    "status",
    "matrix",
    "build_model",
    "report",
    "compare",
    "table",
    "sweep",
    "store",
    "dashboard",
    "predict",
    "recommend",
    "reproduce",
    "docs",
    "completion",
)

PROG = "xlexp"


@dataclass(frozen=True)
class Verb:
    """One verb. ``parse``: ``"args"`` (argparse's default), ``"intermixed"`` (options between the
    positionals, as ``sweep FILE override --workers 2 override``) or ``"known"`` (unknown arguments go
    to ``run`` as ``args.extra``). ``passthrough`` takes the raw arguments instead (``run``: Hydra's
    command line). ``examples``: lines for ``xlexp --help``."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int] | None = None
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str | None = None
    parse: str = "args"
    passthrough: Callable[[list[str]], int] | None = None
    examples: tuple[str, ...] = field(default=())

    @property
    def module(self) -> str:
        """The verb's module under xlexp/cli: its name with ``_`` for ``-`` (``build-model``)."""
        return self.name.replace("-", "_")

    def parser(self) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog=f"{PROG} {self.name}", description=self.description or self.help)
        if self.arguments is not None:
            self.arguments(p)
        return p

    def main(self, argv: list[str]) -> int:
        """Parse ``argv`` (the words after the verb) and run; XlexpError propagates (``xlexp.cli.main``
        turns it into one line and exit code 2)."""
        if self.passthrough is not None:
            return self.passthrough(argv)
        p = self.parser()
        if self.parse == "intermixed":
            args = p.parse_intermixed_args(argv)
        elif self.parse == "known":
            args, extra = p.parse_known_args(argv)
            args.extra = extra
        else:
            args = p.parse_args(argv)
        return self.run(args) or 0

    def options(self) -> list[str]:
        """The verb's ``--options`` (for completion); none for a passthrough verb."""
        if self.passthrough is not None:
            return []
        return sorted(
            {
                s
                for a in self.parser()._actions
                if a.help != argparse.SUPPRESS
                for s in a.option_strings
                if s.startswith("--")
            }
        )


_VERBS: dict[str, Verb] = {}


def register(verb: Verb) -> Verb:
    """Called by each verb module at import time (again when ``python -m xlexp.cli.run`` imports its own
    module a second time, as ``xlexp.cli.run``: the later one stands)."""
    if verb.module not in VERB_MODULES:
        raise ValueError(f"verb '{verb.name}': add its module xlexp/cli/{verb.module}.py to VERB_MODULES")
    _VERBS[verb.name] = verb
    return verb


def verbs() -> list[Verb]:
    """Every verb, in :data:`VERB_MODULES` order (importing the modules registers them)."""
    for module in VERB_MODULES:
        importlib.import_module(f"xlexp.cli.{module}")
    order = {m: i for i, m in enumerate(VERB_MODULES)}
    return sorted(_VERBS.values(), key=lambda v: order.get(v.module, len(order)))


def get(name: str) -> Verb | None:
    """The verb called ``name``, importing only its own module (``xlexp matrix`` imports no other verb)."""
    if name not in _VERBS and name.replace("-", "_") in VERB_MODULES:
        importlib.import_module(f"xlexp.cli.{name.replace('-', '_')}")
    return _VERBS.get(name)


def top_parser() -> argparse.ArgumentParser:
    """``xlexp``'s own parser, for ``xlexp --help``: the verbs with their help lines, the examples."""
    examples = [f"  {line}" for v in verbs() for line in v.examples]
    p = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} <command> [args]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Experiment harness for cross-lingual transfer: source x target matrices from Hydra configs.",
        epilog="examples:\n" + "\n".join(examples) + f"\n\n`{PROG} <command> --help` lists a command's options.",
    )
    p.add_argument("--version", "-V", action="store_true", help="xlexp's version")
    sub = p.add_subparsers(title="commands", metavar="<command>")
    for v in verbs():
        sub.add_parser(v.name, help=v.help)
    return p


def usage() -> str:
    return top_parser().format_help()


def version() -> str:
    """The installed distribution's version (the package's ``__version__`` in a source checkout)."""
    from importlib import metadata

    try:
        return metadata.version("xlexp")
    except metadata.PackageNotFoundError:
        from xlexp import __version__

        return __version__


# ---- argument helpers shared by the verb modules ---------------------------------------------------


def results_dir_default() -> str:
    return os.environ.get("XLEXP_RESULTS_DIR", "results")


def add_results_dir(
    p: argparse.ArgumentParser, help: str = "results store (default: $XLEXP_RESULTS_DIR or ./results)"
) -> None:
    p.add_argument("--results-dir", default=results_dir_default(), help=help)
