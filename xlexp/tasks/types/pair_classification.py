"""``pair_classification``: two text fields (premise/hypothesis, sentence1/sentence2), one label.
XNLI, PAWS-X."""

from __future__ import annotations

from xlexp.tasks.readers import Example, label_id
from xlexp.tasks.types import Rows, TaskType, register


@register
class PairClassification(TaskType):
    name = "pair_classification"
    known_metrics = ("accuracy", "macro_f1")
    options = {"prompt": None}  # regime=icl: template, verbalisers (xlexp.tasks.prompts)
    text_fields = ("premise", "hypothesis")

    def examples(self, spec, code: str, rows: Rows, where: str) -> list[Example]:
        out = []
        for line, row in rows:
            self.check_columns(spec, row, line, where)
            texts = self.texts(spec, row, line, where)
            out.append(
                Example(
                    text=texts[0], text_pair=texts[1], label=label_id(spec, code, row[spec.label_field], where, line)
                )
            )
        return out
