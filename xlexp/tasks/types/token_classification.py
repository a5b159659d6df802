"""``token_classification``: a label per word, from CoNLL ``token TAG`` files or hub ``tokens``/``tags``
columns. Trained with a token head; scored on each word's first piece (accuracy, seqeval span F1).
WikiANN NER, MasakhaPOS / UD POS."""

from __future__ import annotations

from xlexp.errors import XlexpError
from xlexp.tasks.readers import Example, label_id
from xlexp.tasks.types import Rows, TaskType, register


@register
class TokenClassification(TaskType):
    name = "token_classification"
    known_metrics = ("accuracy", "span_f1", "span_precision", "span_recall")
    token_level = True
    text_fields = ("tokens",)
    label_field = "tags"

    def examples(self, spec, code: str, rows: Rows, where: str) -> list[Example]:
        out = []
        for line, row in rows:
            self.check_columns(spec, row, line, where)
            tokens, tags = list(row[spec.text_fields[0]]), list(row[spec.label_field])
            if len(tokens) != len(tags) or not tokens:
                raise XlexpError(f"{where}:{line}: {len(tokens)} tokens but {len(tags)} tags")
            out.append(
                Example(tokens=tuple(map(str, tokens)), tags=tuple(label_id(spec, code, t, where, line) for t in tags))
            )
        return out
