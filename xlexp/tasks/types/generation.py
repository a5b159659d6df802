"""``generation``: text in, text out (translation, generative QA), scored with chrF++ and BLEU
(``sacrebleu``). Each example is a pair: ``text`` in the task language (xx) and ``text_pair`` in the
pivot language (English for Tatoeba). Two *directions* exist for every language: ``xx2en`` (xx ->
pivot) and ``en2xx`` (pivot -> xx); "en" stands for the pivot whatever it is.

What source and target mean here: the matrix row (source) is the language whose pairs the model is
trained on, in the task's ``train_directions``; every column (target) is a language whose held-out
pairs are translated in every direction of ``directions`` (one metric per direction, e.g.
``chrf_xx2en`` and ``chrf_en2xx``). So ``deu -> fra`` under ``chrf_xx2en`` is how well a model trained
on German->English translates French into English: cross-lingual transfer of the *source side*; under
``chrf_en2xx`` it is English->French generation by a model that never produced French.

Local data: line-aligned files (line i of the two are translations), ``{side}`` naming each side in
``local.path`` (the LASER/XTREME Tatoeba layout, ``tatoeba.<xxx>-eng.{xxx,eng}``). Without ``{split}``
in the path, ``line_splits`` carves train/dev/test out of consecutive line ranges (fractions), so a
single test-only pair of files (Tatoeba) gives all three splits with no overlap; hub rows need
``text`` and ``text_pair`` columns (``hub.columns`` renames).

Options (task YAML, defaults below): ``pivot``; ``line_splits``; ``directions`` (tested);
``train_directions`` (trained); ``prefix``: the direction tag put before each source text for models
without language codes (``{src}``/``{tgt}`` = language codes; models with ``model.lang_codes``, e.g.
NLLB and M2M100, get the tokenizer's source language and a forced first target token instead);
``separator``: between source and target in a decoder's sequence.
"""

from __future__ import annotations

from pathlib import Path

from xlexp.errors import XlexpError
from xlexp.tasks.readers import Example, read_parallel
from xlexp.tasks.types import Rows, TaskType, register

DIRECTIONS = ("xx2en", "en2xx")


@register
class Generation(TaskType):
    name = "generation"
    needs_labels = False
    options = {
        "pivot": "eng",
        "line_splits": None,  # {train: 0.8, dev: 0.1, test: 0.1}: consecutive line ranges
        "directions": ["xx2en", "en2xx"],  # tested (a metric per direction)
        "train_directions": ["xx2en"],  # trained
        "prefix": "<2{tgt}> ",  # direction tag before the source text (models without lang_codes)
        "separator": " => ",  # decoders: between the source and the target text
    }

    def path_fields(self, code: str) -> dict[str, str]:
        return {"side": code}

    def pivot_file(self, spec, code: str, split: str, data_dir: Path) -> Path | None:
        return spec.local_path(code, split, data_dir, side=spec.options.get("pivot") or "eng")

    def read_local(self, spec, code: str, split: str, data_dir: Path, path: Path) -> tuple[list[Example], str]:
        opts = spec.options
        pivot = self.pivot_file(spec, code, split, data_dir)
        pairs = read_parallel(path, pivot)
        where = f"{path} + {pivot}"
        if "{split}" in str(spec.paths.get(code) or spec.local.get("path") or ""):
            return pairs, where
        ranges = opts.get("line_splits")
        if not ranges:
            raise XlexpError(
                f"task '{spec.name}': local.path has no {{split}}, so train, dev and test would be the same "
                f"lines of {path}; set line_splits: {{train: 0.8, dev: 0.1, test: 0.1}} in the task YAML"
            )
        start = 0.0
        for name in ("train", "dev", "test"):
            frac = float(ranges.get(name, 0.0))
            if name == split:
                lo, hi = int(round(start * len(pairs))), int(round((start + frac) * len(pairs)))
                return pairs[lo:hi], f"{where} lines {lo + 1}-{hi}"
            start += frac
        raise XlexpError(f"task '{spec.name}': line_splits has no '{split}'")

    def examples(self, spec, code: str, rows: Rows, where: str) -> list[Example]:
        out = []
        for line, r in rows:
            for key in ("text", "text_pair"):
                if not str(r.get(key, "")).strip():
                    raise XlexpError(f"{where}:{line}: empty or missing '{key}' (map hub columns with hub.columns)")
            out.append(Example(text=str(r["text"]).strip(), text_pair=str(r["text_pair"]).strip()))
        return out


def check_directions(spec) -> None:
    """Directions are known, and every metric is ``chrf_<dir>`` or ``bleu_<dir>`` of a tested direction."""
    for key in ("directions", "train_directions"):
        bad = [d for d in spec.options.get(key) or () if d not in DIRECTIONS]
        if bad or not spec.options.get(key):
            raise XlexpError(
                f"task '{spec.name}': {key} must list some of {', '.join(DIRECTIONS)}; got {spec.options.get(key)}"
            )
    tested = list(spec.options["directions"])
    known = [f"{kind}_{d}" for d in tested for kind in ("chrf", "bleu")]
    bad = [m for m in spec.metrics if m not in known]
    if bad:
        raise XlexpError(
            f"task '{spec.name}': metric(s) {bad} are not scored with directions {tested}; "
            f"metrics may be {', '.join(known)}"
        )
