"""``sentence_classification``: one label per example; the text fields (csv/tsv/jsonl columns or hub
features) are joined by spaces. NusaX-senti, SIB-200."""

from __future__ import annotations

from xlexp.tasks.readers import Example, label_id
from xlexp.tasks.types import Rows, TaskType, register


@register
class SentenceClassification(TaskType):
    name = "sentence_classification"
    known_metrics = ("accuracy", "macro_f1")
    options = {"prompt": None}  # regime=icl: template, verbalisers (xlexp.tasks.prompts)

    def examples(self, spec, code: str, rows: Rows, where: str) -> list[Example]:
        out = []
        for line, row in rows:
            self.check_columns(spec, row, line, where)
            texts = self.texts(spec, row, line, where)
            out.append(Example(text=" ".join(texts), label=label_id(spec, code, row[spec.label_field], where, line)))
        return out
