"""Command lines in the order users type them (session 13): ``xlexp reproduce NAME --out DIR key=value``
was refused with "unrecognized arguments" because argparse stops filling a ``*`` positional at the
first option. Every verb whose overrides are a ``*`` positional now parses intermixed."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from xlexp.cli import registry

pytestmark = pytest.mark.unit


def star_positionals(verb: registry.Verb) -> list[argparse.Action]:
    return [a for a in verb.parser()._actions if not a.option_strings and a.nargs == "*"]


VERBS_WITH_OVERRIDES = [v for v in registry.verbs() if v.passthrough is None and star_positionals(v)]


def test_the_verbs_taking_overrides_are_found():
    # a check that the parametrised test below looks at something: reproduce and sweep take overrides
    assert {"reproduce", "sweep"} <= {v.name for v in VERBS_WITH_OVERRIDES}


@pytest.mark.parametrize("verb", VERBS_WITH_OVERRIDES, ids=lambda v: v.name)
def test_overrides_after_an_option_reach_the_verb(verb: registry.Verb):
    seen: dict[str, argparse.Namespace] = {}
    probe = dataclasses.replace(verb, run=lambda args: seen.setdefault("args", args) and 0)
    first = next(a for a in probe.parser()._actions if not a.option_strings and a.nargs in (None, "?"))
    option = next(a for a in probe.parser()._actions if a.option_strings and a.nargs is None and a.type in (None, str))
    star = star_positionals(probe)[0]
    probe.main(["NAME", option.option_strings[-1], "VALUE", "data.eval_batch_size=32", "seed=3"])
    args = seen["args"]
    assert getattr(args, first.dest) == "NAME"
    assert getattr(args, option.dest) == "VALUE"
    assert getattr(args, star.dest) == ["data.eval_batch_size=32", "seed=3"]
