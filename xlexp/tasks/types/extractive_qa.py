"""``extractive_qa``: a question, a context and the answer as a span of the context. XQuAD, MLQA,
TyDiQA-GoldP, SQuAD (Rajpurkar et al., 2016) and its translations (SQuAD-it), DRCD.

Local files are SQuAD v1.1 JSON (``data[].paragraphs[].{context, qas[].{id, question,
answers[].{text, answer_start}}}``), plain or ``.gz``; hub datasets have flat ``id, question,
context, answers{text[], answer_start[]}`` rows (the ``squad`` layout of ``datasets``).

What the task YAML may add (``options``; defaults below):

- ``splits``: per language (``'*'`` for the rest), which splits exist and where each comes from:
  ``{test: test}`` (the ``{split}`` of the path pattern) or ``{file: dev, part: [0.0, 0.9]}``, a
  seeded (``partition_seed``), paragraph-level slice of that file (so the questions on one context
  never straddle train and dev). A split not listed does not exist (the plan fails before any
  work; the target_dev rule is skipped for a target without dev).
- ``exclude_ids_from``: per language, ``{language: en, split: test}``: drop every paragraph of this
  language's file that holds a question id found in that (language, split) file, before splitting.
  SQuAD-it translates SQuAD v1.1 dev, which XQuAD was drawn from: without this, XQuAD's questions
  would be in the Italian training data. Logged with counts; never applied unless configured.
- ``bad_answers``: what a *training* split does with an answer whose ``answer_start`` does not point at
  its text: ``error`` (default) fails on the first (one line: file, question id and the options);
  ``repair`` looks for the text near ``answer_start`` with whitespace normalised (a no-break space
  for a space, a doubled space: ARCD, SQuAD-it) and uses the occurrence closest to ``answer_start``
  (within ``REPAIR_WINDOW`` characters), skipping (counted) what it cannot repair; ``skip`` drops
  such answers (and questions left without one), counted in the log. A string or a per-language
  mapping with ``'*'``. Dev and test splits keep every question whatever this says: they are scored
  on the answer *texts* (as the official SQuAD script does), so an offset there only places the
  window label, and it is repaired where it can be (else the answer has no window label).
- ``normalization``: metric normalisation, ``squad`` (official v1.1) or ``mlqa`` (language-aware);
  a string or a per-language mapping with ``'*'`` (see :mod:`xlexp.tasks.qa_metric`).
- ``doc_stride``, ``max_query_length``: windows over long contexts (``xlexp.data.qa``);
  ``max_answer_length``, ``n_best``: span post-processing (``xlexp.engine.qa``).
- ``hub_id_prefix``: per language, keep only rows of the task's hub dataset whose id starts with it
  (TyDiQA-GoldP mixes its languages in one config and names them in the id: ``arabic-...``).
- ``hub_splits``: per language and split, another hub dataset: ``{en: {train: {id: rajpurkar/squad,
  split: train}}}`` (English SQuAD v1.1 as the source of XQuAD, MLQA and TyDiQA, as in XTREME). Such
  a split is never read from a local file (it exists only where the hub is used). ``{it: none}``:
  the language has no hub dataset (local files only).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from xlexp.errors import XlexpError
from xlexp.tasks.readers import Example, task_file
from xlexp.tasks.types import Rows, TaskType, register

log = logging.getLogger(__name__)
BAD_ANSWERS = ("error", "repair", "skip")
REPAIR_WINDOW = 200  # characters either side of answer_start searched by bad_answers: repair

OPTIONS: dict[str, Any] = {
    "splits": {},
    "partition_seed": 0,
    "exclude_ids_from": {},
    "bad_answers": "error",
    "normalization": "squad",
    "doc_stride": 128,
    "max_query_length": 64,
    "max_answer_length": 30,
    "n_best": 20,
    "hub_id_prefix": {},
    "hub_splits": {},
}


@dataclass(frozen=True)
class QAExample(Example):
    """``text`` is the question and ``text_pair`` the context (so text-only code, e.g. the tiny
    model's tokenizer training, sees both); ``answers`` are (text, character start) pairs."""

    qid: str = ""
    answers: tuple[tuple[str, int], ...] = ()
    norm: str = "squad"  # metric normalisation of this example's language
    lang: str = ""  # language tag for the metric (mlqa rules)

    @property
    def question(self) -> str:
        return self.text

    @property
    def context(self) -> str:
        return self.text_pair or ""


def qa_options(spec) -> dict[str, Any]:
    """The type's options with the YAML's values on top."""
    return {**OPTIONS, **spec.options}


def _per_language(value: Any, code: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(code, value.get("*", default))
    return default if value is None else value


@register
class ExtractiveQA(TaskType):
    name = "extractive_qa"
    known_metrics = ("exact_match", "f1")
    needs_labels = False
    text_fields = ("question", "context")
    label_field = "answers"
    options: ClassVar[dict[str, Any]] = OPTIONS

    def check_options(self, options: Mapping[str, Any], name: str, where: str) -> None:
        """Span post-processing needs at least one candidate and answers of at least one piece: with 0 every
        answer is empty (F1 0.000 in every cell) or the decoder has nothing to choose from."""
        for key in ("n_best", "max_answer_length", "doc_stride", "max_query_length"):
            value = options.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise XlexpError(
                    f"task '{name}': {key} must be an integer >= 1, got {value!r} ({where}; "
                    f"override with task.{key}=...)"
                )

    # -- which splits exist and where ------------------------------------------------------
    def layout(self, spec, code: str) -> dict[str, Any]:
        splits = qa_options(spec)["splits"] or {}
        entry = splits.get(code, splits.get("*"))
        if entry is None:
            names = spec.local.get("split_names") or {}
            return {s: names.get(s, s) for s in self.splits}
        unknown = set(entry) - set(self.splits)
        if unknown:
            raise XlexpError(
                f"task '{spec.name}': splits.{code} names {sorted(unknown)}; splits are {list(self.splits)}"
            )
        return dict(entry)

    def hub_location(self, spec, code: str, split: str) -> tuple[str, str | None, str] | None:
        hub_splits = qa_options(spec)["hub_splits"]
        if code in hub_splits and hub_splits[code] in (None, "none"):
            return None  # a local-only language (e.g. SQuAD-it, DRCD in task xquad)
        custom = (hub_splits.get(code) or {}).get(split)
        if custom:
            return str(custom["id"]), custom.get("config"), str(custom.get("split", split))
        if split not in self.layout(spec, code):
            return None
        return spec.default_hub_location(code, split)

    def file_split(self, spec, code: str, split: str) -> str | None:
        """The ``{split}`` of the local path pattern for this split, None where it does not exist."""
        custom = qa_options(spec)["hub_splits"].get(code)
        if isinstance(custom, Mapping) and custom.get(split):
            return None  # a hub-only split (e.g. SQuAD train for 'en'): never a local file
        entry = self.layout(spec, code).get(split)
        if entry is None:
            return None
        return str(entry["file"]) if isinstance(entry, Mapping) else str(entry)

    # -- reading ------------------------------------------------------------------------------
    def read_local(self, spec, code: str, split: str, data_dir: Path, path: Path) -> tuple[list[Example], str]:
        opts = qa_options(spec)
        where = str(path)
        paragraphs = read_squad_json(path)
        exclude = _per_language(opts["exclude_ids_from"], code, None)
        if exclude:
            paragraphs = exclude_paragraphs(paragraphs, self._exclusion_ids(spec, code, exclude, data_dir), code, where)
        entry = self.layout(spec, code).get(split)
        if isinstance(entry, Mapping) and entry.get("part") is not None:
            lo, hi = (float(x) for x in entry["part"])
            paragraphs = partition(paragraphs, lo, hi, int(entry.get("seed", opts["partition_seed"])))
            where = f"{path} (paragraphs {lo:g}-{hi:g} of a seeded split)"
        rows = [
            (
                i,
                {
                    "id": qa["id"],
                    "question": qa["question"],
                    "context": ctx,
                    "answers": {
                        "text": [a["text"] for a in qa.get("answers", [])],
                        "answer_start": [a["answer_start"] for a in qa.get("answers", [])],
                    },
                },
            )
            for i, (ctx, qas) in enumerate(paragraphs)
            for qa in qas
        ]
        return self.examples(spec, code, rows, where, str(path), split=split), where

    def _exclusion_ids(self, spec, code: str, exclude: Mapping[str, Any], data_dir: Path) -> set[str]:
        other, other_split = str(exclude.get("language", "")), str(exclude.get("split", "test"))
        spec.check_language(other, "exclude_ids_from")
        other_path = spec.local_path(other, other_split, data_dir)
        if other_path is None or not other_path.exists():
            raise XlexpError(
                f"task '{spec.name}': exclude_ids_from.{code} needs the local '{other_split}' file of "
                f"'{other}' ({other_path}); it is not there"
            )
        return {qa["id"] for _, qas in read_squad_json(other_path) for qa in qas}

    def _split_of(self, spec, code: str, where: str) -> str | None:
        """Which split hub rows came from (``where`` is ``hub:<id>/<config>/<hub split>``)."""
        for split in self.splits:
            loc = self.hub_location(spec, code, split)
            if loc is not None and where == f"hub:{loc[0]}/{loc[1]}/{loc[2]}":
                return split
        return None

    def examples(
        self, spec, code: str, rows: Rows, where: str, file: str | None = None, split: str | None = None
    ) -> list[Example]:
        opts = qa_options(spec)
        mode = _per_language(opts["normalization"], code, "squad")
        on_bad = _per_language(opts["bad_answers"], code, "error")
        if on_bad not in BAD_ANSWERS:
            raise XlexpError(f"task '{spec.name}': bad_answers must be one of {', '.join(BAD_ANSWERS)}, got '{on_bad}'")
        split = split or self._split_of(spec, code, where) or "train"  # unknown: checked as strictly as training
        scored = split != "train"  # dev/test: scored on answer texts, every question kept
        own_hub = bool(spec.hub.get("id")) and where.startswith(f"hub:{spec.hub['id']}/")
        prefix = _per_language(opts["hub_id_prefix"], code, None) if own_hub else None
        lang = spec.tags.get(code) or code
        out, n_bad, n_dropped, n_repaired, first_bad = [], 0, 0, 0, None
        for line, row in rows:
            qid = str(row.get("id", line))
            if prefix and not qid.startswith(str(prefix)):
                continue
            for key in ("question", "context", "answers"):
                if key not in row:
                    raise XlexpError(f"{file or where}: question {qid}: no field '{key}'")
            context, question = str(row["context"]), str(row["question"]).strip()
            if not question or not context.strip():
                raise XlexpError(f"{file or where}: question {qid}: empty question or context")
            answers = []
            for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
                text, start = str(text), int(start)
                if text and context[start : start + len(text)] == text:
                    answers.append((text, start))
                    continue
                first_bad = first_bad or qid
                fixed = repair_answer(context, text, start) if text and (scored or on_bad == "repair") else None
                if fixed is not None:
                    n_repaired += 1
                    answers.append((text, fixed[1]) if scored else fixed)  # scored: the file's text, as official
                elif scored and text.strip():
                    n_bad += 1
                    answers.append((text, -1))  # scored on its text; no window holds it (label (0, 0))
                elif on_bad == "error":
                    found = context[start : start + len(text)]
                    raise XlexpError(
                        f"{file or where}: question {qid}: answer_start {start} does not point at the answer "
                        f"{text!r} in the context (found {found!r}) of this {split} split; fix the file, or set "
                        f"bad_answers: repair (search near answer_start, whitespace normalised) or skip in the "
                        f"task's YAML ({task_file(spec)})"
                    )
                else:
                    n_bad += 1
            if not answers:
                n_dropped += 1
                if on_bad == "error":
                    raise XlexpError(
                        f"{file or where}: question {qid}: no answer (bad_answers: skip drops such questions)"
                    )
                continue
            out.append(
                QAExample(text=question, text_pair=context, qid=qid, answers=tuple(answers), norm=mode, lang=lang)
            )
        if scored and (n_bad or n_repaired):
            log.warning(
                "%s: %d answer(s) whose answer_start misses their text (first: question %s) are kept, as the "
                "%s split is scored on answer texts (%d offset(s) repaired near answer_start, %d without a "
                "window label)",
                where,
                n_bad + n_repaired,
                first_bad,
                split,
                n_repaired,
                n_bad,
            )
        elif n_bad or n_dropped or n_repaired:
            log.warning(
                "%s: %d answer(s) whose answer_start misses their text (first: question %s): %d repaired near "
                "answer_start, %d skipped, %d question(s) left without an answer skipped (bad_answers: %s)",
                where,
                n_bad + n_repaired,
                first_bad,
                n_repaired,
                n_bad,
                n_dropped,
                on_bad,
            )
        return out


def _collapse_spaces(s: str) -> tuple[str, list[int]]:
    """``s`` with every run of Unicode whitespace as one plain space, and each kept character's index in ``s``."""
    out, index, space = [], [], False
    for i, ch in enumerate(s):
        if ch.isspace():
            if space:
                continue
            out.append(" ")
            space = True
        else:
            out.append(ch)
            space = False
        index.append(i)
    return "".join(out), index


def repair_answer(context: str, text: str, start: int, window: int = REPAIR_WINDOW) -> tuple[str, int] | None:
    """The answer as it stands in the context, ``(context[s:e], s)``, for the occurrence of ``text``
    (whitespace normalised on both sides, so a no-break space or a doubled space still matches) whose
    start is closest to ``start`` and within ``window`` characters of it; None when there is none."""
    needle = " ".join(text.split())
    if not needle:
        return None
    hay, index = _collapse_spaces(context)
    best, k = None, hay.find(needle)
    while k != -1:
        s0, e0 = index[k], index[k + len(needle) - 1] + 1
        if abs(s0 - start) <= window and (best is None or abs(s0 - start) < abs(best[0] - start)):
            best = (s0, e0)
        k = hay.find(needle, k + 1)
    return None if best is None else (context[best[0] : best[1]], best[0])


# -- SQuAD JSON helpers ------------------------------------------------------------------------
Paragraph = tuple[str, list[dict[str, Any]]]  # (context, qas)


def read_squad_json(path: Path) -> list[Paragraph]:
    """Every paragraph of a SQuAD v1.1 JSON file (plain or .gz), in file order."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise XlexpError(f"{path}: not a readable SQuAD JSON file ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise XlexpError(f"{path}: not SQuAD v1.1 JSON (expected a top-level 'data' list of articles)")
    out = []
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(article.get("paragraphs", [])):
            if "context" not in para or "qas" not in para:
                raise XlexpError(f"{path}: data[{a}].paragraphs[{p}] has no 'context' or 'qas'")
            for q, qa in enumerate(para["qas"]):
                missing = [k for k in ("id", "question") if k not in qa]
                if missing:
                    raise XlexpError(f"{path}: data[{a}].paragraphs[{p}].qas[{q}] has no {missing}")
            out.append((para["context"], para["qas"]))
    return out


def exclude_paragraphs(paragraphs: list[Paragraph], ids: set[str], code: str, where: str) -> list[Paragraph]:
    """Drop every paragraph holding a question whose id is in ``ids`` (logged with counts)."""
    kept = [p for p in paragraphs if not any(qa["id"] in ids for qa in p[1])]
    n_q = sum(len(p[1]) for p in paragraphs) - sum(len(p[1]) for p in kept)
    log.info(
        "%s (%s): exclude_ids_from dropped %d paragraph(s) with %d question(s); %d question(s) remain",
        where,
        code,
        len(paragraphs) - len(kept),
        n_q,
        sum(len(p[1]) for p in kept),
    )
    return kept


def partition(paragraphs: list[Paragraph], lo: float, hi: float, seed: int) -> list[Paragraph]:
    """Paragraphs in the [lo, hi) slice of a seeded permutation, in file order."""
    if not 0.0 <= lo < hi <= 1.0:
        raise XlexpError(f"a split's part must be [lo, hi] with 0 <= lo < hi <= 1, got [{lo}, {hi}]")
    n = len(paragraphs)
    order = np.random.default_rng(seed).permutation(n)
    chosen = np.sort(order[int(round(lo * n)) : int(round(hi * n))])
    return [paragraphs[i] for i in chosen]
