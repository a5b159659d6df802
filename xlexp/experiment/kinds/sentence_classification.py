"""``sentence_classification``: one label per example, one text (the text fields joined); the
defaults of :class:`TaskKind` (a classifier head, class cross-entropy, argmax, accuracy/macro-F1)."""

from __future__ import annotations

from xlexp.experiment.kinds import TaskKind, register


@register
class SentenceClassification(TaskKind):
    name = "sentence_classification"
