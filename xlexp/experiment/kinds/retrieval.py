"""``retrieval`` (Tatoeba): nothing is trained. Both sides of each target's parallel test set are
tokenized (``side='pivot'``: the pivot language's text) and searched by cosine in the retrieval unit
executor (:mod:`xlexp.experiment.retrieval`); ``regime=probe`` mines bitext itself."""

from __future__ import annotations

from xlexp.experiment.kinds import TRANSFORMERS, TaskKind, register


@register
class Retrieval(TaskKind):
    name = "retrieval"
    executor = "retrieval"
    families = TRANSFORMERS
    stacks = False
    sides = ("", "pivot")
