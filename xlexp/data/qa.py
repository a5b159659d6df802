"""Extractive QA windows: question + context, cut into overlapping windows of the context.

Each example becomes one or more windows ``<s> question </s></s> context-part </s>`` of at most
``max_length`` pieces (the fast tokenizer's ``return_overflowing_tokens`` with ``stride`` pieces of
overlap), as in the Hugging Face QA example (``run_qa.py``). Per window the split keeps:

- ``offsets``: for each piece, its (start, end) character span in the *context*, or (-1, -1) for
  question and special pieces, so a predicted span maps back to context text and never crosses
  into the question;
- ``labels[i] = (start, end)``: the piece positions of the first gold answer, or (0, 0) (the
  first special token) where the answer is not wholly inside the window: the window then teaches
  "no answer here", as in the HF example;
- ``example_ids``: the question's row in the split, so windows are joined back per question.

Questions longer than ``max_query_length`` pieces are cut (the BERT/HF default is 64), so every
window keeps room for context. Tokenization runs in chunks, so memory stays bounded on big splits.

Returns plain arrays (:class:`Windows`); ``xlexp.data.tokenized`` makes them a ``TokenizedSplit``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xlexp.errors import XlexpError

CHUNK = 512  # examples per tokenizer call


@dataclass
class Windows:
    input_ids: list[np.ndarray]
    labels: np.ndarray  # (n, 2) answer start/end piece per window; (0, 0) = not in this window
    n_truncated: int  # questions whose context needed more than one window
    example_ids: np.ndarray
    offsets: list[np.ndarray]  # (pieces, 2) character span in the context, (-1, -1) elsewhere


def _cut_question(tokenizer, question: str, max_query_length: int) -> str:
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_query_length:
        return question
    return question[: offsets[max_query_length - 1][1]]


def tokenize_qa(tokenizer, examples, max_length: int, doc_stride: int = 128, max_query_length: int = 64) -> Windows:
    """Windows of every example (``QAExample``: ``question``, ``context``, ``answers``)."""
    if not getattr(tokenizer, "is_fast", False):
        raise XlexpError("extractive QA needs a fast tokenizer (offset mapping); this model's tokenizer is not one")
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    max_query_length = max(1, min(max_query_length, (max_length - n_special) // 2))
    context_room = max_length - n_special - max_query_length
    stride = max(0, min(doc_stride, context_room // 2))
    ids, labels, offsets, example_ids = [], [], [], []
    n_split = 0
    for lo in range(0, len(examples), CHUNK):
        chunk = examples[lo : lo + CHUNK]
        questions = [_cut_question(tokenizer, e.question, max_query_length) for e in chunk]
        enc = tokenizer(
            questions,
            [e.context for e in chunk],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        mapping = enc["overflow_to_sample_mapping"]
        counts = np.bincount(mapping, minlength=len(chunk))
        n_split += int((counts > 1).sum())
        for w, sample in enumerate(mapping):
            seq_ids = enc.sequence_ids(w)
            off = np.asarray(enc["offset_mapping"][w], dtype=np.int32).reshape(-1, 2)
            in_context = np.asarray([s == 1 for s in seq_ids])
            off[~in_context] = -1
            ex = chunk[sample]
            start_char, text = ex.answers[0][1], ex.answers[0][0]
            labels.append(answer_positions(off, start_char, start_char + len(text)))
            ids.append(np.asarray(enc["input_ids"][w], dtype=np.int32))
            offsets.append(off)
            example_ids.append(lo + sample)
    return Windows(
        ids,
        np.asarray(labels, dtype=np.int64).reshape(-1, 2),
        n_split,
        np.asarray(example_ids, dtype=np.int64),
        offsets,
    )


def answer_positions(offsets: np.ndarray, start_char: int, end_char: int) -> tuple[int, int]:
    """Piece positions (start, end) covering the answer's characters [start_char, end_char), or
    (0, 0) when the window's context does not hold the whole answer."""
    ctx = np.flatnonzero(offsets[:, 0] >= 0)
    if not len(ctx) or offsets[ctx[0], 0] > start_char or offsets[ctx[-1], 1] < end_char:
        return 0, 0
    # first piece that ends after the answer's start; last piece that starts before its end
    start = ctx[np.argmax(offsets[ctx, 1] > start_char)]
    end = ctx[len(ctx) - 1 - np.argmax(offsets[ctx[::-1], 0] < end_char)]
    return int(start), int(end)
