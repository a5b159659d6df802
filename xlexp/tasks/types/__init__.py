"""Task types as registered units: each module in this folder defines one :class:`TaskType` subclass
(decorated with :func:`register`), found by scanning the folder. A type says what its YAML needs
(labels or not, default field names), which splits exist, how local rows become examples, and two
facts the stages below read through the spec: whether it trains (``trains``) and whether labels sit
on words (``token_level``). What happens after reading (tokenization, model, loss, scores) is the
type's task kind (``xlexp.experiment.kinds``, registered under the same name). A new task type is
one module here, its kind, and a task YAML.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from xlexp.config.registry import Registry
from xlexp.errors import XlexpError
from xlexp.tasks.readers import Example, check_language_labels, read_conll, read_local_rows, task_file

Rows = Iterable[tuple[int, Mapping[str, Any]]]


class TaskType:
    """Defaults are those of a one-label-per-example task; ``spec`` arguments are TaskSpecs."""

    name: ClassVar[str]
    trains: ClassVar[bool] = True  # False: nothing to train (retrieval)
    token_level: ClassVar[bool] = False  # one label per word (a token head, word-level metrics)
    needs_labels: ClassVar[bool] = True  # the YAML must list its labels
    text_fields: ClassVar[tuple[str, ...]] = ("text",)
    label_field: ClassVar[str] = "label"
    splits: ClassVar[tuple[str, ...]] = ("train", "dev", "test")
    # the type's own top-level task-YAML keys and their defaults (the values land in ``spec.options``);
    # every other key outside TaskSpec's common ones is refused, so a typo is never silently ignored
    options: ClassVar[dict[str, Any]] = {}
    # the metrics this type computes (None: the type checks its own names); a task YAML naming another is
    # refused when the task is read, not after training when the first test split is scored
    known_metrics: ClassVar[tuple[str, ...] | None] = None

    def check_options(self, options: Mapping[str, Any], name: str, where: str) -> None:
        """Refuse option values the type cannot honour (one line, before any work); the default checks nothing."""

    def path_fields(self, code: str) -> dict[str, str]:
        """Extra fields of the local path pattern that name the probed file (e.g. ``{side}``)."""
        return {}

    def pivot_file(self, spec, code: str, split: str, data_dir: Path) -> Path | None:
        """The second file of a line-aligned pair (the pivot side of bitext types); None: one file."""
        return None

    def local_files(self, spec, code: str, split: str, data_dir: Path) -> list[Path]:
        """Every local file (language, split) is read from: what the caches of tokenized splits and
        sentence vectors stamp by content (``xlexp.data.stamps``)."""
        path = spec.probe_path(code, split, data_dir)
        pivot = self.pivot_file(spec, code, split, data_dir) if path is not None else None
        return [p for p in (path, pivot) if p is not None]

    def file_split(self, spec, code: str, split: str) -> str | None:
        """The ``{split}`` of the local path pattern that holds this split (None: the language has none)."""
        return (spec.local.get("split_names") or {}).get(split, split)

    def hub_location(self, spec, code: str, split: str) -> tuple[str, str | None, str] | None:
        """Where (language, split) lives on the hub: the task's ``hub`` block by default."""
        return spec.default_hub_location(code, split)

    def read_local(self, spec, code: str, split: str, data_dir: Path, path: Path) -> tuple[list[Example], str]:
        fmt = spec.local.get("format", "csv")
        if fmt == "conll":
            examples = read_conll(spec, code, path)
            if spec.local.get("label_file"):
                names = list(spec.labels)
                check_language_labels(
                    spec,
                    code,
                    data_dir,
                    [(i + 1, {spec.label_field: [names[t] for t in ex.tags]}) for i, ex in enumerate(examples)],
                    f"{path} sentence",
                )
            return examples, str(path)
        rows = read_local_rows(path, fmt, str(spec.local.get("quoting", "standard")), task_file(spec))
        check_language_labels(spec, code, data_dir, rows, str(path))
        return self.examples(spec, code, rows, str(path)), str(path)

    def examples(self, spec, code: str, rows: Rows, where: str) -> list[Example]:
        raise NotImplementedError

    @staticmethod
    def check_columns(spec, row: Mapping[str, Any], line: int, where: str) -> None:
        for key in (*spec.text_fields, spec.label_field):
            if key not in row:
                raise XlexpError(f"{where}:{line}: no column '{key}' (columns: {', '.join(row)})")

    @staticmethod
    def texts(spec, row: Mapping[str, Any], line: int, where: str) -> list[str]:
        """The row's ``text_fields``, stripped, in the YAML's order; the type joins them (sentence
        classification: one space between fields; pair classification: the first two as the pair).
        An empty one fails with the file and line."""
        texts = [str(row[k]).strip() for k in spec.text_fields]
        if not all(texts):
            raise XlexpError(f"{where}:{line}: empty text in column(s) {list(spec.text_fields)}")
        return texts


REGISTRY: Registry[TaskType] = Registry("task type", __name__, __path__)
register = REGISTRY.register  # class decorator: make ``cls`` available as ``type: <cls.name>`` in task YAML
available = REGISTRY.names
get = REGISTRY.get
