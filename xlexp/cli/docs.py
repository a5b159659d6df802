"""``xlexp docs [--check]``: the generated config and task tables of a checkout's ``docs/``
(:func:`xlexp.config.docs.update`; ``make docs`` runs it, ``tests/test_docs.py`` checks them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xlexp.cli.registry import Verb, register


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--docs", type=Path, default=Path("docs"), help="the docs folder (default: ./docs)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated block is stale")


def run(args: argparse.Namespace) -> int:
    from xlexp.config.docs import BLOCKS, update

    stale = update(args.docs, args.check)
    if args.check and stale:
        print(f"stale generated tables in {', '.join(stale)}: run `make docs` and commit the result", file=sys.stderr)
        return 1
    print(
        ("checked: " if args.check else "up to date: " if not stale else "rewrote: ")
        + ", ".join(stale or [str(args.docs / f) for f in BLOCKS.values()])
    )
    return 0


VERB = register(
    Verb(
        "docs",
        "regenerate the config and task tables of a checkout's docs/ from xlexp/conf "
        "(`make docs`); --check: exit 1 when they are stale",
        run=run,
        arguments=arguments,
    )
)


def main(argv: list[str]) -> int:
    """``xlexp docs ARGS`` with XlexpError propagating (for tests)."""
    return VERB.main(argv)
