"""``retrieval``: parallel sentences (xx <-> pivot), no labels, no training, test split only. Local
files are line-aligned pairs (``{side}`` in the path pattern names each side); the encoder's pooled
sentence vectors are searched by cosine. Tatoeba."""

from __future__ import annotations

from pathlib import Path

from xlexp.tasks.readers import Example, read_parallel
from xlexp.tasks.types import Rows, TaskType, register


@register
class Retrieval(TaskType):
    name = "retrieval"
    trains = False
    needs_labels = False
    splits = ("test",)
    options = {
        "pivot": "eng",  # the language every target is paired with
        "layer": None,  # hidden layer to pool (None = last)
    }

    def path_fields(self, code: str) -> dict[str, str]:
        return {"side": code}

    def pivot_file(self, spec, code: str, split: str, data_dir: Path) -> Path | None:
        return spec.local_path(code, split, data_dir, side=spec.pivot or "eng")

    def read_local(self, spec, code: str, split: str, data_dir: Path, path: Path) -> tuple[list[Example], str]:
        pivot = self.pivot_file(spec, code, split, data_dir)
        return read_parallel(path, pivot), f"{path} + {pivot}"

    def examples(self, spec, code: str, rows: Rows, where: str) -> list[Example]:
        return [Example(text=str(r["text"]).strip(), text_pair=str(r["text_pair"]).strip()) for _, r in rows]
