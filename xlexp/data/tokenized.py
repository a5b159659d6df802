"""Tokenized splits, cached on disk, and the batches built from them.

Tokenization happens once per (tokenizer, task spec, language, split, max length, source file's content)
and is cached as a small ``.npz`` file; later runs, workers and sweep trials read it back.
How a task's examples become token ids is its task kind's business (``xlexp.experiment.kinds``, passed
in as ``kind``; the shared tokenizers are here: :func:`tokenize_sequences`, :func:`tokenize_words`).
Training batches are length-grouped (less padding, same randomness); evaluation batches are
sorted by length. Padding is dynamic: each batch is padded to its own longest sequence.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xlexp.config.names import temp_path
from xlexp.data.stamps import content_stamp
from xlexp.tasks.readers import data_root
from xlexp.tasks.spec import TaskSpec, load_split

log = logging.getLogger(__name__)


@dataclass
class TokenizedSplit:
    input_ids: list[np.ndarray]
    labels: np.ndarray  # one label per sequence (0 for token tasks: unused)
    n_truncated: int = 0  # sequences cut (sentence tasks) or split into windows (token tasks)
    example_ids: np.ndarray | None = None  # row index in the original split (kept through subsampling)
    token_labels: list[np.ndarray] | None = None  # token tasks: tag id on each word's first piece, -100 elsewhere
    # extractive QA (xlexp.data.qa): per window, each piece's (start, end) character span in the context
    # ((-1, -1) outside it); ``labels`` is then (n, 2): the answer's start/end piece per window
    offsets: list[np.ndarray] | None = None
    examples: list | None = None  # QA: the split's examples (text, gold answers); memory only, not cached

    def __post_init__(self) -> None:
        if self.example_ids is None:
            self.example_ids = np.arange(len(self.labels), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def windowed(self) -> bool:
        """Examples may be cut into several rows (token tasks' long sentences, QA's long contexts)."""
        return self.token_labels is not None or self.offsets is not None

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def subset(self, indices: np.ndarray) -> TokenizedSplit:
        tl = None if self.token_labels is None else [self.token_labels[i] for i in indices]
        off = None if self.offsets is None else [self.offsets[i] for i in indices]
        return TokenizedSplit(
            [self.input_ids[i] for i in indices],
            self.labels[indices],
            self.n_truncated,
            self.example_ids[indices],
            tl,
            off,
            self.examples,
        )

    @staticmethod
    def concat(parts: list[TokenizedSplit]) -> TokenizedSplit:
        ids = [x for p in parts for x in p.input_ids]
        tl = None if parts[0].token_labels is None else [x for p in parts for x in p.token_labels]
        off = None if parts[0].offsets is None else [x for p in parts for x in p.offsets]
        return TokenizedSplit(
            ids,
            np.concatenate([p.labels for p in parts]),
            sum(p.n_truncated for p in parts),
            token_labels=tl,
            offsets=off,
        )


def tokenizer_fingerprint(tokenizer) -> str:
    """Content hash of a fast tokenizer (vocab, normaliser, specials): the cache key's first part."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


class TokenCache:
    """Tokenizes (language, split) pairs of one task with one tokenizer, memoised in memory and on disk.
    ``kind`` is the task's kind (``xlexp.experiment.kinds.of(spec)``): its ``tokenize`` turns the
    examples into a split, and ``keeps_examples`` attaches them to it (not cached)."""

    def __init__(
        self, spec: TaskSpec, tokenizer, max_length: int, data_dir: Path, cache_dir: Path, source: str = "auto", *, kind
    ):
        self.spec, self.tokenizer, self.max_length, self.kind = spec, tokenizer, max_length, kind
        self.data_dir, self.source = data_root(spec, Path(data_dir), source), source  # maybe the embedded copy
        self.dir = Path(cache_dir) / "tokenized" / spec.name
        self.fingerprint = tokenizer_fingerprint(tokenizer)
        self._memory: dict[tuple[str, str], TokenizedSplit] = {}
        self.n_tokenized = 0  # splits tokenized by this cache object (0 on a fully cached re-run)
        self.id_map: np.ndarray | None = None  # old id -> new id after vocabulary trimming (xlexp.data.vocab)

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if self.id_map is None else int(self.id_map[pad])

    def remap(self, id_map: np.ndarray) -> None:
        """Renumber every split served from now on (and those already in memory) through ``id_map``.
        The files on disk keep the tokenizer's own ids, so trimmed and untrimmed runs share them."""
        if self.id_map is not None:
            raise RuntimeError("TokenCache.remap: the ids are already remapped")
        self.id_map = id_map
        self._memory = {k: _map_ids(v, id_map) for k, v in self._memory.items()}

    def _key(self, code: str, split: str) -> str:
        # the bytes of the files read, not their path or mtime: a copied or moved dataset keeps its cache
        stamp = "" if self.source == "hub" else content_stamp(self.spec.local_files(code, split, self.data_dir))
        parts = [self.fingerprint, self.spec.fingerprint(), code, split, str(self.max_length), self.source, stamp]
        return hashlib.sha1("|".join(parts).encode()).hexdigest()[:20]

    def get(self, code: str, split: str, side: str = "") -> TokenizedSplit:
        """Tokenized (language, split); retrieval tasks have two sides: '' (xx) and 'pivot'."""
        key = (code, split, side)
        if key in self._memory:
            return self._memory[key]
        file = self.dir / f"{code}.{split}{'.' + side if side else ''}.{self._key(code, split)}.npz"
        tok = _load_cached(file) if file.exists() else None
        if tok is None:
            tok = self._tokenize(code, split, side)
            _save_npz_atomic(file, tok)
        if self.kind.keeps_examples and tok.examples is None:  # e.g. QA: answers are scored on the examples' text
            tok.examples = load_split(self.spec, code, split, self.data_dir, self.source)
        if tok.n_truncated:
            what = "split into windows" if tok.windowed else "truncated"
            log.info(
                "%s/%s: %d of %d examples %s to fit %d tokens",
                code,
                split,
                tok.n_truncated,
                len(set(tok.example_ids.tolist())),
                what,
                self.max_length,
            )
        if self.id_map is not None:
            tok = _map_ids(tok, self.id_map)
        self._memory[key] = tok
        return tok

    def _tokenize(self, code: str, split: str, side: str = "") -> TokenizedSplit:
        examples = load_split(self.spec, code, split, self.data_dir, self.source)
        self.n_tokenized += 1
        return self.kind.tokenize(self.spec, self.tokenizer, examples, self.max_length, side)


def tokenize_sequences(enc: list[list[int]], examples: list, max_length: int) -> TokenizedSplit:
    """One sequence per example (the tokenizer's ``input_ids``), cut to ``max_length`` pieces (counted
    in ``n_truncated``), labelled with the examples' labels."""
    n_truncated = sum(len(x) > max_length for x in enc)
    ids = [_truncate(np.asarray(x, dtype=np.int32), max_length) for x in enc]
    return TokenizedSplit(ids, np.array([e.label for e in examples], dtype=np.int64), n_truncated)


def _map_ids(split: TokenizedSplit, id_map: np.ndarray) -> TokenizedSplit:
    return TokenizedSplit(
        [id_map[x] for x in split.input_ids],
        split.labels,
        split.n_truncated,
        split.example_ids,
        split.token_labels,
        split.offsets,
        split.examples,
    )


def tokenize_words(
    tokenizer, sentences: list[tuple[str, ...]], tags: list[tuple[int, ...]], max_length: int
) -> TokenizedSplit:
    """Token classification: the tag goes on each word's first piece (-100 on the others), so
    predictions are read back per word. A sentence longer than ``max_length`` pieces is split into
    consecutive windows of whole words (every word keeps its label; counted in ``n_truncated``);
    only a single word longer than a window loses its extra pieces."""
    enc = tokenizer([list(s) for s in sentences], is_split_into_words=True, truncation=False)
    n_special = tokenizer.num_special_tokens_to_add()
    ids, labels, example_ids, n_split = [], [], [], 0
    for i, (words, word_tags) in enumerate(zip(sentences, tags)):
        word_ids = enc.word_ids(i)
        if len(word_ids) <= max_length:
            chunks = [(0, len(words), enc["input_ids"][i], word_ids)]
        else:
            n_split += 1
            chunks = _windows(tokenizer, words, word_ids, max_length - n_special)
        for start, _end, chunk_ids, chunk_word_ids in chunks:
            ids.append(_truncate(np.asarray(chunk_ids, dtype=np.int32), max_length))
            lab = np.full(len(ids[-1]), -100, dtype=np.int64)
            seen = set()
            for pos, w in enumerate(chunk_word_ids[: len(lab) - 1] if len(chunk_ids) > max_length else chunk_word_ids):
                if w is not None and w not in seen:
                    seen.add(w)
                    lab[pos] = word_tags[start + w]
            labels.append(lab)
            example_ids.append(i)
    return TokenizedSplit(
        ids, np.zeros(len(ids), dtype=np.int64), n_split, np.asarray(example_ids, dtype=np.int64), labels
    )


def _windows(tokenizer, words: tuple[str, ...], word_ids: list[int | None], budget: int):
    """Greedy windows of whole words whose pieces fit ``budget``; each re-tokenized on its own."""
    pieces = np.bincount([w for w in word_ids if w is not None], minlength=len(words))
    out, start = [], 0
    while start < len(words):
        end, used = start, 0
        while end < len(words) and (used + pieces[end] <= budget or end == start):
            used += pieces[end]
            end += 1
        enc = tokenizer(list(words[start:end]), is_split_into_words=True, truncation=False)
        out.append((start, end, enc["input_ids"], enc.word_ids()))
        start = end
    return out


def _truncate(ids: np.ndarray, max_length: int) -> np.ndarray:
    if len(ids) <= max_length:
        return ids
    # keep the final special token (</s> or [SEP]) so the sequence stays well-formed
    return np.concatenate([ids[: max_length - 1], ids[-1:]])


def _save_npz_atomic(file: Path, tok: TokenizedSplit) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [len(x) for x in tok.input_ids]).astype(np.int64)
    flat = np.concatenate(tok.input_ids) if tok.input_ids else np.zeros(0, np.int32)
    extra = {} if tok.token_labels is None else {"token_labels": np.concatenate(tok.token_labels)}
    if tok.offsets is not None:  # QA windows: (pieces, 2) character offsets, cut like input_ids
        extra["qa_offsets"] = np.concatenate(tok.offsets) if tok.offsets else np.zeros((0, 2), np.int32)
    tmp = temp_path(file)
    with tmp.open("wb") as f:
        np.savez(
            f,
            flat=flat,
            offsets=offsets,
            labels=tok.labels,
            n_truncated=np.int64(tok.n_truncated),
            example_ids=tok.example_ids,
            **extra,
        )
    os.replace(tmp, file)  # atomic: concurrent workers never read a half-written cache file


def _load_cached(file: Path) -> TokenizedSplit | None:
    """A cache file, or None (after one warning naming it, and deleting it) when it is corrupt:
    truncated by a full disk or a killed copy, a cache is rebuilt rather than failing every re-run."""
    try:
        tok = _load_npz(file)
        if len(tok.labels) != len(tok.input_ids) or len(tok.example_ids) != len(tok.input_ids):
            raise ValueError("inconsistent array lengths")
        return tok
    except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError ...
        log.warning("tokenized cache file %s is unreadable (%s: %s): rebuilding it", file, type(e).__name__, e)
        file.unlink(missing_ok=True)
        return None


def _load_npz(file: Path) -> TokenizedSplit:
    with np.load(file) as z:
        flat, offsets = z["flat"], z["offsets"]
        cut = lambda a: [a[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]  # noqa: E731
        token_labels = cut(z["token_labels"]) if "token_labels" in z.files else None
        qa_offsets = cut(z["qa_offsets"]) if "qa_offsets" in z.files else None
        return TokenizedSplit(cut(flat), z["labels"], int(z["n_truncated"]), z["example_ids"], token_labels, qa_offsets)


# -- batching ---------------------------------------------------------------------------------
def train_batches(
    split: TokenizedSplit,
    batch_size: int,
    rng: np.random.Generator,
    group_by_length: bool = True,
    weights: np.ndarray | None = None,
) -> list[np.ndarray]:
    """One epoch of index batches. Length grouping sorts within shuffled mega-batches of 50 batches
    and then shuffles the batch order, so batches are random but hold similar lengths. With
    ``weights`` the epoch's examples are drawn with replacement with those probabilities."""
    if weights is None:
        order = rng.permutation(len(split))
    else:
        order = rng.choice(len(split), size=len(split), replace=True, p=weights)
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    lengths = split.lengths
    mega = batch_size * 50
    batches = []
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(split: TokenizedSplit, batch_size: int) -> Iterator[np.ndarray]:
    """Indices sorted by length, longest first (a too-large batch fails at once, not at the end)."""
    order = np.argsort(-split.lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        yield order[i : i + batch_size]


def collate(split: TokenizedSplit, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    seqs = [split.input_ids[i] for i in indices]
    width = max(len(s) for s in seqs)
    input_ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for row, s in enumerate(seqs):
        input_ids[row, : len(s)] = s
        mask[row, : len(s)] = 1
    if split.token_labels is None:
        labels = torch.from_numpy(split.labels[indices])
    else:
        tl = np.full((len(seqs), width), -100, dtype=np.int64)
        for row, i in enumerate(indices):
            tl[row, : len(split.token_labels[i])] = split.token_labels[i]
        labels = torch.from_numpy(tl)
    return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask), "labels": labels}
